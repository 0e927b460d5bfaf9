"""The role check: does a line written for the seeker sound like the supporter?

Two parts, either of which rejects a line, and the verdict names which one did:

- **rules** (``rule:<name>``): the supporter-voice patterns that match no real seeker turn of ESConv's
  train split (the build keeps only those; ``meta`` in the model file lists them), e.g. "I'm so sorry to
  hear", "it sounds like you", "how can I help";
- **the voice recognizer** (``voice:<score>``): a logistic regression on the all-MiniLM-L6-v2 embedding
  of the line and of the line after the turn before it, and (models built since 2026-12-06) the strategy
  recognizer's encoder output of the line, trained on ESConv train utterances labelled by
  speaker plus supporter replies written by the embedded models for train-split seeker turns; its
  threshold holds the out-of-fold rejection of real train seeker turns at the file's ``target``.

Built by ``socialsim build voice-recognizer`` (procedure and figures there and in the README);
the model file is JSON (numbers only, no pickle) and inference is numpy plus the shared embedding model.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError

REBUILD = "socialsim build voice-recognizer"


def default_model_path() -> Path:
    return Path(str(ilr.files("socialsim.recognize").joinpath("data/voice_model.json")))


def feature_texts(text: str, before: str | None) -> tuple[str, str]:
    """(the line, the turn before and the line) as the recognizer embeds them."""
    line = " ".join(text.split())
    prev = " ".join((before or "").split())
    return line, f"{prev} || {line}" if prev else line


def strategy_features(texts: list[str]) -> Any:
    """The shipped strategy recognizer's pooled encoder output of each line alone (no context: the speaker
    names of a context would give the speaker away). Its encoder was tuned to what supporters' replies do,
    which separates a supporter's voice better than the base embedding alone (`scripts/voice_features.py`)."""
    from socialsim.recognize.strategy import shipped_recognizer

    return shipped_recognizer().pooled_many(texts)


def strategy_weights_sha256() -> str:
    """The sha256 of the shipped strategy recognizer's weights, which a voice model built on them records."""
    from socialsim.recognize.strategy import default_model_dir

    f = default_model_dir() / "model.safetensors"
    if not f.is_file():
        raise UserError(f"{f}: strategy recognizer file missing (the role check reads it); reinstall socialsim")
    return hashlib.sha256(f.read_bytes()).hexdigest()


@dataclass(frozen=True)
class VoiceVerdict:
    """Why a seeker line was judged supporter-like: ``rule:<name>`` or ``voice:<score>``."""

    reason: str
    score: float | None = None


class VoiceRecognizer:
    """The rules that never misjudge real seekers, OR the learned score at or above ``threshold``."""

    def __init__(self, model: dict[str, Any], path: Path) -> None:
        import numpy as np

        from socialsim.agents.seeker import supporter_rules

        self.path, self.meta = path, model
        try:
            self.w = np.asarray(model["coef"], dtype=np.float64)
            self.b = float(model["intercept"])
            self.threshold = float(model["threshold"])
            self.rules = supporter_rules(list(model["rules"]))
            self.context = bool(model.get("context", True))
            self.strategy_sha256 = model.get("strategy_encoder", {}).get("weights_sha256")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{path}: not a voice model file ({e}); rebuild it with `{REBUILD}`") from None
        if self.strategy_sha256 is not None and self.strategy_sha256 != strategy_weights_sha256():
            raise UserError(f"{path}: built on another strategy recognizer than the one installed; rebuild it with "
                            f"`{REBUILD}`")

    @classmethod
    def load(cls, path: Path | str | None = None) -> VoiceRecognizer:
        p = Path(path) if path is not None else default_model_path()
        if not p.is_file():
            raise UserError(f"{p}: voice model file missing; rebuild it with `{REBUILD}` or reinstall")
        try:
            model = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{p}: unreadable voice model file ({e}); rebuild it with `{REBUILD}`") from None
        if not isinstance(model, dict):
            raise UserError(f"{p}: not a voice model file; rebuild it with `{REBUILD}`")
        return cls(model, p)

    def features(self, texts: Sequence[str], before: Sequence[str | None]) -> Any:
        import numpy as np

        from socialsim.embeddings import embed

        pairs = [feature_texts(t, b) for t, b in zip(texts, before, strict=True)]
        parts = [embed([p[0] for p in pairs])]
        if self.context:
            parts.append(embed([p[1] for p in pairs]))
        if self.strategy_sha256 is not None:
            parts.append(strategy_features(list(texts)))
        return np.hstack(parts)

    def scores(self, texts: Sequence[str], before: Sequence[str | None] | None = None) -> list[float]:
        """The learned supporter-voice score of each line (0..1)."""
        if not texts:
            return []
        x = self.features(texts, before if before is not None else [None] * len(texts))
        return [1.0 / (1.0 + math.exp(-float(z))) for z in x @ self.w + self.b]

    def check_many(self, texts: Sequence[str], before: Sequence[str | None] | None = None) -> list[VoiceVerdict | None]:
        """One verdict per line (None: sounds like a seeker)."""
        scores = self.scores(texts, before)
        out: list[VoiceVerdict | None] = []
        for text, s in zip(texts, scores, strict=True):
            rule = self.rules.first(text)
            if rule is not None:
                out.append(VoiceVerdict(f"rule:{rule}", round(s, 4)))
            elif s >= self.threshold:
                out.append(VoiceVerdict(f"voice:{s:.2f}", round(s, 4)))
            else:
                out.append(None)
        return out

    def check(self, text: str, before: str | None = None) -> VoiceVerdict | None:
        return self.check_many([text], [before])[0]


@lru_cache(maxsize=1)
def default_voice() -> VoiceRecognizer:
    """The shipped role check, loaded once per process."""
    return VoiceRecognizer.load()
