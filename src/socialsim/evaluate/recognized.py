"""Strategies as the strategy recognizer reads them, for any corpus: every supporter reply of every corpus is
labelled by the same model (`socialsim.recognize.strategy`), from the reply and the utterances before it.

For each corpus:

- ``distribution``: share of supporter replies per recognized ESConv strategy (``counts``: how many);
- ``js_distance_esconv``: Jensen–Shannon *distance* (the square root of the divergence, base 2: 0 = same
  distribution, 1 = disjoint) to ESConv's distribution **as the recognizer sees it** (its labels of ESConv's
  valid split, from the model's ``meta.json``): the like-for-like comparison, since the recognizer's own
  preferences cancel out. ``js_distance_esconv_gold`` compares with ESConv's human labels (train split)
  instead, which mixes the corpus's difference with the recognizer's errors;
- when the corpus has strategy labels of its own (a run's declared strategies, ESConv's annotations, the TSV's
  tags): ``agreement``, the declared label against the recognized one (`label_scores`: accuracy, the agreement
  expected by chance from the two label distributions, Cohen's kappa, macro-F1, per-strategy figures, confusion
  matrix with declared rows and recognized columns). On ESConv itself the declared labels are human annotations,
  so agreement is the recognizer's accuracy against human labels (optimistic on dialogues from ESConv's train
  split, which the recognizer learnt from; its held-out figures are in ``recognizer.validation``);
- ``llm_classifier``: for a run whose replies were labelled by the LLM classifier (``simulate --realized-strategy
  llm`` and runs from before the recognizer), the declared label against those stored labels, kept apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from socialsim.corpus.esconv import EXTERNAL_BACKEND, EXTERNAL_MODEL
from socialsim.evaluate.readers import Corpus
from socialsim.evaluate.strategy_agreement import LABELS, label_scores
from socialsim.schema import Dialogue, Strategy

if TYPE_CHECKING:
    from socialsim.recognize.strategy import StrategyPrediction, StrategyRecognizer

REFERENCE = "esconv_valid_recognized"
"""The key of `meta['distribution']` used as the like-for-like reference."""
GOLD = "esconv_train_gold"
"""The key of ESConv's human-label distribution in `meta['distribution']`."""
AGREEMENT_KEYS = ("n", "accuracy", "chance_agreement", "kappa", "macro_f1")


def js_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen–Shannon distance, base 2 (0 = same, 1 = disjoint), of two label → share mappings (normalised first).
    scipy's ``jensenshannon`` when scipy is installed, else the same formula in numpy. Raises `ValueError` when
    either is all zeros."""
    import numpy as np

    keys = sorted(set(p) | set(q))
    pv = np.array([float(p.get(k, 0.0)) for k in keys])
    qv = np.array([float(q.get(k, 0.0)) for k in keys])
    if pv.sum() <= 0 or qv.sum() <= 0:
        raise ValueError("a distribution is all zeros")
    try:
        from scipy.spatial.distance import jensenshannon
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        pv, qv = pv / pv.sum(), qv / qv.sum()
        m = (pv + qv) / 2

        def kl(a: Any) -> float:
            nz = a > 0
            return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

        return round(math.sqrt(max(0.0, min(1.0, (kl(pv) + kl(qv)) / 2))), 4)
    return round(float(jensenshannon(pv, qv, base=2)), 4)


def reply_items(dialogues: Sequence[Dialogue]) -> list[tuple[int, int, str, list[tuple[str, str]]]]:
    """(dialogue index, turn index, reply, context) of every supporter reply with text; the context is the turns
    before it as (speaker, text), oldest first."""
    out = []
    for i, d in enumerate(dialogues):
        for j, t in enumerate(d.turns):
            if t.speaker == "supporter" and t.text.strip():
                out.append((i, j, t.text, [(u.speaker, u.text) for u in d.turns[:j]]))
    return out


def human_labelled(d: Dialogue) -> bool:
    """A dialogue read from ESConv material (JSON or TSV), whose strategy labels are human annotations."""
    return d.backend == EXTERNAL_BACKEND and d.model == EXTERNAL_MODEL


@dataclass
class Recognized:
    """One corpus's supporter replies as the recognizer labels them: ``keys[k]`` = (dialogue index, turn index)
    of ``predictions[k]``."""

    keys: list[tuple[int, int]]
    predictions: list[StrategyPrediction]

    def by_turn(self) -> dict[tuple[int, int], StrategyPrediction]:
        return dict(zip(self.keys, self.predictions, strict=True))

    def pairs(self, dialogues: Sequence[Dialogue]) -> list[tuple[Strategy, Strategy]]:
        """(declared, recognized) for every labelled reply that has a declared strategy."""
        out = []
        for (i, j), p in zip(self.keys, self.predictions, strict=True):
            declared = dialogues[i].turns[j].strategy
            if declared is not None:
                out.append((declared, p.strategy))
        return out


def recognize(
    dialogues: Sequence[Dialogue],
    rec: StrategyRecognizer,
    *,
    batch_size: int = 64,
    on_batch: Callable[[int, int], None] | None = None,
) -> Recognized:
    """Label every supporter reply of ``dialogues`` (`reply_items`); ``on_batch(done, total)`` after each batch."""
    items = reply_items(dialogues)
    preds: list[StrategyPrediction] = []
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        preds.extend(rec.predict([x[2] for x in chunk], [x[3] for x in chunk], batch_size=batch_size))
        if on_batch is not None:
            on_batch(len(preds), len(items))
    return Recognized(keys=[(i, j) for i, j, _, _ in items], predictions=preds)


def relabelled(dialogues: Sequence[Dialogue], r: Recognized) -> list[Dialogue]:
    """Copies of ``dialogues`` whose labelled supporter turns carry the recognizer's ``realized_strategy`` and
    ``realized_probs`` (a 'realized_strategy' label failure is cleared: the reply now has a label)."""
    got = r.by_turn()
    out = []
    for i, d in enumerate(dialogues):
        turns = []
        for j, t in enumerate(d.turns):
            p = got.get((i, j))
            if p is not None:
                t = t.model_copy(update={
                    "realized_strategy": p.strategy, "realized_probs": p.as_json(),
                    "label_failures": [k for k in t.label_failures if k != "realized_strategy"],
                })  # fmt: skip
            turns.append(t)
        out.append(d.model_copy(update={"turns": turns}))
    return out


def llm_classifier_pairs(dialogues: Sequence[Dialogue]) -> list[tuple[Strategy, Strategy]]:
    """(declared, stored realized) for supporter turns whose stored label came from the LLM classifier (a label
    without probabilities)."""
    return [
        (t.strategy, t.realized_strategy)
        for d in dialogues
        for t in d.turns
        if t.speaker == "supporter" and t.strategy is not None and t.realized_strategy is not None
        and t.realized_probs is None
    ]


def recognizer_info(rec: StrategyRecognizer) -> dict[str, Any]:
    """What the report says about the recognizer: its directory, training data, held-out figures and ESConv's
    reference distributions (from its ``meta.json``)."""
    meta = rec.meta
    dist = meta.get("distribution") or {}
    validation = meta.get("validation") or {}
    return {
        "path": str(rec.path),
        "base_encoder": meta.get("base_encoder"),
        "trained_on": meta.get("trained_on"),
        "validated_on": meta.get("validated_on"),
        "validation": {k: validation[k] for k in (*AGREEMENT_KEYS[1:], "top2_accuracy", "majority_class_accuracy")
                       if k in validation},
        "reference": {REFERENCE: dist.get(REFERENCE), GOLD: dist.get(GOLD)},
    }


def corpus_summary(corpus: Corpus, r: Recognized, info: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of the module docstring for one corpus (JSON-ready)."""
    counts = Counter(p.strategy.value for p in r.predictions)
    n = len(r.predictions)
    dist = {s.value: round(counts.get(s.value, 0) / n, 4) if n else 0.0 for s in LABELS}
    ref = info["reference"]

    def jsd(key: str) -> float | None:
        q = ref.get(key)
        return js_distance(dist, q) if n and q and sum(q.values()) > 0 else None

    pairs = r.pairs(corpus.dialogues)
    declared = None
    if pairs:
        labelled = {i for (i, j) in r.keys if corpus.dialogues[i].turns[j].strategy is not None}
        human = all(human_labelled(corpus.dialogues[i]) for i in labelled)
        declared = "human" if human else "supporter"
    llm = llm_classifier_pairs(corpus.dialogues)
    return {
        "replies": n,
        "counts": {s.value: counts.get(s.value, 0) for s in LABELS},
        "distribution": dist,
        "mean_confidence": round(sum(p.confidence for p in r.predictions) / n, 4) if n else None,
        "js_distance_esconv": jsd(REFERENCE),
        "js_distance_esconv_gold": jsd(GOLD),
        "declared_labels": declared,
        "agreement": label_scores(pairs) if pairs else None,
        "llm_classifier": {k: v for k, v in label_scores(llm).items() if k in AGREEMENT_KEYS} if llm else None,
    }


def recognize_corpora(
    corpora: Sequence[Corpus],
    rec: StrategyRecognizer | None = None,
    *,
    on_batch: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, Recognized], dict[str, Any]]:
    """Label every corpus with one recognizer (default: `default_recognizer`); returns the labels by corpus name
    and the report's data: ``{"recognizer": recognizer_info, "corpora": {name: corpus_summary}}``."""
    if rec is None:
        from socialsim.recognize.strategy import default_recognizer

        rec = default_recognizer()
    info = recognizer_info(rec)
    labels: dict[str, Recognized] = {}
    summaries: dict[str, Any] = {}
    for c in corpora:
        cb = (lambda done, total, name=c.name: on_batch(name, done, total)) if on_batch is not None else None
        labels[c.name] = recognize(c.dialogues, rec, on_batch=cb)
        summaries[c.name] = corpus_summary(c, labels[c.name], info)
    return labels, {"recognizer": info, "corpora": summaries}


# -- the report section ------------------------------------------------------------------------------------


def _cell(v: Any) -> Any:
    return "" if v is None else v


def recognized_section(
    corpora: Sequence[Corpus], data: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The report's recognized-strategies section as its template shows it: a ``note`` when the recognizer did
    not run, else an introduction, the figures table, the distribution table (with ESConv's two reference
    distributions), what agreement means on human labels, and PNG figures (distributions, confusion matrices)."""
    if not data:
        return {"note": "The strategy recognizer did not run (evaluate --no-recognize)."}
    from socialsim.evaluate.report import _color, _figure, _png, confusion_png
    from socialsim.taxonomy import SHORT

    info, per = data["recognizer"], data["corpora"]
    names = [c.name for c in corpora if c.name in per]
    v = info.get("validation") or {}
    held_out = ", ".join(f"{k.replace('_', ' ')} {v[k]}" for k in ("accuracy", "macro_f1", "kappa") if k in v)
    intro = (
        f"Every supporter reply of every corpus is labelled by the same strategy recognizer ({info['path']}), "
        "from the reply and the two utterances before it"
        + (f"; on ESConv's held-out valid split it scores {held_out} against the human labels." if held_out else ".")
        + " Jensen–Shannon distance, base 2: 0 = the same strategy distribution, 1 = disjoint. 'ESConv as "
        "recognized' is the recognizer's own labelling of ESConv's valid split: comparing with it is like for like "
        "(the recognizer's preferences cancel out); 'ESConv gold' is ESConv's human labels (train split)."
    )
    labels_said = {"human": "ESConv's human annotations", "supporter": "the supporter's declared strategy"}
    rows = []
    for label, key in (
        ("supporter replies labelled", "replies"),
        ("JS distance to ESConv as recognized (like for like)", "js_distance_esconv"),
        ("JS distance to ESConv gold labels", "js_distance_esconv_gold"),
        ("mean probability of the recognized strategy", "mean_confidence"),
    ):
        rows.append([label, *[_cell(per[n][key]) for n in names]])
    rows.append(["declared labels", *[labels_said.get(per[n]["declared_labels"], "none") for n in names]])
    for label, key in (
        ("declared = recognized strategy", "accuracy"),
        ("… expected by chance from the two label distributions", "chance_agreement"),
        ("… Cohen's kappa", "kappa"),
        ("… macro-F1 (recognized against declared)", "macro_f1"),
        ("replies with both labels", "n"),
    ):
        rows.append([label, *[_cell((per[n]["agreement"] or {}).get(key)) for n in names]])
    if any(per[n]["llm_classifier"] for n in names):
        for label, key in (("declared = the LLM classifier's stored label", "accuracy"),
                           ("… its Cohen's kappa", "kappa"), ("… replies it labelled", "n")):
            rows.append([label, *[_cell((per[n]["llm_classifier"] or {}).get(key)) for n in names]])
    ref = info["reference"]
    refs = {"ESConv as recognized (valid)": ref.get(REFERENCE) or {}, "ESConv gold (train)": ref.get(GOLD) or {}}
    dist_header = ["strategy", *names, *refs]
    dist_rows = [
        [s.value, *[f"{100 * per[n]['distribution'][s.value]:.1f}% ({per[n]['counts'][s.value]})" for n in names],
         *[f"{100 * r.get(s.value, 0.0):.1f}%" if r else "" for r in refs.values()]]
        for s in LABELS
    ]
    human = [n for n in names if per[n]["declared_labels"] == "human"]
    human_note = (
        f"{', '.join(human)}: the declared labels are ESConv's human annotations, so 'declared = recognized' is the "
        "recognizer's accuracy against human labels. Dialogues from ESConv's train split were seen in training, "
        "which makes it optimistic; the held-out figures are above."
        if human else ""
    )
    images: list[dict[str, str]] = []
    shown = [n for n in names if per[n]["replies"]]
    if shown:
        series = {n: per[n]["distribution"] for n in shown} | {k: r for k, r in refs.items() if r}
        fig = _figure(10, 4)
        ax = fig.add_subplot()
        width = 0.8 / len(series)
        for i, (name, dist) in enumerate(series.items()):
            xs = [k + (i - (len(series) - 1) / 2) * width for k in range(len(LABELS))]
            js = per[name]["js_distance_esconv"] if name not in refs else None
            label = name if js is None else f"{name} · JS distance to ESConv {js:.3f}"
            ax.bar(xs, [100 * dist.get(s.value, 0.0) for s in LABELS], width, label=label, color=_color(i),
                   hatch="//" if name in refs else None)
        ax.set_xticks(range(len(LABELS)), [SHORT.get(s.value, s.value) for s in LABELS], rotation=20)
        ax.set_ylabel("% of supporter replies (recognized)")
        ax.legend(fontsize=8)
        images.append({"png": _png(fig), "alt": "recognized strategy distribution"})
    for n in names:
        a = per[n]["agreement"]
        if not a:
            continue
        declared = "human annotation" if per[n]["declared_labels"] == "human" else "the thought"
        png = confusion_png(a["confusion"], a["labels"], xlabel="recognized (strategy recognizer)",
                            ylabel=f"declared ({declared})", title=n)
        images.append({"png": png, "alt": f"strategy confusion {n}"})
    return {"note": "", "intro": intro, "header": ["figure", *names], "rows": rows, "dist_header": dist_header,
            "dist_rows": dist_rows, "human_note": human_note, "images": images, "doc": (__doc__ or "").strip()}
