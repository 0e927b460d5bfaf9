"""Two cheap ways past the strategy recognizer's argmax, scored on ESConv valid: per-class offsets, and averaging.

    python scripts/strategy_variants.py                       # the shipped recognizer
    python scripts/strategy_variants.py DIR [OTHER_DIR]       # another build; and its average with OTHER_DIR's

1. Per-class offsets added to the log-probabilities, tuned for macro-F1 (coordinate ascent, offsets -1.5..1.5)
   on the first half of valid's replies and scored on the second half, then the other way round: would
   thresholds chosen on one set of dialogues carry to others?
2. With OTHER_DIR: the two recognizers' probabilities averaged with weights 0..1, on all of valid.

Each recognizer reads the context it was built with. Nothing is written. (2026-12-07, shipped LoRA model:
offsets lower the held-out macro-F1 one way, 0.532 to 0.522, and leave it the other, 0.529 to 0.530; averaged
with the top-two-layer model, ``git show f996884~1:src/socialsim/recognize/data/strategy/...``, 0.516-0.534.)
"""

from __future__ import annotations

import sys

import numpy as np

from socialsim.evaluate.strategy_agreement import label_scores
from socialsim.recognize.strategy import LABELS, StrategyRecognizer
from socialsim.recognize.strategy_build import default_split, load_examples
from socialsim.schema import Strategy


def probs(path: str | None) -> tuple[np.ndarray, np.ndarray]:
    rec = StrategyRecognizer.load(path)
    va = load_examples(default_split("valid"))
    preds = rec.predict([e[0] for e in va], [e[1] for e in va])
    return np.array([[p.probs[s] for s in LABELS] for p in preds]), np.array([e[2] for e in va])


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, macro-F1, Information's F1), as `label_scores` gives them for the recognizer's own figures."""
    s = label_scores([(LABELS[a], LABELS[b]) for a, b in zip(y.tolist(), pred.tolist(), strict=True)])
    return s["accuracy"], s["macro_f1"], s["per_strategy"][Strategy.INFORMATION.value]["f1"]


def line(s: tuple[float, float, float]) -> str:
    return f"accuracy {s[0]:.4f} macro-F1 {s[1]:.4f} Information F1 {s[2]:.3f}"


def tune(logp: np.ndarray, y: np.ndarray) -> np.ndarray:
    b = np.zeros(len(LABELS))
    for _ in range(3):
        for k in range(len(LABELS)):
            trial = []
            for d in np.arange(-1.5, 1.51, 0.1):
                bb = b.copy()
                bb[k] = d
                trial.append((scores(y, (logp + bb).argmax(1))[1], -abs(d), d))
            b[k] = max(trial)[2]
    return b


def main() -> None:
    p, y = probs(sys.argv[1] if len(sys.argv) > 1 else None)
    logp = np.log(p + 1e-9)
    print("argmax:", line(scores(y, logp.argmax(1))))
    half = len(y) // 2
    for name, a, b in (("first half -> second", slice(0, half), slice(half, None)),
                       ("second half -> first", slice(half, None), slice(0, half))):
        off = tune(logp[a], y[a])
        before, after = scores(y[b], logp[b].argmax(1)), scores(y[b], (logp[b] + off).argmax(1))
        print(f"offsets tuned on the {name}: {np.round(off, 1).tolist()}\n  held out, before: {line(before)}\n"
              f"  held out, after:  {line(after)}")
    if len(sys.argv) > 2:
        q, _ = probs(sys.argv[2])
        for w in (0.3, 0.5, 0.7):
            print(f"average, weight {w} on the first:", line(scores(y, (w * p + (1 - w) * q).argmax(1))))


if __name__ == "__main__":
    main()
