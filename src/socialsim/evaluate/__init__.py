"""Evaluation: read any corpus (runs, JSONL, ESConv JSON and TSV), measure it side by side with a
reference, judge dialogues with an LLM (pointwise and order-swapped pairwise), filter, and report.

Modules:

- `readers`: `load_corpus` for run folders, our JSONL, ESConv JSON and ESConv's TSV training format.
- `metrics`: corpus metrics (lengths, Distinct-n, diversity, strategy distribution and JSD, ...).
- `response_metrics`: BLEU-1..4, ROUGE-L, Distinct-1/2 and unigram F1 of responses vs references.
- `rubrics` and `judge`: rubric models and the LLM judge.
- `report`: a self-contained HTML report plus the same figures as JSON.
- `filter`: keep dialogues by thresholds, with the reasons for every reject.
- `cli`: the typer commands (`evaluate`, `filter`, `respond-metrics`).
"""

from socialsim.corpus.esconv import DialogueMeta
from socialsim.corpus.esconv_tsv import ResponseExample, read_tsv_examples
from socialsim.evaluate.readers import Corpus, load_corpus

__all__ = ["Corpus", "DialogueMeta", "ResponseExample", "load_corpus", "read_tsv_examples"]
