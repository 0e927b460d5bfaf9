"""Helpers the agents share: seeds, text clean-up, words copied in a row, usage accounting."""

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
    return " ".join(split_sentences(text)[:max_sentences]).strip()


def split_sentences(text: str) -> list[str]:
    """The sentences of a cleaned utterance, as `clean_utterance` counts them (split after . ! ?)."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


_UPPER_LITERAL = re.compile(r"(?<!\\)[A-Z]")


class CaselessPatterns:
    """Named regexes matched case-insensitively, in order. ASCII text (nearly all model output) is
    lower-cased once and matched by case-sensitive copies of the patterns (re matches those a third
    faster); other text by the ``re.I`` originals. The matches are the same either way: the patterns
    hold no upper-case letters, and for ASCII text lower-casing is exactly what ``re.I`` folds."""

    def __init__(self, named: list[tuple[str, str]], flags: int = 0) -> None:
        for name, rx in named:
            if _UPPER_LITERAL.search(rx):
                raise ValueError(f"pattern {name!r}: write it in lower case (it is matched case-insensitively)")
        self.caseless = [(name, re.compile(rx, flags | re.I)) for name, rx in named]
        self._lower = [(name, re.compile(rx, flags)) for name, rx in named]

    def _for(self, text: str) -> tuple[str, list[tuple[str, re.Pattern[str]]]]:
        return (text.lower(), self._lower) if text.isascii() else (text, self.caseless)

    def first(self, text: str) -> str | None:
        """The name of the first pattern found in ``text``, else None."""
        text, patterns = self._for(text)
        for name, rx in patterns:
            if rx.search(text):
                return name
        return None

    def count(self, text: str) -> dict[str, int]:
        """How many non-overlapping matches of each pattern ``text`` holds."""
        text, patterns = self._for(text)
        return {name: len(rx.findall(text)) for name, rx in patterns}


def total_usage(completions: Iterable[Completion]) -> tuple[Usage, float, int]:
    usage, latency, n = Usage(), 0.0, 0
    for c in completions:
        usage = usage + c.usage
        latency += c.latency_s
        n += 1
    return usage, latency, n


REFUSAL_PATTERN = (
    r"\bi (?:can'?t|cannot|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:help|assist|provide|fulfill|comply)(?: you)? with (?:that|this)\b|"
    r"\bas an ai\b|\bai (?:language )?model\b|\blanguage model\b|\bi'?m (?:just |only )?an ai\b"
)
"""A model refusing or speaking as an AI (lower case, matched case-insensitively): `refuses`, and a supporter reply's
``refusal`` leak (`socialsim.agents.supporter.prompt_leak`)."""
_REFUSAL = re.compile(REFUSAL_PATTERN, re.I)


def refuses(text: str) -> bool:
    """True when a line is the model refusing or speaking as an AI ("I'm sorry, but I can't assist with that", "as an
    AI language model"): never a line of either side of a support chat. No seeker or supporter turn of ESConv's
    train and valid splits matches (`tests/test_role_slips.py`)."""
    return bool(_REFUSAL.search(text))


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (apostrophes kept, curly ones straightened), punctuation dropped."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


_CONTRACTION = [(re.compile(p), r) for p, r in (
    (r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"n't\b", " not"), (r"'m\b", " am"),
    (r"'re\b", " are"), (r"'ve\b", " have"), (r"'ll\b", " will"), (r"'d\b", " would"),
    (r"\b(it|that|what|there|he|she)'s\b", r"\1 is"),
)]


def plain_words(text: str) -> list[str]:
    """`words`, with contractions written out ("it's" as "it is", "can't" as "can not"), so that a copy cannot hide
    behind one: what the copy checks compare."""
    out = " ".join(words(text))
    for pattern, repl in _CONTRACTION:
        out = pattern.sub(repl, out)
    return out.split()


def longest_run(a: list[str], b: list[str]) -> int:
    """The length of the longest run of words ``a`` and ``b`` share in a row."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def copied_run(text: str, sources: Iterable[str | None], at_least: int) -> int | None:
    """The most words in a row ``text`` shares with one of ``sources`` (`longest_run` of `plain_words`; empty ones and
    None skipped), when they are ``at_least`` or more; else None. The echo and self-repeat checks of both agents."""
    line = plain_words(text)
    best = max((longest_run(line, plain_words(s)) for s in sources if s), default=0)
    return best if best >= at_least else None
