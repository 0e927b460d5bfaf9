"""Does a reply do what its thought chose? The strategy check, calibrated on people.

A supporter reply passes when the strategy recognizer gives the strategy its thought declared a probability of
at least that strategy's threshold. Each strategy's threshold is the one at which at most 10 % of ESConv's human
replies with that gold label in the valid split would fail (`calibrate`; ``socialsim build strategy-check``
writes ``data/strategy_check.json``): a reply that fails is less like its declared strategy than nine in ten
people's replies of that strategy are like theirs. With ``simulate --strategy-check N`` (on in ``demo``) a failing
reply is regenerated, at most N times, and the reply most like its declared strategy is kept
(`socialsim.simulate.dialogue`).

The same file holds ESConv's words per utterance and per turn (valid split), which a run's summary puts
next to its own.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.schema import Strategy

MAX_HUMAN_FAIL = 0.10
"""Share of ESConv's valid human replies allowed to fail the check against their own gold label."""
REBUILD = "socialsim build strategy-check"


def default_check_path() -> Path:
    return Path(str(ilr.files("socialsim.recognize").joinpath("data/strategy_check.json")))


@dataclass(frozen=True)
class StrategyCheck:
    """The calibrated threshold on the declared strategy's probability (per strategy, by label), and what it was
    calibrated on."""

    thresholds: dict[str, float]
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: Path | str | None = None) -> StrategyCheck:
        p = Path(path) if path is not None else default_check_path()
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
            thresholds = {s.value: float(meta["per_strategy"][s.value]["threshold"]) for s in Strategy}
            return cls(thresholds, meta)
        except (OSError, ValueError, KeyError, TypeError) as e:
            msg = f"{p}: not a strategy-check file ({type(e).__name__}: {e}); rebuild it with {REBUILD}"
            raise UserError(msg) from None

    def declared_probability(self, declared: Strategy, probs: Mapping[str, float]) -> float:
        return float(probs.get(declared.value, 0.0))

    def passes(self, declared: Strategy, probs: Mapping[str, float]) -> bool:
        """True when the recognizer's probability of ``declared`` (``probs`` keyed by label) reaches the
        declared strategy's threshold."""
        return self.declared_probability(declared, probs) >= self.thresholds[declared.value]


@lru_cache(maxsize=1)
def default_check() -> StrategyCheck:
    """The shipped check, loaded once per process."""
    return StrategyCheck.load()


def esconv_reference_words() -> dict[str, Any]:
    """ESConv's mean words per turn and per utterance by role (valid split), from the shipped check file; {}
    when it cannot be read (a summary then shows no reference rather than failing)."""
    try:
        words = json.loads(default_check_path().read_text(encoding="utf-8"))["esconv_words"]
        return {role: {"turn": words[role]["turn"]["mean"], "utterance": words[role]["utterance"]["mean"]}
                for role in ("supporter", "seeker")}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def threshold_for(gold_probs: Sequence[float], max_fail: float = MAX_HUMAN_FAIL) -> float:
    """The highest threshold at which at most ``max_fail`` of ``gold_probs`` fall below it (a value equal to
    the threshold passes)."""
    if not gold_probs:
        raise ValueError("no probabilities to calibrate on")
    ordered = sorted(gold_probs)
    return ordered[int(max_fail * len(ordered))]


def words_per(texts: Sequence[str]) -> dict[str, float]:
    counts = [len(t.split()) for t in texts]
    return {"mean": round(statistics.fmean(counts), 2), "median": float(statistics.median(counts)), "n": len(counts)}


def esconv_words(dialogs: Sequence[Sequence[tuple[str, str, str | None]]]) -> dict[str, dict[str, Any]]:
    """Words per utterance and per turn (consecutive utterances of one speaker joined: one simulated turn), by
    role, in ESConv dialogues given as ``(speaker, text, strategy)``."""
    from socialsim.recognize.strategy_build import speaker_turns

    joined = [speaker_turns(list(d)) for d in dialogs]
    out: dict[str, dict[str, Any]] = {}
    for role in ("supporter", "seeker"):
        utterances = [t for d in dialogs for sp, t, _ in d if sp == role]
        turns = [t for d in joined for sp, t in d if sp == role]
        out[role] = {"utterance": words_per(utterances), "turn": words_per(turns)}
    return out


def calibrate(
    valid: Path, *, max_fail: float = MAX_HUMAN_FAIL, recognizer: Any = None, predictions: Sequence[Any] | None = None
) -> dict[str, Any]:
    """The strategy-check file's content from an ESConv split file (the valid split: the recognizer never trained
    on it): each human reply's probability of its own gold label under the recognizer (context: the utterances
    before it, as in training), each strategy's threshold (`threshold_for` over the replies with that gold label),
    the share of human replies that fail, per strategy and in all, and ESConv's words per utterance and turn.
    ``predictions``: the recognizer's, of `load_examples` of ``valid`` in order, when the caller already has them."""
    from socialsim.recognize.strategy import LABELS, default_recognizer
    from socialsim.recognize.strategy_build import _sha256, load_examples, split_dialogs

    rec = recognizer or default_recognizer()
    examples = load_examples(valid)
    preds = predictions if predictions is not None else rec.predict([e[0] for e in examples], [e[1] for e in examples])
    gold = [p.probs[LABELS[e[2]]] for e, p in zip(examples, preds, strict=True)]
    per: dict[str, dict[str, Any]] = {}
    failed = 0
    for i, s in enumerate(LABELS):
        mine = [g for g, e in zip(gold, examples, strict=True) if e[2] == i]
        t = math.floor(threshold_for(mine, max_fail) * 1e6) / 1e6  # rounded down: no human reply fails by rounding
        fails = sum(g < t for g in mine)
        failed += fails
        per[s.value] = {"threshold": t, "n": len(mine), "fail_rate": round(fails / len(mine), 4)}
    return {
        "max_human_fail": max_fail,
        "human_fail_rate": round(failed / len(gold), 4),
        "human_top1_agreement": round(sum(p.strategy == LABELS[e[2]] for e, p in zip(examples, preds, strict=True))
                                      / len(gold), 4),
        "per_strategy": per,
        "n": len(gold),
        "calibrated_on": {"file": valid.name, "sha256": _sha256(valid),
                          "data": "ESConv (Liu et al., 2021), CC BY-NC 4.0: research use only"},
        "recognizer_valid_macro_f1": (getattr(rec, "meta", None) or {}).get("validation", {}).get("macro_f1"),
        "esconv_words": esconv_words(split_dialogs(valid)),
        "rebuild": REBUILD,
    }
