"""Response metrics: a chatbot's responses against reference responses (e.g. ESConv's TSV targets).

Exactly how each number is computed, so it can be set beside published ESConv results (all are
reported ×100, as in the ESConv papers):

- Tokens: every text is lowercased, then tokenised by the chosen tokenizer (default ``nltk``:
  NLTK's Treebank word tokenizer per sentence, i.e. the ESConv authors' ``word_tokenize(text.lower())``
  up to the Punkt sentence split; ``13a``: sacrebleu's default). See `socialsim.evaluate.text`.
  A leading ``[Strategy]`` tag is removed from hypotheses and references before tokenising.
- BLEU-n (n = 1..4): **corpus-level** BLEU from sacrebleu (``BLEU(max_ngram_order=n,
  tokenize="none", smooth_method="exp", effective_order=False)``) on the pre-tokenised, space-joined
  texts: clipped n-gram precisions pooled over the whole test set, uniform weights 1/n over orders
  1..n, one brevity penalty for the corpus. The ``exp`` smoothing (NIST geometric, applied only when
  an order has zero matches) is the same as NLTK's ``SmoothingFunction().method3`` that the ESConv
  code uses with ``corpus_bleu``, so BLEU-n here equals that code's ``bleu-n`` on the same tokens,
  with one exception: NLTK counts a hypothesis that has no n-gram of an order (shorter than n
  tokens) as having one, which lowers its BLEU-n slightly (e.g. 5.890 vs 5.897 BLEU-2 on ESConv's
  dev set when a few one-word responses are present).
  Sentence-level BLEU averaged over responses is a different (much higher-variance) number; do not
  compare the two. One reference per response.
- ROUGE-L: rouge-score's ``rougeL`` F-measure (LCS-based, β = 1, no stemming) per response on the
  same tokens, averaged. (The ESConv code's own ROUGE-L uses β = 1.2, which weighs recall more.)
- Distinct-n (n = 1, 2): distinct n-grams / all n-grams pooled over all hypotheses.
- Unigram F1: per response, token-overlap F1 with the reference (tokens counted with
  multiplicity), averaged.
- Strategy accuracy (only when hypotheses carry a strategy): share matching the reference strategy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from socialsim.chat_format import split_strategy_tag
from socialsim.corpus.esconv_tsv import ResponseExample
from socialsim.errors import UserError
from socialsim.evaluate.text import distinct_n, tokenizer, unigram_f1
from socialsim.io import iter_jsonl
from socialsim.schema import Strategy, parse_strategy

BLEU_ORDERS = (1, 2, 3, 4)


@dataclass
class ResponseMetrics:
    n: int
    bleu: dict[str, float]
    rouge_l: float
    distinct: dict[str, float]
    unigram_f1: float
    hypothesis_tokens: float
    reference_tokens: float
    strategy_accuracy: float | None
    tokenizer: str
    signature: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def signature(tok: str) -> str:
    """A short description of the settings, to print beside the numbers."""
    return (
        f"tok:{tok}|lowercase|strategy-tag stripped|BLEU:sacrebleu corpus, smooth exp (=NLTK method3), "
        "uniform weights, 1 ref|ROUGE-L:rouge-score F (beta 1)|Distinct:pooled|x100"
    )


class _Whitespace:
    """rouge-score tokenizer for texts we have already tokenised."""

    def tokenize(self, text: str) -> list[str]:
        return text.split()


def corpus_bleu(hyp_tokens: Sequence[Sequence[str]], ref_tokens: Sequence[Sequence[str]], n: int) -> float:
    """sacrebleu corpus BLEU-n (0–100) of pre-tokenised texts, one reference each."""
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise UserError("BLEU needs the [eval] extra (sacrebleu): pip install -e '.[eval]'") from None
    bleu = BLEU(tokenize="none", smooth_method="exp", max_ngram_order=n, effective_order=False, force=True)
    hyps = [" ".join(t) for t in hyp_tokens]
    refs = [" ".join(t) for t in ref_tokens]
    return float(bleu.corpus_score(hyps, [refs]).score)


def rouge_l(hyp_tokens: Sequence[Sequence[str]], ref_tokens: Sequence[Sequence[str]]) -> float:
    """Mean rouge-score ROUGE-L F-measure (0–100) of pre-tokenised texts."""
    try:
        from rouge_score.rouge_scorer import RougeScorer
    except ImportError:
        raise UserError("ROUGE-L needs the [eval] extra (rouge-score): pip install -e '.[eval]'") from None
    scorer = RougeScorer(["rougeL"], tokenizer=_Whitespace())
    scores = []
    for h, r in zip(hyp_tokens, ref_tokens, strict=True):
        if not h or not r:
            scores.append(0.0)
            continue
        scores.append(scorer.score(" ".join(r), " ".join(h))["rougeL"].fmeasure)
    return 100 * sum(scores) / len(scores) if scores else 0.0


def response_metrics(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    tokenize: str = "nltk",
    predicted_strategies: Sequence[Strategy | None] | None = None,
    reference_strategies: Sequence[Strategy | None] | None = None,
) -> ResponseMetrics:
    """All response metrics of `hypotheses` against `references` (same length, aligned)."""
    if len(hypotheses) != len(references):
        raise UserError(f"{len(hypotheses)} hypotheses but {len(references)} references; they must align one to one")
    if not hypotheses:
        raise UserError("no responses to score")
    tok = tokenizer(tokenize)
    hyp_tokens = [tok(_strip_tag(h)) for h in hypotheses]
    ref_tokens = [tok(_strip_tag(r)) for r in references]
    bleu = {str(n): corpus_bleu(hyp_tokens, ref_tokens, n) for n in BLEU_ORDERS}
    f1 = 100 * sum(unigram_f1(h, r) for h, r in zip(hyp_tokens, ref_tokens, strict=True)) / len(hyp_tokens)
    accuracy = None
    if predicted_strategies is not None and reference_strategies is not None:
        pairs = [(p, r) for p, r in zip(predicted_strategies, reference_strategies, strict=True) if p and r is not None]
        if pairs:
            accuracy = 100 * sum(p == r for p, r in pairs) / len(pairs)
    return ResponseMetrics(
        n=len(hypotheses),
        bleu=bleu,
        rouge_l=rouge_l(hyp_tokens, ref_tokens),
        distinct={str(n): 100 * distinct_n(hyp_tokens, n) for n in (1, 2)},
        unigram_f1=f1,
        hypothesis_tokens=sum(map(len, hyp_tokens)) / len(hyp_tokens),
        reference_tokens=sum(map(len, ref_tokens)) / len(ref_tokens),
        strategy_accuracy=accuracy,
        tokenizer=tokenize,
        signature=signature(tokenize),
    )


def _strip_tag(text: str) -> str:
    try:
        return split_strategy_tag(text)[1]
    except ValueError:  # a bracketed prefix that is no strategy: keep the text as it is
        return text.strip()


# -- hypotheses files --------------------------------------------------------------------------


@dataclass
class Hypothesis:
    """One response to score; `line` is the TSV line it answers (None: align by order)."""

    source_line: int
    response: str
    strategy: Strategy | None = None
    line: int | None = None
    reference: str | None = None


_TEXT_KEYS = ("response", "hypothesis", "text")


def read_hypotheses(path: str | Path) -> list[Hypothesis]:
    """JSONL (``{"response": ..., "line": TSV line, "strategy": ..., "reference": ...}``; only a
    response is required, also accepted as ``hypothesis`` or ``text``) or plain text, one response
    a line. A leading ``[Strategy]`` tag gives the strategy when no ``strategy`` field does."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    out: list[Hypothesis] = []
    lines = text.splitlines()
    if text.lstrip().startswith("{"):
        out.extend(_hypothesis(path, lineno, obj) for lineno, obj in iter_jsonl(path, encoding="utf-8-sig"))
    else:
        for lineno, raw in enumerate(lines, 1):
            out.append(_hypothesis(path, lineno, {"response": raw}))
    if not out:
        raise UserError(f"{path}: no hypotheses in this file")
    return out


def _hypothesis(path: Path, lineno: int, obj: dict[str, Any]) -> Hypothesis:
    key = next((k for k in _TEXT_KEYS if k in obj), None)
    if key is None:
        raise UserError(f"{path}:{lineno}: field 'response': required field is missing")
    response = obj[key]
    if not isinstance(response, str):
        raise UserError(f"{path}:{lineno}: field '{key}': expected a string")
    strategy = None
    if obj.get("strategy") is not None:
        try:
            strategy = parse_strategy(str(obj["strategy"]))
        except ValueError as e:
            raise UserError(f"{path}:{lineno}: field 'strategy': {e}") from None
    else:
        try:
            strategy = split_strategy_tag(response)[0]
        except ValueError:
            strategy = None
    line = obj.get("line")
    if line is not None and (not isinstance(line, int) or isinstance(line, bool) or line < 1):
        raise UserError(f"{path}:{lineno}: field 'line': expected a TSV line number (1 or more)")
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise UserError(f"{path}:{lineno}: field 'reference': expected a string")
    return Hypothesis(source_line=lineno, response=response, strategy=strategy, line=line, reference=reference)


def align(
    hypotheses: Sequence[Hypothesis], examples: Sequence[ResponseExample] | None, *, path: str | Path = "hypotheses"
) -> tuple[list[str], list[str], list[Strategy | None], list[Strategy | None]]:
    """Pair hypotheses with references: by ``line`` when the hypotheses give one, else by order
    (counts must match); a hypothesis's own ``reference`` is used when there are no examples.
    Returns (hypotheses, references, predicted strategies, reference strategies)."""
    hyps: list[str] = []
    refs: list[str] = []
    pred: list[Strategy | None] = []
    gold: list[Strategy | None] = []
    if examples is None:
        for h in hypotheses:
            if h.reference is None:
                raise UserError(
                    f"{path}:{h.source_line}: field 'reference': required field is missing (or give --references TSV)"
                )
            hyps.append(h.response)
            refs.append(h.reference)
            pred.append(h.strategy)
            gold.append(None)
        return hyps, refs, pred, gold
    with_line = [h for h in hypotheses if h.line is not None]
    if with_line and len(with_line) != len(hypotheses):
        first = next(h for h in hypotheses if h.line is None)
        raise UserError(f"{path}:{first.source_line}: field 'line': missing here but given on other lines")
    if with_line:
        by_line = {ex.line: ex for ex in examples}
        for h in hypotheses:
            ex = by_line.get(h.line)  # type: ignore[arg-type]
            if ex is None:
                raise UserError(f"{path}:{h.source_line}: field 'line': no reference example on TSV line {h.line}")
            hyps.append(h.response)
            refs.append(ex.reference)
            pred.append(h.strategy)
            gold.append(ex.strategy)
        return hyps, refs, pred, gold
    if len(hypotheses) != len(examples):
        raise UserError(
            f"{path}: {len(hypotheses)} hypotheses but {len(examples)} reference examples; give one response per "
            "reference line in order, or a 'line' field on each"
        )
    for h, ex in zip(hypotheses, examples, strict=True):
        hyps.append(h.response)
        refs.append(ex.reference)
        pred.append(h.strategy)
        gold.append(ex.strategy)
    return hyps, refs, pred, gold
