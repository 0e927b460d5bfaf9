"""Helpers the agents share: seeds, text clean-up, usage accounting."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from socialsim.llm.base import Completion
from socialsim.schema import Usage


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (run seed, dialogue index, role, turn, attempt)."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


_PREFIX = re.compile(
    r"^\s*(?:\*\*)?(?:seeker|supporter|user|assistant|me|you|[A-Z][\w'-]+(?: [A-Z][\w'-]+){0,2})\s*(?:\*\*)?\s*:\s*"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def clean_utterance(text: str, *, max_sentences: int = 4) -> str:
    """Strip speaker labels, quotes and stray whitespace; keep the first few sentences."""
    text = text.strip()
    # a model that keeps going often starts writing the other side's line: cut there
    text = re.split(r"\n\s*(?:seeker|supporter|user|assistant)\s*:", text, flags=re.I)[0]
    text = _PREFIX.sub("", text, count=1)
    text = " ".join(text.split()).strip().strip('"').strip()
    parts = _SENTENCE.split(text)
    return " ".join(parts[:max_sentences]).strip()


def total_usage(completions: Iterable[Completion]) -> tuple[Usage, float, int]:
    usage, latency, n = Usage(), 0.0, 0
    for c in completions:
        usage = usage + c.usage
        latency += c.latency_s
        n += 1
    return usage, latency, n
