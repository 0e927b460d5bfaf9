"""``socialsim demo``, ``simulate`` and ``merge``: thin shells over `socialsim.simulate.run` and
`socialsim.simulate.merge`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from socialsim.cli.groups import (
    BackendGroup,
    BackendOptions,
    CacheGroup,
    CacheOptions,
    ConfigGroup,
    ConfigOptions,
    OutputGroup,
    OutputOptions,
    use,
)
from socialsim.cli.options import model_defaults
from socialsim.errors import UserError
from socialsim.schema import BackendConfig, ExecutionConfig, SimulationConfig

console = Console()
err_console = Console(stderr=True)

# option defaults come from the config models: one set of defaults for the library and the command line
_SIM, _EX = (model_defaults(m) for m in (SimulationConfig, ExecutionConfig))


# -- printing ---------------------------------------------------------------------------------


def print_dialogue(d: Any, *, show_thoughts: bool = True) -> None:
    from rich.markup import escape

    p = d.persona
    head = f"[bold]Dialogue {d.id}[/] · persona {d.persona_id}"
    if p is not None:
        head += f" ({p.name}, {p.age}, {p.occupation}) · {p.problem_type.value} / {p.emotion_type.value}"
    console.rule(head)
    from socialsim.simulate.live import turn_line

    for t in d.turns:
        console.print(turn_line(t))
        if t.speaker == "supporter":
            if show_thoughts and t.thought is not None:
                th = t.thought
                console.print(
                    f"   [dim]thought: {escape(th.emotion)} {th.intensity}/5 · cause: {escape(th.cause)} · "
                    f"needs: {escape(th.need)} · why: {escape(th.rationale)}[/]"
                )
    status = d.status if d.status == "ok" else f"[red]{d.status}: {escape(d.failure_reason or '')}[/]"
    if d.seeker_slipped:
        status += " [red](quality: seeker_slipped)[/]"
    console.print(
        f"[dim]end: {d.end_reason} · status: {status} · tokens: {d.usage.prompt_tokens}+{d.usage.completion_tokens}[/]"
    )


def _progress_hook(quiet: bool):  # type: ignore[no-untyped-def]
    from socialsim.simulate.progress import RunProgress

    return None if quiet else RunProgress(console=err_console)


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Run summary", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")


    def rows(prefix: str, value: Any) -> None:
        if isinstance(value, dict):  # e.g. label_failures: one row per kind
            for kind, v in value.items():
                rows(f"{prefix}.{kind}" if prefix else str(kind), v)
        else:
            table.add_row(prefix, "" if value is None else str(value))

    rows("", summary)
    return table


# -- demo -------------------------------------------------------------------------------------


@use(
    backend=BackendGroup(
        only=("model",),
        defaults={"model": "qwen2.5-1.5b"},
        helps={
            "model": "Embedded model: 'qwen2.5-1.5b' (default; about 5-6 min for the default dialogue on 2 cores) or "
            "'smollm2-135m' (much faster; proves the wiring, poor text)."
        },
    ),
    cache=CacheGroup(default=True, path=False),
    output=OutputGroup(help="No live transcript; print the dialogues at the end."),
)
def demo(
    *,
    n: Annotated[int, typer.Option(min=1, max=12, help="How many dialogues to simulate.")] = 1,
    max_turns: Annotated[int, typer.Option(min=1, max=20, help="Supporter turns per dialogue at most.")] = 3,
    backend: BackendOptions,
    out: Annotated[
        Path | None, typer.Option(help="Run folder to create (default: ./socialsim-demo-TIMESTAMP).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    strategy_check: Annotated[
        int,
        typer.Option(
            min=0,
            max=5,
            help="Regenerate a reply whose declared strategy the strategy recognizer finds improbable, at most N "
            "times (0: off; see simulate --help).",
        ),
    ] = 2,
    cache: CacheOptions,
    output: OutputOptions,
) -> None:
    """Simulate a short dialogue on the embedded model, printing each turn as it is generated.

    Default: one dialogue of 3 supporter turns with the first persona of the built-in bank on
    Qwen2.5-Coder-1.5B-Instruct (in-process, 2 CPU cores are enough). The seeker's text, then the
    supporter's thought (emotion, intensity, cause, need, strategy) and reply appear as they are made:
    token by token on a terminal, line by line otherwise. Writes a run folder with dialogues.jsonl and
    esconv.json.
    """
    from socialsim.schema import read_dialogues
    from socialsim.simulate.live import LiveTranscript

    out = out or Path(f"socialsim-demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    from socialsim.simulate.run import start_run

    # one dialogue at a time: the transcript reads in order, and the prompt cache serves one conversation
    ex = ExecutionConfig(dialogues_in_flight=1, cache=cache.cache)
    options = {"n": n, "seed": seed, "sampling": "sequential", "max_turns": max_turns, "strategy_check": strategy_check}
    model = backend.model
    bcfg = BackendConfig(kind="local", model=model)
    if output.quiet:
        result = start_run(bcfg, ex, out=out, options=options)
        for d in read_dialogues(result.exports["jsonl"]):
            print_dialogue(d)
    else:
        with LiveTranscript(console) as transcript:
            result = start_run(bcfg, ex, out=out, options=options, on_event=transcript.on_event)
    s = result.summary
    console.print(f"\nWrote {result.exports['jsonl']} ({n} dialogues) and {result.exports['esconv']}.")
    rate = s.get("thoughts_first_try_rate")
    failed = ", ".join(f"{k} {n}" for k, n in (s.get("label_failures") or {}).items())
    console.print(
        f"[dim]model {model} · wall {result.wall_s:.1f}s · {s['calls']} calls ({s['cached_calls']} from the cache) · "
        f"{s['prompt_tokens']}+{s['completion_tokens']} tokens · thoughts valid on the first try: "
        f"{s.get('thoughts_first_try', 0)}/{s.get('thoughts', 0)}{f' ({rate:.0%})' if rate is not None else ''} · "
        f"supporter replies regenerated for prompt leaks: {s.get('supporter_leaks', 0)}, for echoing the seeker or "
        f"itself: {s.get('supporter_echoes', 0)} · "
        f"seeker role slips: {s.get('role_slips', 0)}/{s.get('seeker_turns', 0)} · "
        f"labels that failed: {failed or 'none'}[/]"
    )
    words, ref = s.get("words_per_turn") or {}, (s.get("words_per_turn") or {}).get("esconv") or {}
    if s.get("realized_labelled"):
        console.print(
            f"[dim]declared = realized strategy: first try {s['strategy_agreement_first_try']:.0%}, kept "
            f"{s['strategy_agreement']:.0%} of {s['realized_labelled']} replies ({s.get('strategy_rewrites', 0)} "
            f"rewritten by the strategy check) · words per turn: supporter {words.get('supporter')}, seeker "
            f"{words.get('seeker')} (ESConv {(ref.get('supporter') or {}).get('turn')} and "
            f"{(ref.get('seeker') or {}).get('turn')})[/]"
        )


# -- simulate ---------------------------------------------------------------------------------


ROLES_PANEL = "Role-specific models"


def _finish(result: Any, out: Path) -> None:
    """Exit 3 (`Stopped`) when the run is resumable rather than complete."""
    from socialsim.errors import Stopped

    if result.unfinished:
        raise Stopped(
            f"{result.unfinished}; finished dialogues are saved. Continue with: socialsim simulate --resume {out}"
        )


@use(
    config=ConfigGroup(),
    backend=BackendGroup("Who plays the seeker and the supporter.", replicas=True),
    seeker=BackendGroup("the seeker", prefix="seeker", panel=ROLES_PANEL),
    supporter=BackendGroup("the supporter", prefix="supporter", panel=ROLES_PANEL),
    classifier=BackendGroup(
        "the LLM strategy classifier (--realized-strategy llm)", prefix="classifier", panel=ROLES_PANEL
    ),
    cache=CacheGroup(default=_EX["cache"]),
    output=OutputGroup(),
)
def simulate(
    ctx: typer.Context,
    *,
    config: ConfigOptions,
    personas: Annotated[
        str, typer.Option(help="Persona bank: a JSONL file (one persona per line) or 'default' for the built-in bank.")
    ] = "default",
    n: Annotated[int | None, typer.Option(help="Number of dialogues to simulate.")] = None,
    backend: BackendOptions,
    out: Annotated[Path | None, typer.Option(help="Run folder to create (must not hold a run yet).")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run in this folder where it stopped (Ctrl-C, kill, budget).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="With --resume: accept options that differ from the run's config.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Run seed: persona sampling and per-dialogue seeds derive from it.")
    ] = None,
    sampling: Annotated[
        str | None, typer.Option(help="Persona sampling: stratified (by problem type), uniform, sequential.")
    ] = None,
    max_turns: Annotated[
        int | None, typer.Option(help=f"Supporter turns per dialogue at most (default {_SIM['max_turns']}).")
    ] = None,
    safety: Annotated[
        bool | None,
        typer.Option(
            help="Crisis safety labels (default on): each seeker turn gets a risk label from the safety rules, and a "
            "flagged turn is answered with the fixed crisis protocol instead of a model reply."
        ),
    ] = None,
    disclosure: Annotated[
        str | None,
        typer.Option(
            help="How the seeker's disclosure is earned (docs/method/disclosure.md). 'observed' (default): by what "
            "each reply did, read by the strategy recognizer (reflecting, validating and asking earn trust, advice "
            "or information before the core worry is out costs it, crisis-protocol replies earn nothing), weighted "
            "by whether the reply answered the seeker's last line; no extra call. 'observed+appraisal': the same, "
            "and the seeker's model appraises each reply (one extra call a turn), which scales a reply's points a "
            "little but never opens a layer by itself. 'appraisal': the seeker's appraisal alone. 'strategy-rule': "
            "points per declared strategy."
        ),
    ] = None,
    realized_strategy: Annotated[
        str | None,
        typer.Option(
            metavar="recognizer|llm|off",
            help="Who labels each supporter reply's realized strategy (the ESConv strategy the reply carries out, "
            "never read from the thought; stored as realized_strategy beside the declared strategy). 'recognizer' "
            "(default): the learned strategy recognizer reads the reply and the two utterances before it, no LLM "
            "call, about 20 ms a reply on the CPU; it also stores realized_probs, the probability of each of the 8 "
            "strategies (another model directory: env SOCIALSIM_STRATEGY_MODEL). 'llm': the LLM classifier reads "
            "the reply alone on the classifier role's model (--classifier-model; one extra call a turn, no "
            "probabilities). 'off': no label.",
        ),
    ] = None,
    strategy_check: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=5,
            help="Check each reply with the strategy recognizer and regenerate it, at most N times, when its "
            "declared strategy is improbable: below the threshold at which 10% of ESConv's human replies would fail "
            "against their own label (socialsim build strategy-check). The reply most like its strategy is kept; "
            "every try is stored (strategy_attempts) and the summary gives first-try and final agreement. "
            "Default 0 (off; demo: 2). Needs --realized-strategy recognizer.",
        ),
    ] = None,
    seeker_format: Annotated[
        str | None,
        typer.Option(
            help="How the seeker's prompt holds the conversation. 'text' (default on the embedded models): a written "
            "transcript the model continues after the seeker's name, as plain text without a chat template (on the "
            "1.5B model the fewest lines in the supporter's voice: docs/method/fidelity.md). 'transcript' (default "
            "with --backend openai, as some servers have no /completions): the chat written out in one user "
            "message of a chat request. 'chat': the supporter's messages are the user's turns and the seeker's "
            "earlier lines the model's own, under a second-person persona prompt.",
        ),
    ] = None,
    no_realized_strategy: Annotated[
        bool,
        typer.Option(
            "--no-realized-strategy", hidden=True, help="Older spelling of --realized-strategy off (kept for scripts)."
        ),
    ] = False,
    fidelity: Annotated[
        bool | None,
        typer.Option(
            help="Seeker fidelity checks (default off: they load an embedding model, about 10x a server run's "
            "CPU): each seeker line embedded, leaked layers regenerated, drift recorded."
        ),
    ] = None,
    seeker: BackendOptions,
    supporter: BackendOptions,
    classifier: BackendOptions,
    dialogues_in_flight: Annotated[
        int | None,
        typer.Option(help="Dialogues simulated at once (default 8 x --concurrency; 2 for the embedded model)."),
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests-per-minute limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens-per-minute limit.")] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop cleanly before the estimated cost passes this many USD.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Stop cleanly before this many tokens (in+out) are used.")
    ] = None,
    price_in: Annotated[float, typer.Option(help="USD per million input tokens, for the cost estimate.")] = _EX[
        "price_in_per_m"
    ],
    price_out: Annotated[float, typer.Option(help="USD per million output tokens, for the cost estimate.")] = _EX[
        "price_out_per_m"
    ],
    cache: CacheOptions,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Simulate only shard K/N of the plan (every N-th dialogue from the K-th), e.g. one job of a job "
            "array; combine the shards with `socialsim merge`."
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="'local' (this process) or 'ray' (dialogues spread over --workers Ray actors; needs socialsim[ray])."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: start a local one). With --executor ray.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Ray actors, each with its own backend and cache.")] = 2,
    output: OutputOptions,
) -> None:
    """Simulate N dialogues into a run folder (SQLite store + dialogues.jsonl + esconv.json).

    Example on a local vLLM server (`vllm serve Qwen/Qwen2.5-7B-Instruct`):

      socialsim simulate --backend openai --base-url http://127.0.0.1:8000/v1
      --model Qwen/Qwen2.5-7B-Instruct --n 500 --concurrency 64 --out runs/qwen7b

    Stopped runs (Ctrl-C, kill, --max-cost) continue with: socialsim simulate --resume runs/qwen7b

    Every option can come from a YAML file: socialsim simulate --config run.yaml (see --dump-config).
    """
    if config.dumped(ctx):
        return
    from socialsim.simulate.launch import launch_run

    if no_realized_strategy:
        if realized_strategy not in (None, "off"):
            raise UserError(f"option --no-realized-strategy: contradicts --realized-strategy {realized_strategy}")
        realized_strategy = "off"
    be, ex = backend.config_fields(cache)
    ex.update(dialogues_in_flight=dialogues_in_flight, rpm=rpm, tpm=tpm, max_cost=max_cost, max_tokens=max_tokens,
              price_in_per_m=price_in, price_out_per_m=price_out)  # fmt: skip
    result = launch_run(
        be,
        ex,
        roles={"seeker": seeker.role(), "supporter": supporter.role(), "classifier": classifier.role()},
        options={
            "n": n, "seed": seed, "sampling": sampling, "max_turns": max_turns, "safety": safety,
            "disclosure": disclosure, "realized_strategy": realized_strategy, "fidelity": fidelity,
            "strategy_check": strategy_check, "seeker_format": seeker_format,
        },  # fmt: skip
        personas=personas,
        out=out,
        resume=resume,
        force=force,
        shard=shard,
        progress=_progress_hook(output.quiet),
        executor=executor,
        workers=workers,
        ray_address=ray_address,
    )
    console.print(_summary_table(result.summary))
    console.print(f"Dialogues: {result.exports['jsonl']}\nESConv JSON: {result.exports['esconv']}")
    _finish(result, result.root)


def merge(
    runs: Annotated[list[Path], typer.Argument(help="Run folders of one config, e.g. the shards of a job array.")],
    out: Annotated[Path, typer.Option(help="Run folder to create for the merged run.")],
) -> None:
    """Merge runs of the same config (e.g. `simulate --shard K/N` runs) into one run folder.

    Runs of different configs are refused; a dialogue present in several runs is kept once. The
    merged run resumes like any run (`simulate --resume OUT` fills in missing dialogues)."""
    from socialsim.simulate.merge import merge_runs

    r = merge_runs(runs, out)
    console.print(
        f"Merged {len(runs)} runs into {r.root}: {r.dialogues} dialogues"
        + (f", {r.duplicates} duplicates dropped" if r.duplicates else "")
        + (f", {r.missing} of the plan still missing (simulate --resume {r.root})" if r.missing else "")
    )
    console.print(f"Dialogues: {r.exports['jsonl']}\nESConv JSON: {r.exports['esconv']}")
