"""``socialsim personas build``: write a persona bank with an LLM (a thin shell over
`socialsim.personas.builder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from socialsim.cli.groups import (
    BackendGroup,
    BackendOptions,
    CacheGroup,
    CacheOptions,
    OutputGroup,
    OutputOptions,
    use,
)
from socialsim.cli.options import quiet_model_loading
from socialsim.errors import EXIT_RESUMABLE, UserError

#: Who writes personas: ``personas build`` and ``personas import --core-from llm``.
BUILDER_ROLE = (
    "Who writes the personas (the embedded 1.5B model writes usable ones slowly; a strong server writes better)."
)

console = Console()
err_console = Console(stderr=True)


@use(
    backend=BackendGroup(
        BUILDER_ROLE,
        only=("backend", "base_url", "model", "model_path", "api_key_env", "concurrency", "timeout"),
        helps={"concurrency": "Slots generated at once with --backend openai (the embedded model runs one)."},
    ),
    cache=CacheGroup(default=True),
    output=OutputGroup(),
)
def build(
    *,
    n: Annotated[int, typer.Option("--n", min=1, help="How many persona slots the plan has.", show_default=False)],
    out: Annotated[
        Path,
        typer.Option(
            help="Persona JSONL to write. Next to it: OUT.progress.json (the build's config) and OUT.rejects.jsonl "
            "(slots that stayed invalid, with every attempt's reason). Run the same command again to resume.",
            show_default=False,
        ),
    ],
    backend: BackendOptions,
    seed: Annotated[
        int, typer.Option(help="Plan seed: which problem type, emotion, age and gender each slot gets, and call seeds.")
    ] = 0,
    attempts: Annotated[
        int, typer.Option(min=1, max=20, help="Tries per slot before it is written to the rejects file.")
    ] = 3,
    temperature: Annotated[
        float, typer.Option(min=0.0, max=2.0, help="Sampling temperature (raised by 0.1 on each retry).")
    ] = 0.9,
    dedupe_against_default: Annotated[
        bool,
        typer.Option(
            help="Also reject personas that are near-duplicates of the built-in bank (always checked against the "
            "output so far). Threshold: cosine similarity 0.92 on situation + disclosure layers."
        ),
    ] = True,
    id_prefix: Annotated[str | None, typer.Option(help="Persona ids are <prefix>-<slot>; default gen-s<seed>.")] = None,
    cache: CacheOptions,
    output: OutputOptions,
) -> None:
    """Synthesise new personas with an LLM from a seeded plan stratified over problem type ×
    emotion × age band × gender.

    Each draft is validated (schema, first-person voice, distinct layers, no placeholders, on topic),
    retried with the reason up to --attempts times, and checked for near-duplicates; slots that
    stay invalid go to OUT.rejects.jsonl with their reasons. Accepted personas are appended line by
    line, so a stopped build (Ctrl-C, kill) resumes where it stopped when run again with the same --out.

      python -m socialsim.cli.personas build --n 200 --backend openai --base-url http://127.0.0.1:8000/v1
      --model Qwen/Qwen2.5-7B-Instruct --out personas/qwen200.jsonl
    """
    from socialsim.embeddings import NEAR_DUPLICATE_THRESHOLD
    from socialsim.personas.builder import build_personas, progress_path

    if out.exists() and not progress_path(out).exists():
        raise UserError(
            f"{out}: exists but has no build progress file ({progress_path(out).name}); it was not written by "
            "`build`, so it is left alone: choose another --out or move the file away"
        )
    quiet_model_loading()
    llm = backend.llm(cache)
    try:
        result = build_personas(
            llm,
            n,
            out,
            seed,
            attempts=attempts,
            temperature=temperature,
            dedupe_against_default=dedupe_against_default,
            id_prefix=id_prefix,
            show_progress=not output.quiet,
            console=err_console,
        )
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished personas are saved; run the same command again to resume ({out})")
        raise typer.Exit(EXIT_RESUMABLE) from None
    finally:
        llm.close()
        unload = getattr(llm.backend, "unload", None)
        if unload:
            unload()
    s = result.stats
    session = s.session_accepted + s.session_rejected
    t = Table(title="Persona build", header_style="bold")
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        ("slots in plan", n),
        ("accepted (in output)", s.accepted),
        ("rejected (in rejects file)", s.rejected),
        ("resumed from earlier sessions", s.resumed),
        ("this session: accepted / rejected", f"{s.session_accepted} / {s.session_rejected}"),
        ("this session: attempts (retries)", f"{s.attempts} ({s.retries})"),
        ("rejection rate (slots)", f"{100 * s.session_rejected / session:.0f}%" if session else "-"),
        ("attempt failure rate", f"{100 * (s.attempts - s.session_accepted) / s.attempts:.0f}%" if s.attempts else "-"),
        ("slots per minute", f"{60 * session / result.wall_s:.2f}" if result.wall_s and session else "-"),
        ("accepted per minute", f"{60 * s.session_accepted / result.wall_s:.2f}" if result.wall_s else "-"),
        ("LLM calls (cached)", f"{result.llm_stats['calls']} ({result.llm_stats['cached_calls']})"),
        ("tokens in / out", f"{result.llm_stats['prompt_tokens']} / {result.llm_stats['completion_tokens']}"),
        ("near-duplicate threshold", NEAR_DUPLICATE_THRESHOLD),
        ("wall seconds", f"{result.wall_s:.1f}"),
    ]
    if s.torn_lines_repaired:
        rows.append(("torn last lines cut on resume", s.torn_lines_repaired))
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
    if s.reasons:
        r = Table(title="Why attempts failed (this session)", header_style="bold")
        r.add_column("reason")
        r.add_column("attempts", justify="right")
        for reason, k in sorted(s.reasons.items(), key=lambda kv: -kv[1]):
            r.add_row(escape(reason), str(k))
        console.print(r)
    console.print(f"Personas: {result.out}\nRejects: {result.rejects}\nProgress: {result.progress}")
