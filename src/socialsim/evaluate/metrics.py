"""Corpus metrics, computed the same way for simulated and human corpora so they sit side by side.

Definitions (all on the dialogues a `Corpus` holds, failed ones included unless said otherwise):

- utterances per dialogue: ``len(dialogue.turns)``; supporter turns: turns with speaker supporter.
- words per utterance: white-space separated words, by role.
- Distinct-n (n = 1, 2, 3): distinct n-grams / all n-grams pooled over all utterances of a role,
  ``simple`` tokenizer (lowercased words and punctuation, see `socialsim.evaluate.text`). Pooled
  Distinct-n falls as a corpus grows, so compare corpora of similar size (``--sample``).
- embedding diversity: each dialogue is embedded as the re-normalised mean of its utterances'
  all-MiniLM-L6-v2 embeddings (whole-dialogue text would be cut at the model's 256 word pieces);
  the figure is the mean cosine distance (1 − cosine similarity) over all pairs of dialogues.
  Higher means more varied dialogues.
- self-BLEU: for each dialogue, sacrebleu sentence BLEU-4 (13a tokens, lowercased, exp smoothing,
  effective order) of its text against every other dialogue's text as references, averaged, 0–100.
  Lower means more varied.
- strategy distribution: share of supporter turns per ESConv strategy (turns without a strategy are
  left out); Jensen–Shannon divergence to the reference corpus's distribution, base 2 (0 = same,
  1 = disjoint).
- strategy transitions: counts of strategy → next supporter strategy within a dialogue
  (seeker turns in between are skipped).
- disclosure depth: the deepest layer (0 surface, 1 context, 2 core) a seeker reached, for
  dialogues whose turns record it (simulated ones).
- persona coverage: problem types of the personas (or ESConv's ``problem_type``).
- failure rate: dialogues with ``status: failed``; end reasons as recorded.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from socialsim.evaluate.readers import Corpus
from socialsim.evaluate.text import distinct_n, simple_tokens
from socialsim.schema import ESCONV_PROBLEM_TYPES, Dialogue, Strategy

STRATEGIES: tuple[str, ...] = tuple(s.value for s in Strategy)
ROLES = ("seeker", "supporter")
DIVERSITY_CHOICES = ("both", "embedding", "self-bleu", "none")
LAYER_NAMES = ("surface", "context", "core")


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, median, min, max, n of a list (zeros when it is empty)."""
    if not values:
        return {"n": 0, "mean": 0.0, "median": 0.0, "min": 0.0, "max": 0.0}
    return {
        "n": len(values),
        "mean": float(statistics.fmean(values)),
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def distribution(counts: Mapping[str, int], labels: Sequence[str] = STRATEGIES) -> dict[str, float]:
    """Counts → shares over `labels` (all zeros when there are no counts)."""
    total = sum(counts.get(k, 0) for k in labels)
    return {k: (counts.get(k, 0) / total if total else 0.0) for k in labels}


def js_divergence(p: Mapping[str, float] | Sequence[float], q: Mapping[str, float] | Sequence[float]) -> float:
    """Jensen–Shannon divergence in bits (log base 2), between 0 and 1.

    Both inputs are normalised first; ``0 · log 0`` counts as 0. Mappings are aligned by key.
    Raises `ValueError` when either distribution is all zeros.
    """
    if isinstance(p, Mapping) or isinstance(q, Mapping):
        pm = p if isinstance(p, Mapping) else dict(enumerate(p))
        qm = q if isinstance(q, Mapping) else dict(enumerate(q))
        keys = sorted(set(pm) | set(qm), key=str)
        pv = [float(pm.get(k, 0.0)) for k in keys]
        qv = [float(qm.get(k, 0.0)) for k in keys]
    else:
        pv, qv = [float(x) for x in p], [float(x) for x in q]
        if len(pv) != len(qv):
            raise ValueError("distributions differ in length")
    sp, sq = sum(pv), sum(qv)
    if sp <= 0 or sq <= 0:
        raise ValueError("a distribution is all zeros")
    pv = [x / sp for x in pv]
    qv = [x / sq for x in qv]
    m = [(a + b) / 2 for a, b in zip(pv, qv, strict=True)]

    def kl(a: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    return max(0.0, min(1.0, 0.5 * kl(pv) + 0.5 * kl(qv)))


def strategy_counts(dialogues: Iterable[Dialogue]) -> dict[str, int]:
    c: Counter[str] = Counter()
    for d in dialogues:
        for t in d.turns:
            if t.speaker == "supporter" and t.strategy is not None:
                c[t.strategy.value] += 1
    return {k: c.get(k, 0) for k in STRATEGIES}


def transition_matrix(dialogues: Iterable[Dialogue]) -> list[list[int]]:
    """8×8 counts: row = a supporter strategy, column = the next supporter strategy in the same dialogue."""
    index = {s: i for i, s in enumerate(STRATEGIES)}
    m = [[0] * len(STRATEGIES) for _ in STRATEGIES]
    for d in dialogues:
        seq = [t.strategy.value for t in d.turns if t.speaker == "supporter" and t.strategy is not None]
        for a, b in zip(seq, seq[1:], strict=False):
            m[index[a]][index[b]] += 1
    return m


def dialogue_text(d: Dialogue) -> str:
    return "\n".join(t.text for t in d.turns)


def sample_indices(n: int, k: int | None, seed: int = 0) -> list[int]:
    """Up to `k` indices of `range(n)`, a seeded random sample in ascending order (all when k is None)."""
    if k is None or n <= k:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))


def _quiet_transformers() -> None:
    """No weight-loading progress bars from transformers on our stderr."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only; any transformers version may lack it
        pass


def embedding_diversity(dialogues: Sequence[Dialogue]) -> float | None:
    """Mean pairwise cosine distance of dialogue embeddings (mean of utterance embeddings,
    re-normalised). None for fewer than two dialogues with text."""
    import numpy as np

    from socialsim.embeddings import embed, mean_pairwise_distance

    texts: list[str] = []
    owner: list[int] = []
    for i, d in enumerate(dialogues):
        for t in d.turns:
            if t.text.strip():
                texts.append(t.text)
                owner.append(i)
    if len(set(owner)) < 2:
        return None
    _quiet_transformers()
    vecs = embed(texts)
    owners = np.asarray(owner)
    rows = []
    for i in sorted(set(owner)):
        v = vecs[owners == i].mean(axis=0)
        norm = float(np.linalg.norm(v))
        rows.append(v / norm if norm > 0 else v)
    return float(mean_pairwise_distance(np.stack(rows)))


def self_bleu(dialogues: Sequence[Dialogue]) -> float | None:
    """Mean sacrebleu sentence BLEU-4 of each dialogue's text against all the others (0–100).
    None for fewer than two dialogues."""
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        from socialsim.errors import UserError

        raise UserError("self-BLEU needs the [eval] extra (sacrebleu): pip install -e '.[eval]'") from None
    texts = [" ".join(t.text for t in d.turns) for d in dialogues]
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        return None
    bleu = BLEU(lowercase=True, effective_order=True)
    scores = [bleu.sentence_score(h, texts[:i] + texts[i + 1 :]).score for i, h in enumerate(texts)]
    return float(statistics.fmean(scores))


@dataclass
class CorpusMetrics:
    """All corpus metrics of one corpus; `as_dict` gives the JSON form."""

    name: str
    format: str
    dialogues: int
    ok: int
    failed: int
    failure_rate: float
    end_reasons: dict[str, int]
    utterances_per_dialogue: dict[str, float]
    supporter_turns_per_dialogue: dict[str, float]
    words_per_utterance: dict[str, dict[str, float]]
    distinct: dict[str, dict[str, float]]
    strategies_per_dialogue: dict[str, float]
    strategy_counts: dict[str, int]
    strategy_distribution: dict[str, float]
    transitions: list[list[int]]
    problem_types: dict[str, int]
    problem_types_covered: int
    esconv_problem_types_covered: int
    disclosure: dict[str, int] | None = None
    embedding_diversity: float | None = None
    self_bleu: float | None = None
    diversity_sample: int = 0
    strategy_jsd: float | None = None
    reference: str | None = None
    #: raw lengths behind the histograms: words per utterance by role, utterances per dialogue
    lengths: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self, *, with_lengths: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_lengths:
            d.pop("lengths")
        return d


def corpus_metrics(
    corpus: Corpus,
    *,
    reference: CorpusMetrics | None = None,
    diversity: str = "both",
    sample: int | None = 200,
    seed: int = 0,
) -> CorpusMetrics:
    """Measure one corpus. `reference` (already measured) gives the strategy JSD; `diversity`
    picks the across-dialogue measures (both, embedding, self-bleu, none), computed on a seeded
    sample of at most `sample` dialogues (None: all)."""
    if diversity not in DIVERSITY_CHOICES:
        from socialsim.errors import UserError

        raise UserError(f"unknown diversity measure {diversity!r}: use one of {', '.join(DIVERSITY_CHOICES)}")
    ds = corpus.dialogues
    n = len(ds)
    failed = sum(1 for d in ds if d.status == "failed")
    end_reasons = Counter(d.end_reason or "n/a" for d in ds)
    words: dict[str, list[int]] = {r: [] for r in ROLES}
    toks: dict[str, list[list[str]]] = {r: [] for r in ROLES}
    for d in ds:
        for t in d.turns:
            words[t.speaker].append(len(t.text.split()))
            toks[t.speaker].append(simple_tokens(t.text))
    utterances = [len(d.turns) for d in ds]
    supporter_turns = [sum(1 for t in d.turns if t.speaker == "supporter") for d in ds]
    n_strat = [len({t.strategy for t in d.turns if t.speaker == "supporter" and t.strategy}) for d in ds]
    counts = strategy_counts(ds)
    dist = distribution(counts)
    problems = Counter(m.problem_type or "unknown" for m in corpus.meta)
    known = {p for p in problems if p != "unknown"}
    esconv_types = {p.value for p in ESCONV_PROBLEM_TYPES}
    disclosure = None
    with_layers = [d for d in ds if any(t.disclosure_layer is not None for t in d.turns)]
    if with_layers:
        reached = Counter(LAYER_NAMES[d.max_disclosure] for d in with_layers)
        disclosure = {name: reached.get(name, 0) for name in LAYER_NAMES}
    idx = sample_indices(n, sample, seed)
    picked = [ds[i] for i in idx]
    emb = embedding_diversity(picked) if diversity in ("both", "embedding") else None
    sb = self_bleu(picked) if diversity in ("both", "self-bleu") else None
    jsd = None
    if reference is not None and sum(counts.values()) and sum(reference.strategy_counts.values()):
        jsd = js_divergence(dist, reference.strategy_distribution)
    return CorpusMetrics(
        name=corpus.name,
        format=corpus.format,
        dialogues=n,
        ok=n - failed,
        failed=failed,
        failure_rate=failed / n if n else 0.0,
        end_reasons=dict(end_reasons.most_common()),
        utterances_per_dialogue=summarize(utterances),
        supporter_turns_per_dialogue=summarize(supporter_turns),
        words_per_utterance={r: summarize(words[r]) for r in ROLES},
        distinct={r: {str(k): distinct_n(toks[r], k) for k in (1, 2, 3)} for r in ROLES},
        strategies_per_dialogue=summarize(n_strat),
        strategy_counts=counts,
        strategy_distribution=dist,
        transitions=transition_matrix(ds),
        problem_types=dict(problems.most_common()),
        problem_types_covered=len(known),
        esconv_problem_types_covered=len(known & esconv_types),
        disclosure=disclosure,
        embedding_diversity=emb,
        self_bleu=sb,
        diversity_sample=len(picked) if diversity != "none" else 0,
        strategy_jsd=jsd,
        reference=reference.name if reference is not None else None,
        lengths={
            "seeker_words": words["seeker"],
            "supporter_words": words["supporter"],
            "utterances": utterances,
        },
    )


def compare(
    corpora: Sequence[Corpus],
    *,
    reference_index: int | None = None,
    diversity: str = "both",
    sample: int | None = 200,
    seed: int = 0,
) -> list[CorpusMetrics]:
    """Measure several corpora; the one at `reference_index` (if any) is the JSD reference for all."""
    ref = None
    if reference_index is not None:
        ref = corpus_metrics(corpora[reference_index], diversity=diversity, sample=sample, seed=seed)
        ref.strategy_jsd = 0.0 if sum(ref.strategy_counts.values()) else None
        ref.reference = ref.name
    out = []
    for i, c in enumerate(corpora):
        if i == reference_index and ref is not None:
            out.append(ref)
        else:
            out.append(corpus_metrics(c, reference=ref, diversity=diversity, sample=sample, seed=seed))
    return out


# -- the side-by-side table --------------------------------------------------------------------


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _span(s: Mapping[str, float], digits: int = 1) -> str:
    if not s.get("n"):
        return "n/a"
    return f"{s['mean']:.{digits}f} ({s['min']:.0f}–{s['max']:.0f})"


def _top(counts: Mapping[str, float], k: int = 3, pct: bool = True) -> str:
    items = sorted(((v, n) for n, v in counts.items() if v), reverse=True)[:k]
    if not items:
        return "n/a"
    return " · ".join(f"{n} {_pct(v) if pct else v}" for v, n in items)


def _top_transition(m: list[list[int]]) -> str:
    best = max(((m[i][j], i, j) for i in range(len(m)) for j in range(len(m))), default=(0, 0, 0))
    if best[0] == 0:
        return "n/a"
    total = sum(sum(r) for r in m)
    return f"{STRATEGIES[best[1]]} → {STRATEGIES[best[2]]} {_pct(best[0] / total)}"


def table_rows(metrics: Sequence[CorpusMetrics]) -> list[tuple[str, list[str]]]:
    """(label, one cell per corpus) rows of the side-by-side table, as text."""
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn: Any) -> None:
        rows.append((label, [fn(m) for m in metrics]))

    add("format", lambda m: m.format)
    add("dialogues", lambda m: str(m.dialogues))
    add("failed", lambda m: f"{m.failed} ({_pct(m.failure_rate)})")
    add("end reasons", lambda m: " · ".join(f"{k} {v}" for k, v in m.end_reasons.items()))
    add("utterances / dialogue", lambda m: _span(m.utterances_per_dialogue))
    add("supporter turns / dialogue", lambda m: _span(m.supporter_turns_per_dialogue))
    add("words / seeker utterance", lambda m: _span(m.words_per_utterance["seeker"]))
    add("words / supporter utterance", lambda m: _span(m.words_per_utterance["supporter"]))
    for role in ROLES:
        add(f"Distinct-1/2/3 {role}", lambda m, r=role: " / ".join(_f(m.distinct[r][k]) for k in ("1", "2", "3")))
    add("embedding diversity ↑", lambda m: _f(m.embedding_diversity, 3))
    add("self-BLEU-4 ↓", lambda m: _f(m.self_bleu, 1))
    add("diversity sample", lambda m: str(m.diversity_sample) if m.diversity_sample else "n/a")
    add("strategies / dialogue", lambda m: _span(m.strategies_per_dialogue))
    add("top strategies", lambda m: _top(m.strategy_distribution))
    ref = next((m.reference for m in metrics if m.reference), None)
    add(f"strategy JSD vs {ref}" if ref else "strategy JSD", lambda m: _f(m.strategy_jsd, 3))
    add("top transition", lambda m: _top_transition(m.transitions))
    add(
        "disclosure depth reached",
        lambda m: (
            "n/a"
            if not m.disclosure
            else " · ".join(f"{k} {_pct(v / max(1, sum(m.disclosure.values())))}" for k, v in m.disclosure.items())
        ),
    )
    add(
        "problem types covered",
        lambda m: (
            f"{m.problem_types_covered} (ESConv's {m.esconv_problem_types_covered}/12)"
            if m.problem_types_covered
            else "n/a"
        ),
    )
    return rows
