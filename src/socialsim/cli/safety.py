"""``socialsim safety-eval``: measure the crisis safety layer, built as ``serve`` and ``chat`` build it, on
labelled messages and real files (a thin shell over `socialsim.safety.measure`). Its safety-layer
options are `socialsim.cli.groups.SafetyGroup`, the ones ``serve`` and ``chat`` take."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from socialsim.cli.groups import (
    BackendGroup,
    BackendOptions,
    OutputGroup,
    OutputOptions,
    SafetyGroup,
    SafetyOptions,
    use,
)
from socialsim.cli.options import check_choice, quiet_model_loading

if TYPE_CHECKING:
    from socialsim.safety.measure import Report

console = Console()


def _cell(d: dict[str, Any], key: str) -> str:
    return f"{d[key]} ({d[key + '_rate']:.1%})" if d["n"] else "-"


def _table(rep: Report) -> Table:
    """Per risk category and its kinds, then the ``none`` messages and their kinds: n and how many reach
    protocol, check-in and either (crisis recall); the precision of the category the layer gave."""
    from rich import box

    from socialsim.safety.measure import RISK_CATEGORIES

    t = Table(title=rep.name, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("messages", no_wrap=True, max_width=24, overflow="ellipsis")
    t.add_column("n", justify="right", no_wrap=True)
    for col in ("protocol", "check-in", "either"):
        t.add_column(col, justify="right", no_wrap=True, min_width=11)
    t.add_column("prec.", justify="right", no_wrap=True)

    def cells(d: dict[str, Any]) -> list[str]:
        return [str(d["n"]), _cell(d, "protocol"), _cell(d, "check_in"), _cell(d, "reached")]

    for c in RISK_CATEGORIES:
        d = rep.category(c)
        if d["n"]:
            t.add_row(c, *cells(d), "-" if d["routed_here"] == 0 else f"{d['precision']:.1%}", style="bold")
            for kind in rep.kinds(c):
                t.add_row(f"  {kind}", *cells(rep.category(c, [kind])), "")
    b = rep.benign()
    if b["n"]:
        t.add_row("none", *cells(b), "", style="bold")
        for kind in rep.benign_kinds():
            t.add_row(f"  {kind}", *cells(rep.benign([kind])), "")
    return t


def _stages(rep: Report) -> str:
    parts = [f"{stage} {v['protocol']} protocol, {v['check_in']} check-in" for stage, v in rep.by_stage().items()]
    return "; ".join(parts) or "none"


def _short(text: str, limit: int = 300) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


@use(
    safety=SafetyGroup(serving=False),
    backend=BackendGroup(
        "Who classifies risk when --classify is not off.",
        only=("backend", "model", "model_path", "base_url", "api_key_env", "timeout", "concurrency"),
        defaults={"concurrency": 4},
        helps={"concurrency": "Messages judged at a time (LLM calls overlap)."},
    ),
    output=OutputGroup(),
)
def safety_eval_cmd(
    *,
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[FILE]...",
            help="Messages to judge, each file one of: labelled JSONL (text, category: none, suicide, self_harm, "
            "harm_to_others; kind; optional context, the earlier seeker turns); an ESConv split file (JSONL with a "
            "'dialog' per line: every seeker turn is an ordinary message of kind esconv, with the seeker turns before "
            "it as context); the C-SSRS Reddit CSV (User,Post,Label: every post a message, suicide for Indicator, "
            "Ideation, Behavior and Attempt users, none for Supportive ones, kind cssrs:<Label>). Told apart by "
            "content. Default: the two shipped test sets, heldout5 and heldout6.",
            show_default=False,
        ),
    ] = None,
    safety: SafetyOptions,
    cssrs_split: Annotated[
        str,
        typer.Option(
            help="Which C-SSRS users to read: 'valid' (the quarter of each label the learned stage never trained on), "
            "'train' or 'all'."
        ),
    ] = "valid",
    backend: BackendOptions,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Also write every report, with each message's tier, stage and score, to this (new) file."
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw a PNG (a new file) of crisis recall and the ordinary messages' check-in and protocol "
            "rates against the learned stage's check-in threshold (the protocol threshold marked), for the files "
            "together."
        ),
    ] = None,
    show_errors: Annotated[
        bool,
        typer.Option(help="List every missed crisis message and every ordinary one taken over or checked in on."),
    ] = False,
    output: OutputOptions,
) -> None:
    """Measure the crisis safety layer per tier: for each risk category and each kind of message, how many
    get the crisis protocol, how many a check-in about safety, and how many either (crisis recall); for
    ordinary messages and hard negatives, the protocol and check-in rates per kind.

    The layer is built exactly as serve and chat build it, with the same defaults (rules, then the
    learned stage where it is installed; the LLM classifier with --classify, on --backend), and each
    message goes through it with its context as earlier seeker turns; any failure of a stage is counted
    as serve counts it (fail closed).

    Examples:

      socialsim safety-eval                                   # the shipped test sets, the default layer

      socialsim safety-eval ../shared/data/esconv/splits/valid.jsonl ../shared/data/crisis/cssrs_reddit_500.csv

      socialsim safety-eval mine.jsonl --classify all -b openai --base-url http://127.0.0.1:8000/v1 --model m

      socialsim safety-eval --plot tradeoff.png --json report.json
    """
    from rich.progress import Progress

    from socialsim.safety import CLASSIFY_SCOPES
    from socialsim.safety.build import DEFAULT_CLASSIFY
    from socialsim.safety.measure import CSSRS_SPLITS, safety_eval

    scope = safety.classify or DEFAULT_CLASSIFY
    check_choice("--classify", scope, CLASSIFY_SCOPES)
    check_choice("--cssrs-split", cssrs_split, CSSRS_SPLITS)
    quiet_model_loading()
    llm = None
    if scope != "off":
        llm = backend.llm()
    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=output.quiet) as progress:
        task = progress.add_task("judging messages", total=None)
        result = safety_eval(
            files,
            learned=safety.learned,
            check_in_threshold=safety.check_in_threshold,
            protocol_threshold=safety.protocol_threshold,
            classify=scope,
            cssrs_split=cssrs_split,
            llm=llm,
            llm_name=backend.name,
            concurrency=backend.concurrency,
            on_start=lambda n: progress.update(task, total=n),
            on_done=lambda: progress.advance(task),
            on_note=lambda line: err.print(line, highlight=False, markup=False, soft_wrap=True),
            json_out=json_out,
            plot=plot,
        )
    for rep in result.reports:
        console.print(_table(rep))
        console.print(
            f"decided by stage: {_stages(rep)}; {rep.ms_per_message:.1f} ms per message",
            highlight=False,
        )
        for note in rep.notes:
            console.print(f"note: message {note}", highlight=False, markup=False)
        if show_errors:
            for cat, text in rep.missed():
                console.print(f"  missed ({cat}): {_short(text)}", highlight=False, markup=False)
            b = rep.benign()
            for text in b["texts"]:
                console.print(f"  protocol on an ordinary message: {_short(text)}", highlight=False, markup=False)
            for text in b["check_in_texts"]:
                console.print(f"  check-in on an ordinary message: {_short(text)}", highlight=False, markup=False)
        console.print()
    for path in (plot, json_out):
        if path is not None:
            console.print(f"wrote {path}", highlight=False)
