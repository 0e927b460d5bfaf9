"""``socialsim safety-eval``: measure the crisis safety layer, configured as ``serve`` and ``chat``
configure it, on labelled messages (a thin shell over `socialsim.safety.measure`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from socialsim.cli.options import (
    ApiKeyEnvOpt,
    BaseUrlOpt,
    ModelOpt,
    ModelPathOpt,
    QuietOpt,
    TimeoutOpt,
    backend_option,
    check_choice,
    make_llm,
    quiet_model_loading,
)

if TYPE_CHECKING:
    from socialsim.safety.measure import Report

console = Console()
BackendOpt = backend_option("Who classifies risk when --classify is not off.")


def _table(rep: Report) -> Table:
    from socialsim.safety.measure import RISK_CATEGORIES

    t = Table(title=rep.name, title_justify="left")
    for col in ("category", "n", "to protocol", "recall", "precision"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for c in RISK_CATEGORIES:
        d = rep.category(c)
        if d["n"]:
            prec = "-" if d["routed_here"] == 0 else f"{d['precision']:.1%}"
            t.add_row(c, str(d["n"]), str(d["flagged"]), f"{d['recall']:.1%}", prec)
    b = rep.benign()
    if b["n"]:
        t.add_row("hard negatives", str(b["n"]), str(b["flagged"]), f"FP {b['fp_rate']:.1%}", "", style="bold")
        for kind in rep.benign_kinds():
            k = rep.benign([kind])
            t.add_row(f"  {kind}", str(k["n"]), str(k["flagged"]), f"FP {k['fp_rate']:.1%}", "")
    return t


def safety_eval_cmd(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[LABELLED.jsonl]...",
            help="Labelled messages, JSONL: text, category (none, suicide, self_harm, harm_to_others), kind, "
            "optional context (earlier seeker turns). Default: the two shipped test sets, heldout5 and heldout6.",
            show_default=False,
        ),
    ] = None,
    learned: Annotated[
        bool, typer.Option(help="The learned stage between the rules and the LLM classifier (as serve --learned).")
    ] = True,
    learned_threshold: Annotated[
        float | None, typer.Option(help="Learned-stage threshold (0-1; default: the model file's).")
    ] = None,
    classify: Annotated[
        str,
        typer.Option(
            help="The LLM risk classifier, as in serve: 'off', 'ambiguous' (messages the rules find ambiguous) or "
            "'all' (every message the rules and the learned stage do not flag); it runs on --backend."
        ),
    ] = "off",
    backend: BackendOpt = "local",
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    timeout: TimeoutOpt = 60.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Messages judged at a time (LLM calls overlap).")] = 4,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write every report as JSON to this (new) file.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw a PNG (a new file) of recall and false positives against the learned-stage threshold "
            "(rules + learned stage; without the LLM), for the labelled files together."
        ),
    ] = None,
    show_errors: Annotated[
        bool, typer.Option(help="List every missed crisis message and every false positive.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure the crisis safety layer on labelled messages: per risk category how many reach the
    protocol (recall) and how precise its category is, and how many hard negatives it flags, overall
    and per kind.

    Each message goes through the same SafetyLayer as in serve and chat, with its context as earlier
    seeker turns: rules, then the learned stage (--learned), then the LLM classifier (--classify) on
    --backend; any failure of a stage is counted as serve counts it (fail closed). Recall counts any
    protocol reply as caught.

    Examples:

      socialsim safety-eval                                   # the shipped test sets, rules + learned stage

      socialsim safety-eval mine.jsonl --classify all -b openai --base-url http://127.0.0.1:8000/v1 --model m

      socialsim safety-eval --no-learned --plot tradeoff.png --json report.json
    """
    from rich.progress import Progress

    from socialsim.safety import CLASSIFY_SCOPES
    from socialsim.safety.measure import safety_eval

    check_choice("--classify", classify, CLASSIFY_SCOPES)
    quiet_model_loading()
    llm = None
    if classify != "off":
        llm = make_llm(
            backend,
            base_url=base_url,
            model=model,
            model_path=model_path,
            api_key_env=api_key_env,
            timeout=timeout,
            concurrency=concurrency,
        )
    with Progress(console=Console(stderr=True), transient=True, disable=quiet) as progress:
        task = progress.add_task("judging messages", total=None)
        result = safety_eval(
            files,
            learned=learned,
            learned_threshold=learned_threshold,
            classify=classify,
            llm=llm,
            llm_name=f"{backend} {model}" if model else backend,
            concurrency=concurrency,
            on_start=lambda n: progress.update(task, total=n),
            on_done=lambda: progress.advance(task),
            json_out=json_out,
            plot=plot,
        )
    for rep in result.reports:
        console.print(_table(rep))
        console.print(
            f"flagged by stage: {rep.flagged_by_stage() or 'none'}; {rep.ms_per_message:.1f} ms per message",
            highlight=False,
        )
        for note in rep.notes:
            console.print(f"note: message {note}", highlight=False, markup=False)
        if show_errors:
            for cat, text in rep.missed():
                console.print(f"  missed ({cat}): {text}", highlight=False, markup=False)
            for text in rep.benign()["texts"]:
                console.print(f"  false positive: {text}", highlight=False, markup=False)
        console.print()
    for path in (plot, json_out):
        if path is not None:
            console.print(f"wrote {path}", highlight=False)
