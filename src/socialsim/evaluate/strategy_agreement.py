"""Declared vs realized strategy: agreement figures for a corpus, and validation of a realized-strategy
labeller against ESConv's human labels: the strategy recognizer (`socialsim.recognize.strategy`, the default,
``--labeller recognizer``) or the LLM classifier (`socialsim.agents.strategy_classifier`, ``--labeller llm``).

Validation: a stratified sample of the dev TSV's target supporter responses (the same number per strategy,
interleaved so a run cut short by its time budget stays balanced), each labelled by the labeller (the LLM
classifier reads the reply's text alone, the recognizer also the two utterances before it).
Reports accuracy, macro-F1 and per-strategy precision/recall/F1, with the majority-class baseline (always
answering the most frequent strategy of the whole dev file) on the same sample and on the whole file.

    socialsim strategy-agreement ../shared/data/esconv/devWithStrategy_short.tsv \\
        --labeller llm --model qwen2.5-1.5b --per-strategy 20 --budget-s 1100 --out classifier.json

Re-label a corpus's replies (``--relabel``; recognizer by default, ``--labeller llm`` for the classifier):

    socialsim strategy-agreement runs/qwen7b --relabel --out relabelled.jsonl

"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from socialsim.schema import Dialogue, Strategy

LABELS: tuple[Strategy, ...] = tuple(Strategy)
LABELLERS = ("recognizer", "llm")
"""Who labels replies (``socialsim strategy-agreement --labeller``): the learned strategy recognizer
(default) or the LLM classifier."""


def agreement_pairs(dialogues: Iterable[Dialogue]) -> list[tuple[Strategy, Strategy]]:
    """(declared, realized) for every supporter turn that has both."""
    return [
        (t.strategy, t.realized_strategy)
        for d in dialogues
        for t in d.turns
        if t.speaker == "supporter" and t.strategy is not None and t.realized_strategy is not None
    ]


def label_scores(pairs: Sequence[tuple[Strategy, Strategy]]) -> dict[str, Any]:
    """Accuracy, the agreement two independent labellers with these label frequencies would reach by chance
    (``chance_agreement``) and Cohen's kappa, macro-F1 (over the strategies present in the reference),
    per-strategy precision, recall, F1 and support, and the confusion matrix (rows: reference, columns:
    predicted; in `LABELS` order)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if not pairs:
        return {"n": 0, "accuracy": None, "chance_agreement": None, "kappa": None, "macro_f1": None,
                "per_strategy": {}, "confusion": []}
    ref = [a.value for a, _ in pairs]
    pred = [b.value for _, b in pairs]
    present = [s.value for s in LABELS if s.value in set(ref)]
    p, r, f, n = precision_recall_fscore_support(ref, pred, labels=[s.value for s in LABELS], zero_division=0)
    per = {
        s.value: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "f1": round(float(f[i]), 4),
                  "support": int(n[i])}
        for i, s in enumerate(LABELS)
    }
    macro = sum(per[s]["f1"] for s in present) / max(1, len(present))
    cm = confusion_matrix(ref, pred, labels=[s.value for s in LABELS])
    n = len(pairs)
    accuracy = sum(a == b for a, b in zip(ref, pred, strict=True)) / n
    ref_n, pred_n = Counter(ref), Counter(pred)
    chance = sum(ref_n[s] * pred_n[s] for s in ref_n) / (n * n)
    return {
        "n": n,
        "accuracy": round(accuracy, 4),
        "chance_agreement": round(chance, 4),
        "kappa": round((accuracy - chance) / (1 - chance), 4) if chance < 1 else None,
        "macro_f1": round(macro, 4),
        "per_strategy": per,
        "confusion": cm.tolist(),
        "labels": [s.value for s in LABELS],
    }


def stratified_sample(items: Sequence[Any], key: Callable[[Any], Strategy], per_class: int, seed: int = 0) -> list[Any]:
    """Up to ``per_class`` items of each label, interleaved round-robin (a prefix of the list stays balanced)."""
    rng = random.Random(seed)
    by: dict[Strategy, list[Any]] = {}
    for it in items:
        by.setdefault(key(it), []).append(it)
    pools = []
    for s in LABELS:
        pool = list(by.get(s, []))
        rng.shuffle(pool)
        pools.append(pool[:per_class])
    out = []
    for k in range(per_class):
        out.extend(pool[k] for pool in pools if k < len(pool))
    return out


def validate_classifier(
    llm: Any,
    tsv: str | Path,
    *,
    per_strategy: int = 20,
    seed: int = 0,
    budget_s: float | None = None,
    on_item: Callable[[int, int], None] | None = None,
    recognizer: Any = None,
) -> dict[str, Any]:
    """Label a stratified sample of ESConv dev responses with the classifier on ``llm`` (from the reply text
    alone), or with the strategy ``recognizer`` when one is given (reply and its context); stop early when
    ``budget_s`` runs out (the report says how many were labelled). See the module docstring."""
    import asyncio

    from socialsim.agents.strategy_classifier import StrategyClassifier
    from socialsim.corpus.esconv_tsv import read_tsv_examples

    examples = [e for e in read_tsv_examples(tsv) if e.strategy is not None and e.reference.strip()]
    whole = Counter(e.strategy for e in examples)
    majority = whole.most_common(1)[0][0]
    sample = stratified_sample(examples, lambda e: e.strategy, per_strategy, seed)
    clf = StrategyClassifier(llm, seed=seed) if recognizer is None else None
    pairs: list[tuple[Strategy, Strategy]] = []
    unlabelled = 0
    t0 = time.monotonic()

    async def run() -> None:
        nonlocal unlabelled
        for i, ex in enumerate(sample):
            if budget_s is not None and time.monotonic() - t0 > budget_s:
                break
            if clf is None:
                context = [(t.speaker, t.text) for t in ex.context]
                got = (await asyncio.to_thread(recognizer.predict_one, ex.reference, context)).strategy
            else:
                got, _ = await clf.classify(ex.reference, key=ex.line)
            if got is None:
                unlabelled += 1
                got = Strategy.OTHERS  # an unparseable answer counts as a wrong "Others"
            pairs.append((ex.strategy, got))
            if on_item:
                on_item(i + 1, len(sample))

    asyncio.run(run())
    scores = label_scores(pairs)
    base = [(a, majority) for a, _ in pairs]
    return {
        "tsv": str(tsv),
        "sample_planned": len(sample),
        "sample_labelled": len(pairs),
        "unparseable": unlabelled,
        "wall_s": round(time.monotonic() - t0, 1),
        **scores,
        "majority_class": majority.value,
        "majority_baseline_sample": {k: label_scores(base)[k] for k in ("accuracy", "macro_f1")},
        "majority_baseline_dev": round(whole[majority] / sum(whole.values()), 4),
        "dev_distribution": {s.value: whole.get(s, 0) for s in LABELS},
    }


def relabel_realized(
    llm: Any, dialogues: Sequence[Dialogue], *, seed: int = 0, on_item: Callable[[int, int], None] | None = None
) -> tuple[list[Dialogue], dict[str, int]]:
    """Label every supporter reply's realized strategy again with the classifier on ``llm`` (after a
    classifier change, or with a stronger model than the run used); returns copies of the dialogues and
    counts: replies labelled, unlabelled (the classifier failed: the turn keeps its earlier label, if any, and
    gets 'realized_strategy' in ``label_failures``), kept (of those, how many had an earlier label), changed.
    The declared strategy and everything else stay."""
    import asyncio

    from socialsim.agents.strategy_classifier import StrategyClassifier

    clf = StrategyClassifier(llm, seed=seed)
    todo = sum(1 for d in dialogues for t in d.turns if t.speaker == "supporter" and t.text.strip())
    stats = {"labelled": 0, "unlabelled": 0, "kept": 0, "changed": 0}
    out: list[Dialogue] = []

    async def run() -> None:
        done = 0
        for d in dialogues:
            turns = []
            for i, t in enumerate(d.turns):
                if t.speaker == "supporter" and t.text.strip():
                    got, _ = await clf.classify(t.text, key=(d.id, i))
                    others = [k for k in t.label_failures if k != "realized_strategy"]
                    if got is None:  # never replace a label with nothing: keep it, say the relabel failed
                        stats["unlabelled"] += 1
                        stats["kept"] += t.realized_strategy is not None
                        t = t.model_copy(update={"label_failures": [*others, "realized_strategy"]})
                    else:
                        stats["labelled"] += 1
                        stats["changed"] += got != t.realized_strategy
                        t = t.model_copy(update={"realized_strategy": got, "realized_probs": None,  # not the LLM's
                                                 "label_failures": others})
                    done += 1
                    if on_item:
                        on_item(done, todo)
                turns.append(t)
            out.append(d.model_copy(update={"turns": turns}))

    asyncio.run(run())
    return out, stats


def relabel_recognized(
    dialogues: Sequence[Dialogue], rec: Any = None, *, on_item: Callable[[int, int], None] | None = None
) -> tuple[list[Dialogue], dict[str, int]]:
    """Label every supporter reply's realized strategy again with the strategy recognizer (``rec``, default:
    `default_recognizer`), from the reply and the turns before it: ``realized_strategy`` and ``realized_probs``.
    Same counts as `relabel_realized` (the recognizer labels every reply, so none is unlabelled or kept)."""
    from socialsim.evaluate.recognized import recognize, relabelled

    if rec is None:
        from socialsim.recognize.strategy import default_recognizer

        rec = default_recognizer()
    got = recognize(dialogues, rec, on_batch=on_item)
    out = relabelled(dialogues, got)
    changed = sum(dialogues[i].turns[j].realized_strategy != p.strategy for (i, j), p in got.by_turn().items())
    return out, {"labelled": len(got.predictions), "unlabelled": 0, "kept": 0, "changed": changed}
