"""The fixed, documented rules importers fill missing fields with: keyword rules for problem type
and emotion, readable age words, gender words, and cutting a problem text into three layers."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from socialsim.personas.importers.common import (
    DEFAULT_PLACEHOLDER_AGE,
    _Bad,
    _placeholder_life_stage,
    cut_at_word,
    three_parts,
)
from socialsim.schema import (
    DISCLOSURE_LAYERS,
    EmotionType,
    ProblemType,
)

#: Keyword rules for a role card's problem text → problem type: the type with the most matching
#: patterns wins; ties go to the type listed first. Patterns are regular expressions matched at
#: word starts, case-insensitively.
PROBLEM_KEYWORDS: dict[ProblemType, tuple[str, ...]] = {
    ProblemType.BULLYING: (
        r"bull(y|ied|ies|ying)",
        r"mock(s|ed|ing)?\b",
        r"call(s|ed|ing)? (me|him|her|them) names",
        r"classmates",
        r"teas(e|ed|es|ing)\b",
        r"picked on",
    ),
    ProblemType.PREGNANCY_LOSS: (r"miscarr", r"stillbirth", r"pregnancy loss", r"lost (the|our|my|her) baby"),
    ProblemType.INFERTILITY: (r"infertil", r"ivf\b", r"trying to conceive", r"can'?t get pregnant"),
    ProblemType.DIVORCE: (r"divorc", r"separat(ed|ion)", r"custody"),
    ProblemType.BREAKUP: (
        r"broke up",
        r"break ?up",
        r"boyfriend",
        r"girlfriend",
        r"\bex\b",
        r"dumped",
        r"relationship",
        r"cheat",
    ),
    ProblemType.GRIEF: (r"died", r"death", r"passed away", r"funeral", r"grie(f|ving)", r"bereave"),
    ProblemType.JOB_CRISIS: (
        r"laid off",
        r"lay ?off",
        r"lost (my|his|her|their) job",
        r"fired",
        r"unemploy",
        r"job (search|hunt|market)",
        r"find (a|another|a new) (job|work)",
        r"\bjob\b",
    ),
    ProblemType.WORKPLACE: (r"co-?workers?", r"colleague", r"\bboss", r"manager", r"workplace", r"principal"),
    ProblemType.ACADEMIC: (
        r"exams?\b",
        r"grades?\b",
        r"college",
        r"universit",
        r"thesis",
        r"stud(y|ies|ying)",
        r"school",
        r"semester",
        r"course",
    ),
    ProblemType.FRIENDS: (r"friend(s|ship)?\b",),
    ProblemType.PARENTS: (r"mother", r"father", r"\bmom\b", r"\bdad\b", r"parents?\b"),
    ProblemType.CHILDREN: (
        r"\bsons?\b",
        r"daughters?",
        r"\bkids?\b",
        r"child(ren)?\b",
        r"teen(age|ager)?\b",
        r"(my|her|his|their) (son|daughter|kids?|child(ren)?|teen)",
    ),
    ProblemType.ONGOING_DEPRESSION: (r"depress", r"letharg", r"no motivation", r"demotivat", r"empty"),
    ProblemType.SLEEP: (r"sleep", r"insomnia", r"nightmare"),
    ProblemType.PROCRASTINATION: (r"procrastinat", r"put(ting)? off", r"deadlines?"),
    ProblemType.ALCOHOL: (r"alcohol", r"drinking", r"drunk", r"\bbeer", r"wine"),
    ProblemType.APPEARANCE: (r"appearance", r"\bweight\b", r"\blooks\b", r"\bacne", r"\bugly", r"body"),
    ProblemType.LONELINESS: (r"lonel", r"isolat", r"\balone\b", r"no friends"),
    ProblemType.CAREGIVER: (
        r"caring for",
        r"caregiv",
        r"care of (my|his|her|their)",
        r"looking after",
        r"dementia",
        r"stroke",
    ),
    ProblemType.HEALTH_ANXIETY: (r"symptom", r"health anxiety", r"cancer scare", r"hypochondr"),
    ProblemType.CHRONIC_ILLNESS: (r"chronic", r"diagnos", r"bipolar", r"disorder", r"illness", r"condition"),
    ProblemType.MONEY: (r"money", r"financ", r"\bdebt", r"\bbroke\b(?! up)", r"\bbills?\b", r"\brent\b", r"pay"),
    ProblemType.DISCRIMINATION: (r"racis", r"discriminat", r"sexis", r"homophob", r"prejudice"),
    ProblemType.MIGRATION: (r"immigra", r"migra", r"\bvisa\b", r"new country", r"refugee"),
    ProblemType.IDENTITY: (r"coming out", r"\bgay\b", r"lesbian", r"transgender", r"\bqueer", r"sexuality"),
    ProblemType.SOCIAL_ANXIETY: (r"social anxiety", r"\bshy", r"crowds?", r"public speaking", r"small talk"),
    ProblemType.RETIREMENT: (r"retir",),
}

#: Keyword rules for a role card's problem text → emotion (same matching as `PROBLEM_KEYWORDS`).
EMOTION_KEYWORDS: dict[EmotionType, tuple[str, ...]] = {
    EmotionType.HOPELESSNESS: (r"hopeless", r"no way out", r"pointless"),
    EmotionType.OVERWHELM: (r"overwhelm", r"too much"),
    EmotionType.DEPRESSION: (r"depress",),
    EmotionType.ANXIETY: (r"anxi", r"worr(y|ied|ies)", r"stress"),
    EmotionType.NERVOUSNESS: (r"nervous",),
    EmotionType.FEAR: (r"afraid", r"scared", r"fear", r"terrif", r"dread"),
    EmotionType.SADNESS: (r"\bsad", r"\bdown\b", r"unhappy", r"heartbroken", r"miss(es|ing)?\b", r"cry"),
    EmotionType.LONELINESS: (r"lonel", r"\balone\b", r"abandon"),
    EmotionType.ANGER: (r"angry", r"anger", r"furious", r"\bmad\b", r"resent"),
    EmotionType.FRUSTRATION: (r"frustrat", r"annoy", r"upset", r"unfair"),
    EmotionType.SHAME: (r"ashamed", r"shame", r"embarrass", r"humiliat"),
    EmotionType.GUILT: (r"guilt",),
    EmotionType.DISGUST: (r"disgust",),
    EmotionType.JEALOUSY: (r"jealous", r"envy", r"envious"),
    EmotionType.PAIN: (r"\bpain", r"\bhurt"),
}

_COMPILED: dict[str, list[tuple[Any, list[re.Pattern[str]]]]] = {}


def _best(kind: str, rules: dict[Any, tuple[str, ...]], text: str) -> Any:
    compiled = _COMPILED.setdefault(
        kind, [(k, [re.compile(r"\b" + p.removeprefix(r"\b"), re.I) for p in pats]) for k, pats in rules.items()]
    )
    best, best_hits = None, 0
    for key, pats in compiled:
        hits = sum(1 for p in pats if p.search(text))
        if hits > best_hits:
            best, best_hits = key, hits
    return best


def infer_problem_type(text: str) -> ProblemType | None:
    """The problem type whose `PROBLEM_KEYWORDS` match `text` most, or None when none matches."""
    return _best("problem", PROBLEM_KEYWORDS, text)


def infer_emotion(text: str) -> EmotionType | None:
    """The emotion whose `EMOTION_KEYWORDS` match `text` most, or None when none matches."""
    return _best("emotion", EMOTION_KEYWORDS, text)


_NOT_GIVEN = {"", "not mentioned", "unknown", "n/a", "na", "none", "not given", "unspecified", "-", "?"}
#: Age words on role cards → (placeholder age, what the card said). The age is marked a placeholder.
AGE_WORDS: dict[str, int] = {
    "child": 12,
    "teen": 15,
    "teenager": 15,
    "teenage": 15,
    "adolescent": 15,
    "high school student": 16,
    "young": 22,
    "young adult": 22,
    "adult": DEFAULT_PLACEHOLDER_AGE,
    "middle-aged": 45,
    "middle aged": 45,
    "older": 65,
    "old": 70,
    "elderly": 72,
    "senior": 70,
    "retired": 68,
}
_GENDERS = {
    "female": "woman",
    "woman": "woman",
    "f": "woman",
    "girl": "woman",
    "male": "man",
    "man": "man",
    "m": "man",
    "boy": "man",
    "non-binary": "non-binary",
    "nonbinary": "non-binary",
    "non binary": "non-binary",
    "enby": "non-binary",
}


def card_age(value: str, placeholder_age: int) -> tuple[int, str | None]:
    """(age, life_stage or None) for a card's ``Age:`` value; raises `_Bad` when unreadable."""
    v = value.strip().lower().rstrip(".")
    m = re.fullmatch(r"(?:about |around |approx\.? )?(\d{1,3})(?:\s*(?:years?(?: old)?|yo|y/o))?", v)
    if m:
        return int(m.group(1)), None
    m = re.fullmatch(r"(?:early |mid |late |mid-)?(\d)0s", v)
    if m:
        age = int(m.group(1)) * 10 + 5
        return age, _placeholder_life_stage(f"in their {m.group(1)}0s", age)
    if v in _NOT_GIVEN:
        return placeholder_age, _placeholder_life_stage("unknown", placeholder_age)
    if v in AGE_WORDS:
        return AGE_WORDS[v], _placeholder_life_stage(v, AGE_WORDS[v])
    m = re.fullmatch(r"(.*?)\s*\((.*)\)", v)  # 'Old (90 years old)', '26 (based on …)'
    if m:
        for part in (m.group(2), m.group(1)):
            try:
                return card_age(part, placeholder_age)
            except _Bad:
                continue
    alternatives = [a.strip() for a in re.split(r"\s+or\s+|/", v) if a.strip()]
    if len(alternatives) > 1 and alternatives[0] in AGE_WORDS:  # 'teenage or young': the first word
        return AGE_WORDS[alternatives[0]], _placeholder_life_stage(v, AGE_WORDS[alternatives[0]])
    raise _Bad(
        "age",
        f"cannot read age {value.strip()!r}: write a number, a decade such as '40s', one of "
        f"{', '.join(sorted(AGE_WORDS))}, or 'Not mentioned'",
    )


def _sentences(text: str) -> list[str]:
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    if len(parts) >= 3:
        return parts
    clauses = [c.strip() for c in re.split(r"(?<=[,;])\s+|\s+(?=(?:and|but|while|because|so)\s)", text)]
    clauses = [c for c in clauses if len(c) >= 3]
    return clauses if len(clauses) >= 3 else parts


def card_disclosure(problem: str, notes: Counter[str]) -> dict[str, str]:
    """Layers from a card's problem text: sentences (or clauses) cut into three parts."""
    units = _sentences(problem)
    if len(units) >= 3:
        notes["disclosure layers cut from the problem text"] += 1
        parts = [" ".join(p) for p in three_parts(units)]
    else:
        notes["disclosure layers repeat the whole problem text (too short to cut in three)"] += 1
        parts = [problem] * 3
    return {name: cut_at_word(text) for name, text in zip(DISCLOSURE_LAYERS, parts, strict=True)}
