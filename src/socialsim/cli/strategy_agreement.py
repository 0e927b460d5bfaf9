"""``socialsim strategy-agreement``: validate a realized-strategy labeller on ESConv's dev TSV, or label a
corpus's replies again (a thin shell over `socialsim.evaluate.strategy_agreement`, which ``python -m``
still runs through this command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from socialsim.cli.groups import BackendGroup, BackendOptions, use
from socialsim.cli.options import check_choice
from socialsim.errors import UserError


def _progress(i: int, n: int) -> None:
    print(f"\r{i}/{n}", end="", flush=True)


@use(
    backend=BackendGroup(
        "With --labeller llm: the backend of the classifier's model.",
        only=("backend", "model", "base_url"),
        defaults={"model": "qwen2.5-1.5b"},
        helps={"model": "With --labeller llm: the classifier's model."},
    )
)
def strategy_agreement_cmd(
    *,
    tsv: Annotated[
        Path,
        typer.Argument(
            metavar="TSV_OR_CORPUS",
            help="ESConv dev TSV; with --relabel, a corpus (run folder or JSONL).",
            show_default=False,
        ),
    ],
    relabel: Annotated[
        bool,
        typer.Option("--relabel", help="Label the corpus's supporter replies again and write them to --out (JSONL)."),
    ] = False,
    labeller: Annotated[
        str,
        typer.Option(
            metavar="recognizer|llm",
            help="Who labels the replies: 'recognizer' (default: the learned strategy recognizer, reply and "
            "context, with probabilities, no LLM; another model directory: env SOCIALSIM_STRATEGY_MODEL) or 'llm' "
            "(the LLM classifier on --backend/--model/--base-url, reply text alone).",
        ),
    ] = "recognizer",
    backend: BackendOptions,
    per_strategy: Annotated[int, typer.Option(help="Validation: dev replies sampled per strategy.")] = 20,
    budget_s: Annotated[float | None, typer.Option(help="Validation: stop labelling after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the classifier's calls.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Validation: JSON report to write; --relabel: the JSONL to write.")
    ] = None,
) -> None:
    """Declared vs realized strategy: validate the labeller against ESConv's human labels (accuracy,
    macro-F1, per-strategy precision/recall/F1, majority baseline), or with --relabel label a corpus's
    replies again.

      socialsim strategy-agreement ../shared/data/esconv/devWithStrategy_short.tsv --labeller llm
      --model qwen2.5-1.5b --per-strategy 20 --budget-s 1100 --out classifier.json

      socialsim strategy-agreement runs/qwen7b --relabel --out relabelled.jsonl
    """
    from socialsim.evaluate.strategy_agreement import LABELLERS

    check_choice("--labeller", labeller, LABELLERS)
    if relabel:
        _relabel(tsv, labeller, backend, seed, out)
    else:
        _validate(tsv, labeller, backend, seed, out, per_strategy, budget_s)


def _relabel(src: Path, labeller: str, backend: BackendOptions, seed: int, out: Path | None) -> None:
    from socialsim.evaluate.readers import load_dialogues
    from socialsim.evaluate.strategy_agreement import relabel_realized, relabel_recognized
    from socialsim.schema import write_jsonl

    if not out:
        raise UserError("--relabel needs --out FILE.jsonl (the input is never overwritten)")
    if out.exists():
        raise UserError(f"--out {out}: the file exists; give a new path (nothing is overwritten)")
    if labeller == "recognizer":  # a missing or broken model: one line, after the (cheap) corpus read
        dialogues, stats = relabel_recognized(load_dialogues(src), on_item=_progress)
    else:
        dialogues, stats = relabel_realized(backend.llm(concurrency=1), load_dialogues(src), seed=seed,
                                            on_item=_progress)  # fmt: skip
    write_jsonl(dialogues, out)
    print(f"\n{out}: {len(dialogues)} dialogues; {stats}")


def _validate(
    tsv: Path,
    labeller: str,
    backend: BackendOptions,
    seed: int,
    out: Path | None,
    per_strategy: int,
    budget_s: float | None,
) -> None:
    from socialsim.evaluate.strategy_agreement import validate_classifier

    rec = None
    if labeller == "recognizer":
        from socialsim.recognize.strategy import default_recognizer

        rec = default_recognizer()
    report = validate_classifier(
        None if rec is not None else backend.llm(concurrency=1), tsv, per_strategy=per_strategy, seed=seed,
        budget_s=budget_s, on_item=_progress, recognizer=rec,
    )  # fmt: skip
    print()
    report["labeller"] = labeller
    report["model"] = str(rec.path) if rec is not None else backend.model
    if out:
        from socialsim.io import atomic_write_text

        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("confusion", "per_strategy")}, indent=2))
    for s, m in report["per_strategy"].items():
        print(f"{s:30s} P {m['precision']:.2f} R {m['recall']:.2f} F1 {m['f1']:.2f} n {m['support']}")
