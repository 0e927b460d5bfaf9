"""The role check: does a line written for the seeker sound like the supporter?

Two parts, either of which rejects a line, and the verdict names which one did:

- **rules** (``rule:<name>``): the supporter-voice patterns that match no real seeker turn of ESConv's
  train split (the build keeps only those; ``meta`` in the model file lists them), e.g. "I'm so sorry to
  hear", "it sounds like you", "how can I help";
- **the voice recognizer** (``voice:<score>``): a logistic regression on the all-MiniLM-L6-v2 embedding
  of the line and of the line after the turn before it, trained on ESConv train utterances labelled by
  speaker plus supporter replies written by the embedded models for train-split seeker turns; its
  threshold holds the out-of-fold rejection of real train seeker turns at the file's ``target``.

Built by ``socialsim build voice-recognizer`` (procedure and figures there and in the README);
the model file is JSON (numbers only, no pickle) and inference is numpy plus the shared embedding model.
"""

from __future__ import annotations

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
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: not a voice model file ({e}); rebuild it with `{REBUILD}`") from None

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
        line = embed([p[0] for p in pairs])
        if not self.context:
            return line
        return np.hstack([line, embed([p[1] for p in pairs])])

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
