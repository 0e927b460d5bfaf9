"""``socialsim respond-metrics``: score a chatbot's responses against references (a thin shell over
`socialsim.evaluate.response_metrics`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from socialsim.cli.options import check_choice
from socialsim.errors import UserError

console = Console()


def respond_metrics_cmd(
    hypotheses: Annotated[
        Path,
        typer.Argument(
            metavar="HYPOTHESES",
            help='The chatbot\'s responses: JSONL with {"response": ...} per line (optional "line": the TSV '
            'line it answers, "strategy": its ESConv strategy, "reference": a reference of its own), or plain '
            "text with one response a line. A leading [Strategy] tag is stripped and read as the strategy.",
            show_default=False,
        ),
    ],
    references: Annotated[
        Path | None,
        typer.Option(
            help="ESConv TSV whose last turn per line is the reference (e.g. devWithStrategy_short.tsv). "
            "Hypotheses align by their 'line' field, else by order (counts must match). Omit when every "
            "hypothesis carries its own 'reference'."
        ),
    ] = None,
    tokenize: Annotated[
        str,
        typer.Option(
            help="Tokenizer for every metric (after lowercasing): 'nltk' = the ESConv papers' word_tokenize "
            "(Treebank; comparable with published ESConv numbers), '13a' = sacrebleu's default, 'simple' = "
            "words and punctuation."
        ),
    ] = "nltk",
    out: Annotated[Path | None, typer.Option(help="Also write the metrics as JSON to this file.")] = None,
) -> None:
    """Score responses against references: BLEU-1..4, ROUGE-L, Distinct-1/2, unigram F1 (x100).

    BLEU is corpus-level sacrebleu BLEU with 'exp' smoothing (= NLTK's method3 used by the ESConv
    code) on lowercased tokens; ROUGE-L is rouge-score's F-measure. See
    socialsim.evaluate.response_metrics for every detail.

    Example: respond-metrics responses.jsonl --references ../shared/data/esconv/devWithStrategy_short.tsv
    """
    from socialsim.corpus.esconv_tsv import read_tsv_examples
    from socialsim.evaluate.response_metrics import align, read_hypotheses, response_metrics
    from socialsim.evaluate.text import TOKENIZERS

    check_choice("--tokenize", tokenize, TOKENIZERS)
    hyps = read_hypotheses(hypotheses)
    examples = read_tsv_examples(references) if references is not None else None
    h, r, pred, gold = align(hyps, examples, path=hypotheses)
    m = response_metrics(
        h,
        r,
        tokenize=tokenize,
        predicted_strategies=pred,
        reference_strategies=gold if examples is not None else None,
    )
    table = Table(title=f"Response metrics ({m.n} responses, x100)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in m.bleu.items():
        table.add_row(f"BLEU-{k}", f"{v:.2f}")
    table.add_row("ROUGE-L (F)", f"{m.rouge_l:.2f}")
    for k, v in m.distinct.items():
        table.add_row(f"Distinct-{k}", f"{v:.2f}")
    table.add_row("unigram F1", f"{m.unigram_f1:.2f}")
    table.add_row("tokens / response (hyp / ref)", f"{m.hypothesis_tokens:.1f} / {m.reference_tokens:.1f}")
    if m.strategy_accuracy is not None:
        table.add_row("strategy accuracy", f"{m.strategy_accuracy:.2f}")
    console.print(table)
    console.print(f"[dim]{m.signature}[/]", highlight=False)
    if out is not None:
        if not out.parent.is_dir():
            raise UserError(f"option --out: folder {out.parent} does not exist")
        out.write_text(json.dumps(m.as_dict(), indent=2) + "\n", encoding="utf-8")
        console.print(f"Wrote {out}")
