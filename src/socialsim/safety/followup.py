"""The seeker's answer right after a protocol reply or a check-in question: ``confirm``, ``deny`` or
``other``.

`FollowupReader` reads the answer with the ordered pattern groups of ``data/followup.json`` (its ``doc``
field explains them) on the rule stage's normalised text: the first group with a match decides, and an
answer no group matches is ``other``. In short: a negated safety statement or a sign of intent confirms
("no, I'm not safe", "I still want to"); an explicit statement of safety or of no intent denies ("I'm not
okay but I'm not suicidal"); a plain "I'm not okay" confirms; a plain "no" or "I'm fine" denies; a question
back ("what do you mean?") is other; a yes or a hedged yes at the head of the answer ("kind of", "idk,
maybe") confirms. The safety layer keeps (or raises) a confirmed answer at the protocol, ends the safety
exchange on a denial, and sends anything else through its stages as a new message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from socialsim.errors import UserError

Answer = Literal["confirm", "deny", "other"]
ANSWERS: tuple[str, ...] = ("confirm", "deny", "other")

_MACRO = re.compile(r"\{([A-Z_]+)\}")
_END = "(?:(?: [.,])*$)"  # "$" in a pattern: the end of the answer, trailing punctuation allowed


def default_followup_path() -> Path:
    return Path(str(resources.files("socialsim.safety").joinpath("data/followup.json")))


@dataclass(frozen=True)
class _Group:
    id: str
    answer: str
    negatable: bool
    patterns: tuple[re.Pattern[str], ...]


class FollowupReader:
    """Reads answers to a safety question. ``normalize``: the text normaliser (default: the shipped rule
    stage's, so answers are read like seeker messages: ``I'm`` -> ``im``, repeated letters collapsed)."""

    def __init__(self, path: str | Path | None = None, *, normalize: Callable[[str], str] | None = None) -> None:
        self.path = Path(path) if path else default_followup_path()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{self.path}: follow-up answer patterns not found") from None
        except ValueError as e:
            raise UserError(f"{self.path}: follow-up answer patterns are not valid JSON ({e})") from None
        self.macros: dict[str, str] = data.get("macros", {})
        self.negation_cues = [c.split() for c in data.get("negation_cues", [])]
        try:
            self.groups = [
                _Group(
                    g["id"],
                    g["answer"],
                    bool(g.get("negatable", False)),
                    tuple(self._compile(p) for p in g["patterns"]),
                )
                for g in data["groups"]
            ]
        except (KeyError, TypeError, re.error) as e:
            raise UserError(f"{self.path}: bad follow-up pattern group ({type(e).__name__}: {e})") from None
        for g in self.groups:
            if g.answer not in ANSWERS:
                raise UserError(f"{self.path}: group {g.id!r} has answer {g.answer!r}; use one of {ANSWERS}")
        if normalize is None:
            from socialsim.safety.rules import load_rules

            normalize = load_rules().normalize
        self.normalize = normalize

    def _expand(self, pattern: str, depth: int = 0) -> str:
        if depth > 5:
            raise re.error("macros nest too deep")

        def macro(m: re.Match[str]) -> str:
            if m.group(1) not in self.macros:
                raise re.error(f"unknown macro {{{m.group(1)}}}")
            return self._expand(self.macros[m.group(1)], depth + 1)

        return _MACRO.sub(macro, pattern)

    def _compile(self, pattern: str) -> re.Pattern[str]:
        body = self._expand(pattern).replace("$", _END)
        return re.compile(r"(?<![^ ])(?:" + body + r")(?![^ ])")

    def _negated(self, text: str, start: int) -> bool:
        """A negation cue in the two words before ``start``, within its clause."""
        window: list[str] = []
        for tok in reversed(text[:start].split()):
            if tok in (",", ".") or len(window) >= 2:
                break
            window.insert(0, tok)
        return any(window[i : i + len(c)] == c for c in self.negation_cues for i in range(len(window) - len(c) + 1))

    def explain(self, text: str) -> tuple[Answer, str | None]:
        """(answer, id of the group that decided; None when nothing matched)."""
        norm = self.normalize(text).strip()
        for g in self.groups:
            for rx in g.patterns:
                for m in rx.finditer(norm):
                    if g.negatable and self._negated(norm, m.start()):
                        continue
                    return g.answer, g.id  # type: ignore[return-value]
        return "other", None

    def classify(self, text: str) -> Answer:
        """``confirm``, ``deny`` or ``other`` for an answer to a safety question."""
        return self.explain(text)[0]


@lru_cache(maxsize=4)
def load_followup(path: str | None = None) -> FollowupReader:
    """A cached `FollowupReader` (None: the shipped patterns, read with the shipped rule stage's normaliser)."""
    return FollowupReader(path)
