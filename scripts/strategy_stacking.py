"""Would the strategy recognizer gain from where a reply sits in the dialogue, or from the strategy before it?

    python scripts/strategy_stacking.py [RECOGNIZER_DIR]     # default: the shipped recognizer

On ESConv's valid split only (the recognizer never trained on it): 5-fold cross-fitting by dialogue of a
logistic regression on the shipped recognizer's 8 log-probabilities, alone and with the reply's position
(utterance index, bucketed; whether the utterance before was the supporter's) and the recognized
probabilities of the supporter's previous reply, plain and class-balanced. Prints accuracy, macro-F1 and
per-strategy F1 of each next to the recognizer's own argmax. Neither adds anything. On the top-two-layer model
(2026-12-06): 0.558-0.563 accuracy and 0.489-0.494 macro-F1 against its own 0.561 / 0.506. On the LoRA model
(2026-12-07): 0.552-0.586 and 0.501-0.526 against its own 0.583 / 0.531; the class-balanced fit, which can
move each class's threshold, does not lift Information (0.30) or the macro-F1.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold

from socialsim.recognize.strategy import LABELS, StrategyRecognizer
from socialsim.recognize.strategy_build import default_split, split_dialogs
from socialsim.schema import parse_strategy

BUCKETS = (0, 1, 2, 4, 8, 15, 30)


def main() -> None:
    index = {s: i for i, s in enumerate(LABELS)}
    rec = StrategyRecognizer.load(sys.argv[1] if len(sys.argv) > 1 else None)
    rows = []
    for d, dialog in enumerate(split_dialogs(default_split("valid"))):
        for k, (speaker, text, strategy) in enumerate(dialog):
            if speaker == "supporter":
                context = [(s, t) for s, t, _ in dialog[:k]]  # the recognizer reads as much as it was built with
                rows.append((d, k, text, context, index[parse_strategy(str(strategy))],
                             k > 0 and dialog[k - 1][0] == "supporter"))  # fmt: skip
    preds = rec.predict([r[2] for r in rows], [r[3] for r in rows])
    logp = np.log(np.array([[p.probs[s] for s in LABELS] for p in preds]) + 1e-6)
    y, groups = np.array([r[4] for r in rows]), np.array([r[0] for r in rows])
    pos = np.zeros((len(rows), len(BUCKETS) + 2))
    prev = np.zeros((len(rows), len(LABELS) + 1))
    last: dict[int, int] = {}
    for i, (d, k, *_, after_supporter) in enumerate(rows):
        pos[i, next((j for j, b in enumerate(BUCKETS) if k <= b), len(BUCKETS))] = 1
        pos[i, -1] = after_supporter
        if d in last:
            prev[i, : len(LABELS)] = np.exp(logp[last[d]])
        else:
            prev[i, -1] = 1  # the dialogue's first reply
        last[d] = i
    raw = logp.argmax(1)
    print(f"recognizer argmax: accuracy {accuracy_score(y, raw):.3f} macro-F1 {f1_score(y, raw, average='macro'):.3f}")
    variants = {"log-probs": logp, "+ position": np.hstack([logp, pos]), "+ previous strategy": np.hstack([logp, prev]),
                "+ both": np.hstack([logp, pos, prev])}  # fmt: skip
    for name, x in variants.items():
        for weights in (None, "balanced"):
            out = np.zeros(len(y), dtype=int)
            for a, b in GroupKFold(5).split(x, y, groups):
                out[b] = LogisticRegression(max_iter=3000, class_weight=weights).fit(x[a], y[a]).predict(x[b])
            per = " ".join(f"{v:.2f}" for v in f1_score(y, out, average=None))
            print(f"{name:20} {weights or 'plain':8} accuracy {accuracy_score(y, out):.3f} "
                  f"macro-F1 {f1_score(y, out, average='macro'):.3f} per strategy [{per}]")


if __name__ == "__main__":
    main()
