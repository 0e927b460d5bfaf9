"""``socialsim serve`` and ``socialsim chat``: typer command functions, also runnable on their own as
``python -m socialsim.cli.serve serve|chat ...``.

To register them in the main CLI::

    from socialsim.cli.serve import chat_command, serve_command
    app.command("serve")(serve_command)
    app.command("chat")(chat_command)
"""

from __future__ import annotations

import os
import sys
from contextlib import aclosing
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from socialsim.cli.app import OneLineTyper
from socialsim.cli.groups import (
    BackendGroup,
    BackendOptions,
    ReplyGroup,
    ReplyOptions,
    SafetyGroup,
    SafetyOptions,
    use,
)
from socialsim.errors import EXIT_RESUMABLE, UserError

app = OneLineTyper(
    help="Serve the supporter as an OpenAI-compatible endpoint, or chat with it in the terminal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# -- shared options ---------------------------------------------------------------------------

#: The supporter's backend in serve and chat (chat runs a fixed 4 calls at once: it has no --concurrency).
_UPSTREAM_ROLE = "Who writes the supporter's thought and reply (and classifies risk)."
_UPSTREAM_OPTIONS = ("backend", "base_url", "model", "model_path", "api_key_env", "http_client", "structured",
                     "timeout", "max_attempts")  # fmt: skip
_UPSTREAM_HELP = {"api_key_env": "Environment variable holding the UPSTREAM server's API key (never the key itself)."}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _supporter(
    source: str, backend: BackendOptions, reply: ReplyOptions, safety: SafetyOptions, **overrides: Any
) -> tuple[Any, Any]:
    """`socialsim.serve.factory.build_supporter` from a command's option groups."""
    from socialsim.serve.factory import SupporterOptions, build_supporter

    options = SupporterOptions(**reply.values(), **safety.values())
    return build_supporter(source, *backend.configs(**overrides), options)


# -- serve ------------------------------------------------------------------------------------


@app.command("serve")
@use(
    backend=BackendGroup(
        _UPSTREAM_ROLE,
        only=(*_UPSTREAM_OPTIONS, "concurrency"),
        defaults={"max_attempts": 3, "concurrency": 32},
        helps={**_UPSTREAM_HELP, "concurrency": "Upstream calls in flight at once (local: always 1)."},
    ),
    safety=SafetyGroup(),
    reply=ReplyGroup(),
)
def serve_command(
    *,
    backend: BackendOptions,
    host: Annotated[str, typer.Option(help="Address to bind (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port; the chosen one is printed).")] = 8000,
    served_model_name: Annotated[str, typer.Option(help="Model id clients see in /v1/models and responses.")] = (
        "socialsim-supporter"
    ),
    server_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the key clients must send (Bearer); unset: no key needed."),
    ] = None,
    safety: SafetyOptions,
    hide_thoughts: Annotated[
        bool, typer.Option(help="Leave the supporter's thought out of the 'socialsim' response field.")
    ] = False,
    reply: ReplyOptions,
    access_log: Annotated[bool, typer.Option(help="Log one line per request (never headers or keys).")] = False,
) -> None:
    """Serve the supporter (thought + reply, crisis safety layer in front) as an OpenAI-compatible
    endpoint: POST /v1/chat/completions (plain or streamed), GET /v1/models.

    Responses carry an extra 'socialsim' field with the strategy, the thought and the safety decision.

      socialsim serve --backend local --port 8000
      socialsim serve --backend openai --base-url http://127.0.0.1:8001/v1 --model qwen --server-key-env MY_KEY
    """
    import asyncio

    _check(0 <= port <= 65535, f"--port must be between 0 and 65535, got {port}")
    _check(bool(served_model_name.strip()), "--served-model-name must not be empty")
    api_key = None
    if server_key_env is not None:
        api_key = os.environ.get(server_key_env)
        _check(bool(api_key), f"--server-key-env {server_key_env}: that environment variable is empty or unset")
    try:
        from socialsim.serve.app import create_app, serve_app
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UserError(f"serving needs the [serve] extra: pip install -e '.[serve]' ({e.name} missing)") from None
    from socialsim.safety.build import describe_layer

    llm, pipeline = _supporter("serve", backend, reply, safety)
    if backend.backend in ("local", "hf"):
        llm.backend.load()  # load the model now: the first request should not pay for it
    app_ = create_app(pipeline, model_name=served_model_name, api_key=api_key, expose_thoughts=not hide_thoughts)
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(
            f"warning: serving on {host} without --server-key-env: anyone who can reach it can use it", file=sys.stderr
        )

    layer = describe_layer(pipeline.safety)

    def ready(bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(
            f"socialsim serve: listening on http://{shown}:{bound}/v1 (model {served_model_name}, "
            f"backend {llm.name}, safety log {pipeline.safety.event_log.path}); safety layer: {layer}",
            flush=True,
        )

    async def main() -> None:
        try:
            await serve_app(app_, host, port, on_ready=ready, access_log=access_log)
        finally:
            await llm.aclose()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    print("socialsim serve: stopped", flush=True)


# -- chat -------------------------------------------------------------------------------------


def load_history(path: Path) -> list[dict[str, Any]]:
    """Messages saved by an earlier chat (JSONL, one message per line)."""
    from socialsim.io import iter_jsonl

    records: list[dict[str, Any]] = []
    shape = "{'role': 'user'|'assistant', 'content': ...}"
    try:
        for n, rec in iter_jsonl(path, hint="give a history file written by socialsim chat", what=shape):
            if rec.get("role") not in ("user", "assistant") or not isinstance(rec.get("content"), str):
                raise UserError(f"{path}:{n}: expected {shape}")
            records.append(rec)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--history {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    return records


def save_history(path: Path, records: list[dict[str, Any]]) -> None:
    """Write the conversation atomically: JSONL, OpenAI-style messages plus socialsim's fields."""
    from socialsim.io import write_jsonl_records

    write_jsonl_records(path, records)


def _turn_of(record: dict[str, Any], turn_cls: Any) -> Any:
    """A saved message as a `Turn`; a saved protocol reply or check-in keeps its ``risk_reason`` (the safety
    layer then reads the answer to it without having to recognise the text)."""
    if record["role"] == "user":
        return turn_cls(speaker="seeker", text=record["content"])
    tier, category = record.get("tier"), record.get("category")
    reason = f"{tier}:{category}" if tier in ("protocol", "check_in") and isinstance(category, str) else None
    return turn_cls(speaker="supporter", text=record["content"], risk_reason=reason)


def _record(reply: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"role": "assistant", "content": reply.text}
    rec.update(reply.extra(thoughts=True))
    rec["ts"] = datetime.now().isoformat(timespec="seconds")
    return rec


_TIER_WORDS = {"protocol": "crisis protocol", "check_in": "check-in question", "none": "no safety reply"}


def safety_status(decision: Any) -> str:
    """The chat's safety status line for a `SafetyDecision`: the tier first, then what decided it."""
    parts = [f"safety: {_TIER_WORDS.get(decision.tier, decision.tier)} (tier {decision.tier})"]
    if decision.tier != "none":
        parts.append(decision.category)
    parts.append(f"stage {decision.stage}")
    if decision.rule:
        parts.append(f"rule {decision.rule} ({decision.rules.level})")
    if decision.score is not None:
        parts.append(f"learned score {decision.score:.2f}")
    if decision.after is not None:
        parts.append(f"answer to the {decision.after.replace('_', '-')}: {decision.answer}")
    if decision.learned_error or decision.classifier_error:
        parts.append(f"stage failed: {decision.learned_error or decision.classifier_error}")
    return " · ".join(parts)


async def _chat_turn(pipeline: Any, turns: list[Any], console: Any, *, show_thoughts: bool, stream: bool) -> Any:
    from rich.markup import escape

    prepared = await pipeline.prepare(turns)
    if show_thoughts:
        console.print(f"[dim]  {escape(safety_status(prepared.safety))}[/]", highlight=False)
        th = prepared.thought
        if th is not None:
            console.print(
                f"[dim]  thought: {escape(th.emotion)} {th.intensity}/5 · cause: {escape(th.cause)} · "
                f"needs: {escape(th.need)} · strategy: {escape(th.strategy.value)} · why: {escape(th.rationale)}[/]",
                highlight=False,
            )
    console.print("[bold green]supporter>[/] ", end="")
    if stream:
        async with aclosing(prepared.stream()) as pieces:
            async for piece in pieces:
                console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
        reply = prepared.reply
    else:
        reply = await prepared.complete()
        console.print(reply.text, end="", markup=False, highlight=False, soft_wrap=True)
    console.print("")
    return reply


@app.command("chat")
@use(
    backend=BackendGroup(_UPSTREAM_ROLE, only=_UPSTREAM_OPTIONS, defaults={"max_attempts": 3}, helps=_UPSTREAM_HELP),
    safety=SafetyGroup(),
    reply=ReplyGroup(),
)
def chat_command(
    *,
    backend: BackendOptions,
    show_thoughts: Annotated[
        bool, typer.Option("--show-thoughts", help="Show the supporter's thought, strategy and safety decisions.")
    ] = False,
    history: Annotated[
        Path | None,
        typer.Option(
            help="Conversation file (JSONL). Continued if it exists; saved after every reply and on exit "
            "(default: ./socialsim-chat-TIMESTAMP.jsonl)."
        ),
    ] = None,
    stream: Annotated[bool, typer.Option(help="Stream the reply as it is written.")] = True,
    safety: SafetyOptions,
    reply: ReplyOptions,
) -> None:
    """Chat with the supporter in the terminal (you are the seeker). The crisis safety layer is active.

    Type a message and press Enter; /quit, Ctrl-D or Ctrl-C ends the chat and saves the history.
    """
    import asyncio

    from rich.console import Console

    from socialsim.errors import StructuredOutputError
    from socialsim.safety.build import describe_layer
    from socialsim.schema import Turn

    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    path = history or Path(f"socialsim-chat-{datetime.now().strftime('%Y%m%d-%H%M%S')}.jsonl")
    records = load_history(path) if path.exists() else []
    # bad options fail here, before any file is written
    # the thought, the reply and the risk classifier of one message: up to 4 upstream calls at once
    llm, pipeline = _supporter("chat", backend, reply, safety, concurrency=4)
    try:
        save_history(path, records)  # fail now, not after the first reply, when the path is unwritable
    except OSError as e:
        raise UserError(f"--history {path}: cannot write it ({e.strerror or e})") from None
    turns = [_turn_of(r, Turn) for r in records]
    console.print(
        f"[dim]socialsim chat · {llm.name} · safety layer: {describe_layer(pipeline.safety)} · history {path}"
        f"{f' ({len(records)} earlier messages)' if records else ''} · /quit to end[/]"
    )
    interrupted = False
    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    line = console.input("[bold cyan]you>[/] ")
                except EOFError:
                    console.print("")
                    break
                text = line.strip()
                if not text:
                    continue
                if text.lower() in ("/quit", "/exit", "/bye"):
                    break
                turns.append(Turn(speaker="seeker", text=text))
                records.append({"role": "user", "content": text, "ts": datetime.now().isoformat(timespec="seconds")})
                try:
                    reply = runner.run(_chat_turn(pipeline, turns, console, show_thoughts=show_thoughts, stream=stream))
                except (UserError, StructuredOutputError) as e:
                    console.print("")
                    err.print(f"error: {e} (message not answered; try again)", markup=False)
                    turns.pop()
                    records.pop()
                    continue
                turns.append(reply.turn())
                records.append(_record(reply))
                save_history(path, records)
        except KeyboardInterrupt:
            interrupted = True
            console.print("")
        finally:
            save_history(path, records)
            try:
                runner.run(llm.aclose())
            except BaseException:  # noqa: S110 - closing connections must not hide the save message
                pass
            console.print(f"[dim]history saved to {path} ({len(records)} messages)[/]")
    if interrupted:
        raise typer.Exit(EXIT_RESUMABLE)


def main() -> None:
    from socialsim.cli.app import run_app

    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
