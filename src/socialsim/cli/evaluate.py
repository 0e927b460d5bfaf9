"""Commands of the evaluation sub-app: ``evaluate``, ``filter`` and ``respond-metrics``.

Run as ``python -m socialsim.cli.evaluate COMMAND ...``. The command functions are plain typer
functions, so the main CLI can register them at top level::

    from socialsim.cli.evaluate import evaluate_cmd, filter_cmd, respond_metrics_cmd
    app.command("evaluate")(evaluate_cmd)
    app.command("filter")(filter_cmd)
    app.command("respond-metrics")(respond_metrics_cmd)

Bad input ends as one line ``error: ...`` on stderr and exit code 2 (`socialsim.errors.UserError`).
"""

from __future__ import annotations

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
from socialsim.cli.options import check_choice
from socialsim.cli.respond_metrics import respond_metrics_cmd
from socialsim.errors import UserError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help=(
        "Evaluate emotional-support corpora side by side with ESConv: corpus metrics, an LLM judge "
        "(pointwise and order-swapped pairwise), response metrics (BLEU, ROUGE-L, Distinct, F1), "
        "an HTML report, and filtering by thresholds."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# -- shared options --------------------------------------------------------------------------------

CorpusArg = Annotated[
    Path,
    typer.Argument(
        metavar="RUN_OR_FILE",
        help="A run folder (with manifest.json), a dialogues JSONL, an ESConv JSON (e.g. ESConv.json or "
        "a run's esconv.json) or ESConv's TSV training format (e.g. devWithStrategy_short.tsv). The format "
        "is recognised from the content.",
        show_default=False,
    ),
]
#: The judge's backend, the same in evaluate and filter.
JUDGE = BackendGroup(
    "Who judges (the embedded models are small judges: qwen2.5-1.5b gives rough verdicts, smollm2-135m only "
    "proves the wiring; use a strong model for real judgements).",
    only=("backend", "base_url", "model", "model_path", "api_key_env", "concurrency"),
    helps={"concurrency": "Judge calls in flight at once (the embedded model always runs one)."},
    require_model="the judge model the server serves",
)
RubricOpt = Annotated[
    str,
    typer.Option(
        help="Judge rubric: 'esconv' (ESConv's human-evaluation dimensions: fluency, identification, "
        "comforting, suggestion, overall) or 'esc-eval' (ESC-Eval's: fluency, diversity, empathy, suggestion "
        "effectiveness, humanoid, emotional knowledge, overall preference). Scores are 1-5 with a reason."
    ),
]
JudgeCharsOpt = Annotated[
    int,
    typer.Option(
        min=200,
        help="Longest transcript (characters) the judge sees per dialogue; longer dialogues keep their "
        "beginning and end. Lower it for small-context judges.",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed for sampling dialogues and pairs, and for the judge's calls.")]


def _metrics_table(metrics: list[Any]) -> Table:
    from socialsim.evaluate.metrics import table_rows

    table = Table(title="Corpus metrics", show_header=True, show_lines=False)
    table.add_column("metric", style="bold")
    for m in metrics:
        table.add_column(m.name, overflow="fold")
    for label, cells in table_rows(metrics):
        table.add_row(label, *cells)
    return table


def _recognized_table(data: dict[str, Any]) -> Table:
    """The strategy recognizer's figures per corpus (see `socialsim.evaluate.recognized`)."""
    per = data["corpora"]
    table = Table(title="Recognized strategies (one recognizer for every corpus)")
    table.add_column("figure", style="bold")
    for name in per:
        table.add_column(name, overflow="fold", justify="right")

    def cell(v: Any) -> str:
        return "" if v is None else str(v)

    for label, key in (("replies labelled", "replies"), ("JS distance to ESConv (as recognized)", "js_distance_esconv"),
                       ("JS distance to ESConv (gold)", "js_distance_esconv_gold")):
        table.add_row(label, *[cell(s[key]) for s in per.values()])
    table.add_row("declared labels", *[s["declared_labels"] or "none" for s in per.values()])
    for label, key in (("declared = recognized", "accuracy"), ("  by chance", "chance_agreement"),
                       ("  Cohen's kappa", "kappa"), ("  macro-F1", "macro_f1")):
        table.add_row(label, *[cell((s["agreement"] or {}).get(key)) for s in per.values()])
    if any(s["llm_classifier"] for s in per.values()):
        table.add_row("declared = LLM classifier (stored)",
                      *[cell((s["llm_classifier"] or {}).get("accuracy")) for s in per.values()])
    return table


def _judge_tables(results: Any) -> list[Table]:
    from socialsim.evaluate.judge import pairwise_summary, pointwise_summary

    out = []
    point = pointwise_summary(results.pointwise)
    if point:
        dims = list(dict.fromkeys(d for s in point.values() for d in s["dimensions"]))
        t = Table(title=f"Judge scores ({results.rubric}, mean 1-5)")
        t.add_column("corpus")
        t.add_column("judged", justify="right")
        t.add_column("failed", justify="right")
        for d in dims:
            t.add_column(d, justify="right")
        for name, s in point.items():
            means = [f"{s['dimensions'][d]['mean']:.2f}" if d in s["dimensions"] else "n/a" for d in dims]
            t.add_row(name, str(s["judged"]), str(s["failed"]), *means)
        out.append(t)
    pair = pairwise_summary(results.pairwise)
    if pair["pairs"]:
        t = Table(title=f"Pairwise: {pair['label']} ({pair['pairs']} pairs, both orders, {pair['failed']} failed)")
        for col in ("dimension", "win", "tie", "loss", "inconsistent"):
            t.add_column(col, justify="right" if col != "dimension" else "left")
        for dim, c in pair["dimensions"].items():
            t.add_row(dim, str(c["win"]), str(c["tie"]), str(c["loss"]), str(c["inconsistent"]))
        out.append(t)
    return out


# -- evaluate ---------------------------------------------------------------------------------------


@use(backend=JUDGE, cache=CacheGroup(default=True), output=OutputGroup(), config=ConfigGroup())
def evaluate_cmd(
    ctx: typer.Context,
    *,
    path: CorpusArg,
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            "--reference",
            "-r",
            help="A corpus to compare with, in any format RUN_OR_FILE takes; repeat for more. The first is THE "
            "reference: strategy Jensen-Shannon divergence is measured against it and --judge compares "
            "RUN_OR_FILE with it pairwise. E.g. -r ../shared/data/esconv/FailedESConv.json.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Folder for report.html (self-contained: open it in any browser), report.json (the table and "
            "the data behind every figure) and, with --judge, judgements.jsonl. Default: RUN/report for a run, "
            "else ./<name>-report."
        ),
    ] = None,
    diversity: Annotated[
        str,
        typer.Option(
            help="Across-dialogue diversity: 'embedding' (mean pairwise cosine distance of MiniLM dialogue "
            "embeddings, higher = more varied), 'self-bleu' (mean BLEU-4 of each dialogue against the others, "
            "lower = more varied), 'both', or 'none' (fastest)."
        ),
    ] = "both",
    sample: Annotated[
        int,
        typer.Option(
            min=2,
            help="Diversity is computed on a seeded sample of at most this many dialogues per corpus (both "
            "measures cost more than linear time; embeddings run about 50 utterances/s on 2 CPU cores).",
        ),
    ] = 100,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge/--no-judge",
            help="Also score dialogues with an LLM judge (see --rubric, --judge-n, --backend) and, with "
            "--reference, compare RUN_OR_FILE with the reference pairwise in both orders.",
        ),
    ] = False,
    rubric: RubricOpt = "esconv",
    judge_n: Annotated[
        int,
        typer.Option(
            min=1,
            help="Dialogues judged per corpus (a seeded sample), and pairs compared with the reference. Each "
            "pair costs two judge calls.",
        ),
    ] = 10,
    pairwise: Annotated[
        bool, typer.Option(help="With --judge and --reference: also judge pairs (both orders, win/tie/loss).")
    ] = True,
    judge_chars: JudgeCharsOpt = 4000,
    backend: BackendOptions,
    cache: CacheOptions,
    samples: Annotated[
        int, typer.Option(min=0, help="Sample dialogues per corpus shown in the report (HTML-escaped).")
    ] = 2,
    recognize: Annotated[
        bool,
        typer.Option(
            "--recognize/--no-recognize",
            help="Label every supporter reply of every corpus with the strategy recognizer (a small learned model, "
            "no LLM; about 20 ms a reply on the CPU): each corpus's recognized strategy distribution and its "
            "Jensen-Shannon distance to ESConv's, and, where the corpus has strategy labels of its own (a run's "
            "declared strategies, ESConv's annotations), declared vs recognized agreement with chance and Cohen's "
            "kappa (on ESConv: the recognizer's accuracy against human labels). Another model directory: env "
            "SOCIALSIM_STRATEGY_MODEL.",
        ),
    ] = True,
    seed: SeedOpt = 0,
    output: OutputOptions,
    config: ConfigOptions,
) -> None:
    """Measure a corpus (and references) side by side; optionally judge it; write an HTML + JSON report.

    Example, a run against ESConv material:

      evaluate runs/qwen7b -r ../shared/data/esconv/FailedESConv.json
      -r ../shared/data/esconv/devWithStrategy_short.tsv --report runs/qwen7b/report

    With a judge on a vLLM server:

      evaluate runs/qwen7b -r ESConv.json --judge --backend openai
      --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-72B-Instruct --judge-n 50

    Every option can come from a YAML file: evaluate --config eval.yaml (see --dump-config).
    """
    if config.dumped(ctx):
        return
    from socialsim.evaluate.metrics import DIVERSITY_CHOICES
    from socialsim.evaluate.rubrics import RUBRICS
    from socialsim.evaluate.run import evaluate_corpora

    check_choice("--diversity", diversity, DIVERSITY_CHOICES)
    check_choice("--rubric", rubric, list(RUBRICS))
    refs = list(reference or [])
    settings = {
        "corpus": str(path),
        "references": [str(r) for r in refs],
        "diversity": diversity,
        "diversity_sample": sample,
        "seed": seed,
        "judge": judge,
    }
    if judge:
        settings.update(
            {"rubric": rubric, "judge_n": judge_n, "backend": backend.backend, "model": backend.model,
             "judge_chars": judge_chars}
        )
    settings["recognize"] = recognize
    llm = None
    if judge:  # settle the backend before any slow work
        llm = backend.llm(cache)
    try:
        done = evaluate_corpora(
            path,
            refs,
            llm=llm,
            diversity=diversity,
            sample=sample,
            seed=seed,
            rubric=rubric,
            judge_n=judge_n,
            pairwise=pairwise,
            judge_chars=judge_chars,
            samples=samples,
            report_dir=report,
            settings=settings,
            on_metrics=lambda metrics: console.print(_metrics_table(metrics)),
            on_judged=lambda results: [console.print(t) for t in _judge_tables(results)],
            progress=not output.quiet,
            console=err_console,
            recognize=recognize,
            on_recognized=lambda data: console.print(_recognized_table(data)),
        )
    finally:
        if llm is not None:
            llm.close()
    results = done.results
    if results is not None and results.failures():
        err_console.print(
            f"[yellow]{results.failures()} judge verdicts stayed unparseable; they are listed in the report "
            f"and in {done.judgements}[/]"
        )
    console.print(f"Report: {done.report['html']}\nData: {done.report['json']}")
    if done.judgements is not None:
        console.print(f"Judgements: {done.judgements}")


# -- filter -----------------------------------------------------------------------------------------


@use(backend=JUDGE, cache=CacheGroup(default=True), output=OutputGroup())
def filter_cmd(
    *,
    path: CorpusArg,
    out: Annotated[
        Path, typer.Option(help="JSONL file for the kept dialogues (one Dialogue a line).", show_default=False)
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="JSONL file for dropped dialogues with their reasons (default: OUT's name + .rejects.jsonl)."
        ),
    ] = None,
    min_turns: Annotated[
        int | None, typer.Option(min=0, help="Drop dialogues with fewer supporter turns than this.")
    ] = None,
    max_turns: Annotated[
        int | None, typer.Option(min=0, help="Drop dialogues with more supporter turns than this.")
    ] = None,
    keep_failed: Annotated[
        bool, typer.Option(help="Keep dialogues with status 'failed' (dropped by default).")
    ] = False,
    min_strategies: Annotated[
        int | None,
        typer.Option(min=0, max=8, help="Drop dialogues whose supporter used fewer distinct ESConv strategies."),
    ] = None,
    min_disclosure: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=2,
            help="Drop dialogues whose seeker did not reach this layer: 0 surface, 1 context, 2 core worry "
            "(simulated dialogues only).",
        ),
    ] = None,
    max_role_fallbacks: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Drop dialogues with more seeker turns whose line is a fixed fallback (runs made before #26: the "
            "persona card's words).",
        ),
    ] = None,
    drop_seeker_slipped: Annotated[
        bool,
        typer.Option(
            help="Drop dialogues whose seeker slipped (a kept slip or fallback line) on more than half of its turns: "
            "simulate marks them quality 'seeker_slipped'."
        ),
    ] = False,
    strategy_agreement: Annotated[
        str | None,
        typer.Option(
            help="Declared vs realized strategy (the strategy a reply carries out, see --strategy-labeller): "
            "'dialogues' drops dialogues with any disagreeing supporter turn, 'turns' removes only those turns."
        ),
    ] = None,
    strategy_labeller: Annotated[
        str,
        typer.Option(
            metavar="recognizer|llm|stored",
            help="With --strategy-agreement, who labels each reply's realized strategy first: 'recognizer' "
            "(default: the learned strategy recognizer on the reply and the two utterances before it, no LLM; "
            "another model directory: env SOCIALSIM_STRATEGY_MODEL), 'llm' (the LLM classifier on --backend/--model, "
            "one call a reply) or 'stored' (the labels the corpus holds, e.g. simulate's). The kept dialogues are "
            "written with these labels.",
        ),
    ] = "recognizer",
    min_score: Annotated[
        list[str] | None,
        typer.Option(
            help="Judge threshold DIMENSION=VALUE (1-5), repeatable, e.g. --min-score overall=4 --min-score "
            "empathy=3; 'mean' is the mean of all dimensions. Needs --judgements or --judge.",
        ),
    ] = None,
    judgements: Annotated[
        Path | None,
        typer.Option(help="judgements.jsonl written by `evaluate --judge` (scores are matched by dialogue id)."),
    ] = None,
    judge: Annotated[
        bool, typer.Option("--judge/--no-judge", help="Judge every dialogue now (pointwise) for --min-score.")
    ] = False,
    rubric: RubricOpt = "esconv",
    judge_chars: JudgeCharsOpt = 4000,
    backend: BackendOptions,
    cache: CacheOptions,
    seed: SeedOpt = 0,
    output: OutputOptions,
) -> None:
    """Keep the dialogues that pass every threshold; write them (JSONL) and the rejects with their reasons.

    Example: keep simulated dialogues with at least 3 supporter turns and 3 strategies whose seeker
    reached the core worry, judged overall 4 or better:

      filter runs/qwen7b --out kept.jsonl --min-turns 3 --min-strategies 3 --min-disclosure 2
      --judgements runs/qwen7b/report/judgements.jsonl --min-score overall=4
    """
    from socialsim.evaluate.filter import (
        LABELLERS,
        Thresholds,
        filter_corpus,
        label_realized,
        load_judgements,
        parse_min_scores,
        write_filtered,
    )
    from socialsim.evaluate.readers import load_corpus
    from socialsim.evaluate.rubrics import RUBRICS

    check_choice("--rubric", rubric, list(RUBRICS))
    check_choice("--strategy-labeller", strategy_labeller, LABELLERS)
    th = Thresholds(
        min_turns=min_turns,
        max_turns=max_turns,
        drop_failed=not keep_failed,
        min_strategies=min_strategies,
        min_disclosure=min_disclosure,
        max_role_fallbacks=max_role_fallbacks,
        drop_seeker_slipped=drop_seeker_slipped,
        strategy_agreement=strategy_agreement,
        min_scores=parse_min_scores(list(min_score or [])),
    )
    if min_turns is not None and max_turns is not None and min_turns > max_turns:
        raise UserError(f"option --min-turns: {min_turns} is above --max-turns {max_turns}")
    if judge and judgements is not None:
        raise UserError("give either --judgements FILE or --judge, not both")
    if not out.parent.is_dir():
        raise UserError(f"option --out: folder {out.parent} does not exist")
    scores = load_judgements(judgements) if judgements is not None else None
    labeller = strategy_labeller if strategy_agreement else "stored"
    llm = None
    if judge or labeller == "llm":
        llm = backend.llm(cache)
    try:
        corpus = label_realized(load_corpus(path), labeller, llm, seed=seed)
        if llm is not None:
            from socialsim.evaluate.run import judge_every, write_judgements

            res = judge_every(
                llm, corpus, rubric, transcript_chars=judge_chars, seed=seed, progress=not output.quiet,
                console=err_console,
            )
            scores = {r.dialogue_id: r.as_dict() for r in res.pointwise}
            jpath = write_judgements(res, out.with_name(out.stem + ".judgements.jsonl"))
            console.print(f"Judgements: {jpath}")
    finally:
        if llm is not None:
            llm.close()
    result = filter_corpus(corpus, th, scores)
    kept_path, rej_path = write_filtered(result, out, rejects)
    table = Table(title=f"Filter: {corpus.name}")
    table.add_column("figure")
    table.add_column("dialogues", justify="right")
    table.add_row("read", str(len(corpus.dialogues)))
    table.add_row("kept", str(len(result.kept)))
    table.add_row("dropped", str(len(result.rejects)))
    for reason, n in result.reason_counts().most_common():
        table.add_row(f"  {reason}", str(n))
    console.print(table)
    console.print(f"Kept: {kept_path}\nRejects: {rej_path}")


app.command("evaluate")(evaluate_cmd)
app.command("filter")(filter_cmd)
app.command("respond-metrics")(respond_metrics_cmd)


def main() -> None:
    from socialsim.cli.app import run_app

    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
