"""The rule stage of the crisis safety layer: a documented lexicon (``data/lexicon.json``) of
patterns with idiom and negation handling, matched on normalised text.

`RuleStage.check` answers ``high`` (route to the crisis protocol at once), ``ambiguous`` (a risk
signal without stated intent: a check-in, unless the learned stage scores it ``none``) or ``none``;
`RuleStage.screen_output` checks the supporter's own replies for means or method content. The
lexicon's ``doc`` field explains the pattern language.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from socialsim.errors import UserError

RiskCategory = Literal["none", "self_harm", "suicide", "harm_to_others"]
RuleLevel = Literal["high", "ambiguous", "none"]
#: When several categories hit at once, the protocol follows the first of these.
CATEGORY_ORDER: tuple[str, ...] = ("suicide", "self_harm", "harm_to_others")

_MACRO = re.compile(r"\{([A-Z_]+)\}")
_GAP = re.compile(r"\{~(\d+)\}")
_SENTENCE_END = re.compile(r"[.!?;:\n\r]+")
_REPEAT = re.compile(r"([a-z])\1{2,}")
_NOT_WORD = re.compile(r"[^\w.,]+")
_START, _END = r"(?<![^ ])(?:", r")(?![^ ])"  # a lexicon pattern starts and ends on a token boundary


def default_lexicon_path() -> Path:
    return Path(str(resources.files("socialsim.safety").joinpath("data/lexicon.json")))


def _damerau1(a: str, b: str) -> bool:
    """True when a and b differ by exactly one insertion, deletion, substitution or transposition."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    for i in range(len(long_)):
        if long_[:i] + long_[i + 1 :] == short:
            return True
    return False


@dataclass(frozen=True)
class RuleHit:
    """One pattern match: which rule, what it matched, and why it was dropped (if it was)."""

    rule: str
    category: str
    level: str
    matched: str
    trigger: str
    dropped: str | None = None
    """``idiom:<id>`` or ``negated:<cue>`` when the hit does not count."""
    distance: str | None = None
    """``past``, ``other`` or ``fiction`` when the hit's sentence has one of the lexicon's distance cues."""

    def as_dict(self) -> dict[str, Any]:
        d = {"rule": self.rule, "category": self.category, "level": self.level, "matched": self.matched}
        if self.dropped:
            d["dropped"] = self.dropped
        if self.distance:
            d["distance"] = self.distance
        return d


@dataclass
class RuleResult:
    """What the rule stage decided about one message."""

    level: RuleLevel
    category: RiskCategory
    hits: list[RuleHit] = field(default_factory=list)
    """Hits that count (high ones first)."""
    dropped: list[RuleHit] = field(default_factory=list)
    """Hits dropped as idioms or negated statements."""

    @property
    def rule(self) -> str | None:
        return self.hits[0].rule if self.hits else None

    @property
    def matched(self) -> str | None:
        return self.hits[0].matched if self.hits else None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"level": self.level, "category": self.category, "rule": self.rule}
        if self.hits:
            d["hits"] = [h.as_dict() for h in self.hits]
        if self.dropped:
            d["dropped"] = [h.as_dict() for h in self.dropped]
        return d


@dataclass(frozen=True)
class _Rule:
    id: str
    category: str
    level: str
    negatable: bool
    rx: re.Pattern[str]


class RuleStage:
    """Compiled lexicon. Thread-safe and cheap to call (a few dozen regexes per message)."""

    def __init__(self, lexicon_path: str | Path | None = None) -> None:
        path = Path(lexicon_path) if lexicon_path else default_lexicon_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: safety lexicon not found") from None
        except ValueError as e:
            raise UserError(f"{path}: safety lexicon is not valid JSON ({e})") from None
        self.path = path
        self.version = data.get("version", 1)
        self.macros: dict[str, str] = data.get("macros", {})
        self.typos: dict[str, str] = data.get("typos", {})
        self.fuzzy_words: list[str] = data.get("fuzzy_words", [])
        self.fuzzy_protect = frozenset(data.get("fuzzy_protect", []))
        self.negation_cues: list[list[str]] = [c.split() for c in data.get("negation_cues", [])]
        self.doubt_rx = self._union(data.get("doubt_cues", []))
        self.scope_breakers = frozenset(data.get("scope_breakers", [",", "."]))
        try:
            self.idioms = [
                (i["id"], self._compile(i["pattern"]), self._compile(i["unless"]) if i.get("unless") else None)
                for i in data.get("idioms", [])
            ]
            self.rules = [
                _Rule(r["id"], r["category"], r["level"], bool(r.get("negatable", False)), self._compile(r["pattern"]))
                for r in data.get("rules", [])
            ]
            self.output_rules = [(o["id"], self._compile(o["pattern"])) for o in data.get("output_screen", [])]
            self.distance_cues = [
                (kind, rx)
                for kind, pats in (data.get("distance_cues") or {}).items()
                if (rx := self._any([self._compile(p) for p in pats])) is not None
            ]
        except (KeyError, re.error) as e:
            raise UserError(f"{path}: bad safety lexicon entry ({e})") from None
        for r in self.rules:
            if r.category not in CATEGORY_ORDER or r.level not in ("high", "ambiguous"):
                raise UserError(f"{path}: rule {r.id!r} has an unknown category or level")
        # one pass that says whether any rule can match: most messages match none, and then the
        # per-rule passes and the idiom spans are skipped (same result, a fraction of the time)
        self._any_rule = self._any([r.rx for r in self.rules])
        self._any_output = self._any([rx for _, rx in self.output_rules])
        self._fuzzy_cache: dict[str, str] = {}

    # -- compiling ------------------------------------------------------------------------------
    def _expand(self, pattern: str, depth: int = 0) -> str:
        if depth > 5:
            raise re.error("macros nest too deep")

        def macro(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.macros:
                raise re.error(f"unknown macro {{{name}}}")
            return self._expand(self.macros[name], depth + 1)

        pattern = _GAP.sub(lambda m: f"(?:[^ .,]+ ){{0,{m.group(1)}}}", pattern)
        # the normalised text ends with a space: "$" in a pattern means "at the end of the message"
        pattern = pattern.replace("$", " ?$")
        return _MACRO.sub(macro, pattern)

    def _compile(self, pattern: str) -> re.Pattern[str]:
        # a match starts and ends on a token boundary of the normalised text
        return re.compile(_START + self._expand(pattern) + _END)

    @staticmethod
    def _any(patterns: list[re.Pattern[str]]) -> re.Pattern[str] | None:
        """One pattern that matches where any of ``patterns`` does (named groups dropped). Patterns of
        `_compile` share their token-start check: it is tested once per position, not once per pattern
        (a third of the time of the plain alternation on a seeker message)."""
        if not patterns:
            return None
        unnamed = [re.sub(r"\(\?P<\w+>", "(?:", p.pattern) for p in patterns]
        if all(u.startswith(_START) and u.endswith(_END) for u in unnamed):
            body = [u[len(_START) : -len(_END)] for u in unnamed]
            return re.compile(_START + "|".join(f"(?:{b}){_END[1:]}" for b in body) + ")")
        return re.compile("|".join(f"(?:{u})" for u in unnamed))

    @staticmethod
    def _union(phrases: list[str]) -> re.Pattern[str] | None:
        if not phrases:
            return None
        alts = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        return re.compile(r"(?<![^ ])(?:" + alts + r")(?![^ ])")

    # -- normalising ----------------------------------------------------------------------------
    def _fix_token(self, tok: str) -> str:
        if tok in self.typos:
            return self.typos[tok]
        if len(tok) < 5 or tok in self.fuzzy_protect or not tok.isalpha():
            return tok
        if tok in self._fuzzy_cache:
            return self._fuzzy_cache[tok]
        fixed = tok
        for w in self.fuzzy_words:
            if w[0] == tok[0] and _damerau1(tok, w):
                fixed = w
                break
        if len(self._fuzzy_cache) < 50_000:
            self._fuzzy_cache[tok] = fixed
        return fixed

    def normalize(self, text: str) -> str:
        """The text the patterns see: `` word word , word . word `` (leading/trailing space)."""
        t = unicodedata.normalize("NFKC", text).lower()
        t = re.sub(r"[’‘`´']", "", t)
        t = _REPEAT.sub(r"\1", t)
        t = _SENTENCE_END.sub(" . ", t)
        t = t.replace(",", " , ").replace("&", " and ")
        t = _NOT_WORD.sub(" ", t).replace("_", " ")
        t = re.sub(r"(?<=\w)\.(?=\w)", " . ", t)  # "end.it" / "3.5" never glue words together
        tokens = [self._fix_token(tok) for tok in t.split()]
        out = " ".join(tokens)
        out = re.sub(r"(?:\. )+\.", ".", out)  # repeated sentence marks
        return f" {out} "

    # -- matching -------------------------------------------------------------------------------
    @staticmethod
    def _trigger_span(m: re.Match[str]) -> tuple[int, int]:
        for name, value in m.groupdict().items():
            if name.startswith("t") and value is not None:
                return m.span(name)
        return m.span()

    def _negation(self, norm: str, start: int, end: int) -> str | None:
        """The negation cue in the 4 words before a trigger at ``start`` (within its clause), unless a
        doubt cue is in the same sentence."""
        before = norm[:start].split()
        window: list[str] = []
        for tok in reversed(before):
            if tok in self.scope_breakers or len(window) >= 4:
                break
            window.insert(0, tok)
        cue = None
        for c in self.negation_cues:
            n = len(c)
            if any(window[i : i + n] == c for i in range(len(window) - n + 1)):
                cue = " ".join(c)
                break
        if cue is None:
            return None
        if self.doubt_rx is not None and self.doubt_rx.search(self._sentence(norm, start, end)):
            return None
        return cue

    @staticmethod
    def _sentence(norm: str, start: int, end: int) -> str:
        """The normalised sentence around a span, with the leading/trailing space patterns need."""
        s0 = norm.rfind(" . ", 0, start)
        s1 = norm.find(" . ", end)
        sentence = norm[s0 + 2 if s0 >= 0 else 0 : s1 + 1 if s1 >= 0 else len(norm)]
        return f" {sentence.strip()} "

    def _idiom_spans(self, norm: str) -> list[tuple[int, int, str]]:
        spans: list[tuple[int, int, str]] = []
        for iid, rx, unless in self.idioms:
            for m in rx.finditer(norm):
                if unless is not None and unless.search(self._sentence(norm, m.start(), m.end())):
                    continue  # e.g. "burned myself with a lighter on purpose" is no accident
                spans.append((m.start(), m.end(), iid))
        return spans

    def hits(self, text: str) -> tuple[list[RuleHit], list[RuleHit]]:
        """(counting hits, dropped hits) for a message."""
        norm = self.normalize(text)
        kept: list[RuleHit] = []
        dropped: list[RuleHit] = []
        if self._any_rule is None or not self._any_rule.search(norm):
            return kept, dropped
        idioms = self._idiom_spans(norm)
        for rule in self.rules:
            for m in rule.rx.finditer(norm):
                ts, te = self._trigger_span(m)
                why = None
                for s, e, iid in idioms:
                    if s <= ts and te <= e:
                        why = f"idiom:{iid}"
                        break
                if why is None and rule.negatable:
                    cue = self._negation(norm, ts, te)
                    if cue:
                        why = f"negated:{cue}"
                distance = None if why else self._distance(norm, ts, te)
                hit = RuleHit(
                    rule.id, rule.category, rule.level, m.group(0).strip(), norm[ts:te].strip(), why, distance
                )
                (dropped if why else kept).append(hit)
                if why is None:
                    break  # one counting hit per rule is enough
        return kept, dropped

    def _distance(self, norm: str, start: int, end: int) -> str | None:
        """The first distance-cue kind (past, other, fiction) in the sentence around a hit."""
        if not self.distance_cues:
            return None
        sentence = self._sentence(norm, start, end)
        for kind, rx in self.distance_cues:
            if rx.search(sentence):
                return kind
        return None

    def check(self, text: str, *, distance: bool = False) -> RuleResult:
        """Decide ``high``/``ambiguous``/``none`` for one seeker message.

        ``distance``: a high hit in a sentence about the past, someone else or a story (the lexicon's
        ``distance_cues``) counts as ambiguous; the safety layer asks for this only when the learned
        stage is there to judge such messages. (Answers to a protocol reply or a check-in are read by
        `socialsim.safety.followup`, not here.)
        """
        kept, dropped = self.hits(text)

        def distanced(h: RuleHit) -> bool:
            return distance and h.distance is not None

        high = [h for h in kept if h.level == "high" and not distanced(h)]
        amb = [h for h in kept if h.level == "ambiguous" or (h.level == "high" and distanced(h))]

        def order(h: RuleHit) -> int:
            return CATEGORY_ORDER.index(h.category)

        if high:
            high.sort(key=order)
            return RuleResult("high", high[0].category, high + amb, dropped)  # type: ignore[arg-type]
        if amb:
            amb.sort(key=order)
            return RuleResult("ambiguous", amb[0].category, amb, dropped)  # type: ignore[arg-type]
        return RuleResult("none", "none", [], dropped)

    def screen_output(self, text: str) -> RuleHit | None:
        """The first means/method pattern in a supporter reply, else ``None``."""
        norm = self.normalize(text)
        if self._any_output is None or not self._any_output.search(norm):
            return None
        for oid, rx in self.output_rules:
            m = rx.search(norm)
            if m:
                return RuleHit(f"output:{oid}", "method", "high", m.group(0).strip(), m.group(0).strip())
        return None


@lru_cache(maxsize=8)
def load_rules(lexicon_path: str | None = None) -> RuleStage:
    """A cached `RuleStage` for a lexicon path (None: the built-in lexicon)."""
    return RuleStage(lexicon_path)
