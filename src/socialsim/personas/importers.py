"""Import persona banks from ESConv, ESC-Eval-style role cards, CSV and JSONL (SocialSim's user
profiles: `socialsim.personas.import_socialsim`).

Every importer reads the whole source, validates each record as a `Persona` and stops at the
first bad record with a one-line `UserError` naming file, line (or record) and field; with
``skip_invalid=True`` bad records are left out instead and each is listed in
`ImportResult.skipped` (never silently dropped).

What the sources lack is filled by fixed, documented rules, and every fill is counted in
`ImportResult.notes` so the CLI can say what was filled and how:

* **Unknown demographics.** A name, gender or occupation the source does not give is written as
  ``"unknown"`` (`UNKNOWN`). The schema requires an integer age, so a missing or vague age is
  written as a placeholder (`DEFAULT_PLACEHOLDER_AGE`, or a band-typical age for a word such as
  "middle-aged") and ``life_stage`` records it, always containing `AGE_PLACEHOLDER_MARK`;
  `socialsim.personas.stats` counts such personas in the age band "unknown", never in the band
  of the placeholder.
* **ESConv** gives the seeker's situation, problem type, emotion, initial intensity
  (``survey_score.seeker.initial_emotion_intensity``) and experience type: kept as given. Its
  disclosure layers come from the seeker's own words in the dialogue: consecutive
  seeker utterances are merged into messages, greetings and thanks-only messages are dropped
  (`is_pleasantry`), and the rest is cut into three consecutive, near-equal parts: first →
  surface, middle → context, last → core (each at most `LAYER_MAX_CHARS`, cut at a word). With
  fewer than three messages, the missing later layers repeat the seeker's own ``situation`` text.
* **Role cards** give age, gender, occupation and a third-person problem text (kept as the
  situation, unchanged); 'female'/'male' become the bank's 'woman'/'man'. Problem type and
  emotion come from explicit ``Problem type:`` / ``Emotion:`` lines, else from the keyword rules
  below (`infer_problem_type`, `infer_emotion`), else from a fallback the caller names
  explicitly, else the card is an error. A missing ``Intensity:`` becomes the midpoint 3.
  Disclosure layers come from ``Surface:``/``Context:``/``Core:`` lines, else from the problem
  text cut into three parts by sentence (then clause).
* **CSV and JSONL** carry persona fields themselves; nothing is filled in.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from socialsim.errors import UserError, validation_message
from socialsim.personas.bank import load_personas
from socialsim.schema import (
    DISCLOSURE_LAYERS,
    BigFive,
    EmotionType,
    Persona,
    ProblemType,
)

ImportKind = Literal["esconv", "rolecards", "socialsim", "csv", "jsonl"]
IMPORT_KINDS: tuple[str, ...] = ("esconv", "rolecards", "socialsim", "csv", "jsonl")

#: What an importer writes for a name, gender or occupation its source does not give.
UNKNOWN = "unknown"
#: Always part of ``life_stage`` when ``age`` is a placeholder; stats read it to count the age as unknown.
AGE_PLACEHOLDER_MARK = "the age field is a placeholder"
#: The placeholder age for a source that gives no age at all (ESConv's crowd workers were adults).
DEFAULT_PLACEHOLDER_AGE = 30
#: The intensity written for a role card without an ``Intensity:`` line (the midpoint of 1–5).
DEFAULT_CARD_INTENSITY = 3
#: A derived disclosure layer is cut (at a word) to at most this many characters.
LAYER_MAX_CHARS = 400


@dataclass
class ImportResult:
    """Personas read from a source, what was filled in and how (counted), and records left out."""

    personas: list[Persona]
    source: Path
    kind: str
    notes: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)


class _Bad(Exception):
    """One record is bad: `field` and a message; the caller adds file and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _where(path: Path, where: int | str | None) -> str:
    return f"{path}:{where}" if where is not None else str(path)


def _bad_line(path: Path, where: int | str | None, err: Exception) -> str:
    if isinstance(err, _Bad):
        if not err.field:
            return f"{_where(path, where)}: {err.message}"
        return f"{_where(path, where)}: field '{err.field}': {err.message}"
    if isinstance(err, ValidationError):
        return validation_message(path, where, err)  # type: ignore[arg-type]
    return f"{_where(path, where)}: {err}"


def _read_text(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found; check the path") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read {what} ({e.__class__.__name__}); give a UTF-8 text file") from None
    if not text.strip():
        raise UserError(f"{path}: {what} is empty; nothing to import")
    return text


def slug(text: str) -> str:
    """Lower-case letters, digits and dashes only (for ids)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _clean(text: object) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip()


def cut_at_word(text: str, limit: int = LAYER_MAX_CHARS) -> str:
    """`text` unchanged when short enough, else cut at the last space before `limit` plus '…'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def three_parts(units: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Cut a list into three consecutive, non-empty, near-equal parts (needs ≥ 3 items)."""
    k = len(units)
    a = max(1, round(k / 3))
    b = max(a + 1, round(2 * k / 3))
    return units[:a], units[a:b], units[b:]


# -- ESConv -------------------------------------------------------------------------------------

_SEEKER_LABELS = {"seeker", "speaker", "usr", "user", "help-seeker"}
_PLEASANTRY_WORDS = set(
    """hi hai hey hello hiya there how are you u doing today good morning afternoon evening fine ok okay
    thanks thank thx ty so much very bye goodbye good-bye night yes yeah yep yup no nope sure i am im i'm
    great nice to meet too and have a day well alright all right welcome lol haha hmm um uh same also
    it's its is was that you're your what about
    """.split()
)


def is_pleasantry(text: str) -> bool:
    """True for a message of greetings, thanks, yes/no and small talk only (or under 3 words)."""
    words = re.findall(r"[a-z']+", text.lower())
    if len(words) < 3:
        return True
    return all(w in _PLEASANTRY_WORDS for w in words)


def seeker_messages(dialog: list[Any]) -> list[str]:
    """The seeker's messages: consecutive seeker utterances merged, whitespace cleaned."""
    out: list[str] = []
    prev_seeker = False
    for turn in dialog:
        if not isinstance(turn, dict):
            prev_seeker = False
            continue
        is_seeker = str(turn.get("speaker", "")).strip().lower() in _SEEKER_LABELS
        text = _clean(turn.get("content"))
        if is_seeker and text:
            if prev_seeker and out:
                out[-1] = f"{out[-1]} {text}"
            else:
                out.append(text)
        prev_seeker = is_seeker
    return out


def esconv_disclosure(dialog: list[Any], situation: str, notes: Counter[str]) -> dict[str, str]:
    """Disclosure layers from the seeker's own messages (see the module docstring)."""
    units = [m for m in seeker_messages(dialog) if not is_pleasantry(m)]
    if len(units) >= 3:
        parts = [" ".join(p) for p in three_parts(units)]
    else:
        notes["disclosure layers filled from the situation (fewer than 3 seeker messages)"] += 1
        parts = units + [situation] * (3 - len(units))
    return {name: cut_at_word(text) for name, text in zip(DISCLOSURE_LAYERS, parts, strict=True)}


def _placeholder_life_stage(said: str, age: int) -> str:
    return f"{said} (exact age not given by the source; {AGE_PLACEHOLDER_MARK}: {age})"


def _esconv_record(rec: Any, idx: int, prefix: str, placeholder_age: int, notes: Counter[str]) -> Persona:
    if not isinstance(rec, dict):
        raise _Bad("(record)", "expected a JSON object (an ESConv dialogue)")
    for key in ("problem_type", "emotion_type", "situation", "dialog"):
        if key not in rec:
            raise _Bad(key, "required field is missing (is this ESConv's JSON format?)")
    if not isinstance(rec["dialog"], list):
        raise _Bad("dialog", "expected a list of utterances")
    try:
        raw = rec["survey_score"]["seeker"]["initial_emotion_intensity"]
    except (KeyError, TypeError):
        raise _Bad("survey_score.seeker.initial_emotion_intensity", "required field is missing") from None
    try:
        intensity = int(str(raw).strip())
    except ValueError:
        raise _Bad("survey_score.seeker.initial_emotion_intensity", f"expected a number 1–5, got {raw!r}") from None
    exp = str(rec.get("experience_type", "Current Experience")).strip().lower()
    if exp.startswith("current"):
        experience = "current"
    elif exp.startswith("previous"):
        experience = "previous"
    else:
        raise _Bad("experience_type", f"expected 'Current Experience' or 'Previous Experience', got {exp!r}")
    situation = _clean(rec["situation"])
    data = {
        "id": f"{prefix}-{idx:04d}",
        "name": UNKNOWN,
        "age": placeholder_age,
        "gender": UNKNOWN,
        "occupation": UNKNOWN,
        "life_stage": _placeholder_life_stage("unknown", placeholder_age),
        "problem_type": rec["problem_type"],
        "emotion_type": rec["emotion_type"],
        "initial_intensity": intensity,
        "experience_type": experience,
        "situation": situation,
        "disclosure": esconv_disclosure(rec["dialog"], situation, notes),
    }
    p = Persona.model_validate(data)
    notes[f"name, gender, occupation set to '{UNKNOWN}'; age placeholder {placeholder_age}"] += 1
    return p


Builder = Callable[[Counter[str]], Persona]
Locator = Callable[[Exception], "int | str"]


def _collect(
    path: Path,
    kind: str,
    records: Iterable[tuple[int | str, Builder, Locator | None]],
    skip_invalid: bool,
) -> ImportResult:
    """Build each record, check ids are unique, and stop at (or, with `skip_invalid`, list and
    leave out) bad records. `records` yields (where, build, locate): `locate` may point an error
    at a more precise line than `where`."""
    result = ImportResult([], path, kind)
    seen: dict[str, int | str] = {}
    for where, build, locate in records:
        notes: Counter[str] = Counter()
        try:
            p = build(notes)
            if p.id in seen:
                raise _Bad("id", f"duplicate id {p.id!r} (also at {seen[p.id]})")
        except (_Bad, ValidationError) as e:
            line = _bad_line(path, locate(e) if locate else where, e)
            if not skip_invalid:
                raise UserError(line) from None
            result.skipped.append(line)
            continue
        seen[p.id] = where
        result.notes.update(notes)
        result.personas.append(p)
    if not result.personas:
        first = f": {result.skipped[0]}" if result.skipped else ""
        raise UserError(f"{path}: no valid persona in the file ({len(result.skipped)} skipped{first})")
    return result


def import_esconv(
    path: str | Path,
    *,
    placeholder_age: int = DEFAULT_PLACEHOLDER_AGE,
    id_prefix: str | None = None,
    skip_invalid: bool = False,
) -> ImportResult:
    """ESConv's JSON (a list of dialogues) → one persona seed per dialogue: situation, problem
    type, emotion, initial intensity and experience type as given; disclosure layers from the
    seeker's own messages; demographics unknown (see the module docstring). Errors name
    ``record N`` (1-based) and the ESConv field."""
    path = Path(path)
    text = _read_text(path, "ESConv file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(
            f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}); give ESConv's JSON"
        ) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise UserError(f"{path}: expected a JSON list of ESConv dialogues")
    prefix = id_prefix or f"esconv-{slug(path.stem)}"

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        for i, rec in enumerate(data, 1):
            yield f"record {i}", partial(_esconv_record, rec, i, prefix, placeholder_age), None

    return _collect(path, "esconv", records(), skip_invalid)


# -- role cards -----------------------------------------------------------------------------------

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


_CARD_KEYS = {
    "id": "id",
    "name": "name",
    "age": "age",
    "gender": "gender",
    "sex": "gender",
    "occupation": "occupation",
    "job": "occupation",
    "problem": "problem",
    "problem description": "problem",
    "situation": "problem",
    "problem type": "problem_type",
    "problem_type": "problem_type",
    "emotion": "emotion_type",
    "emotion type": "emotion_type",
    "emotion_type": "emotion_type",
    "intensity": "initial_intensity",
    "initial intensity": "initial_intensity",
    "locale": "locale",
    "surface": "surface",
    "context": "context",
    "core": "core",
    "talk style": "talk_style",
    "talk_style": "talk_style",
}
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


@dataclass
class _Card:
    values: dict[str, str]
    lines: dict[str, int]
    start: int
    #: The first syntax error of this card (its line, the error); the card is then skipped or reported.
    error: tuple[int, _Bad] | None = None


def _parse_cards(text: str, *, single: bool = False) -> list[_Card]:
    """Split role-card text into cards. A line ``Label: value`` whose label starts with a capital
    letter (up to three words) must be a known field; other lines continue the previous field.
    Blank lines separate cards, except with `single` (the text of one JSON record is one card,
    whatever blank lines it holds). A bad line marks its card with the error (the rest of that card
    is ignored), so one bad card never hides the others."""
    cards: list[_Card] = []
    cur: _Card | None = None
    last_key: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            if not single:
                cur, last_key = None, None
            continue
        if line.startswith("#"):
            continue
        if cur is None:
            cur = _Card({}, {}, lineno)
            cards.append(cur)
        if cur.error is not None:
            continue
        m = re.match(r"^([A-Za-z][A-Za-z_-]*(?: [A-Za-z_-]+){0,2})\s*[:：]\s*(.*)$", line)
        label = m.group(1) if m else ""
        key = _CARD_KEYS.get(label.lower()) if m else None
        if m and key is None and (label[0].isupper() or last_key is None):
            known = ", ".join(sorted({k.capitalize() for k in _CARD_KEYS if "_" not in k}))
            cur.error = (lineno, _Bad(label, f"unknown role-card field; known fields: {known}"))
        elif key is not None and key in cur.values:
            sep = "" if single else "; separate cards with a blank line"
            cur.error = (lineno, _Bad(label, f"given twice in one card (first at line {cur.lines[key]}){sep}"))
        elif key is not None:
            cur.values[key] = m.group(2).strip()  # type: ignore[union-attr]
            cur.lines[key] = lineno
            last_key = key
        elif last_key is not None:  # a continuation line of the previous field
            cur.values[last_key] = f"{cur.values[last_key]} {line}".strip()
        else:
            cur.error = (
                lineno,
                _Bad(
                    "",
                    "expected 'Field: value' (e.g. 'Age: 34'); a card is a block of such lines, "
                    "cards are separated by blank lines",
                ),
            )
    return cards


def _card_record(
    card: _Card,
    idx: int,
    prefix: str,
    placeholder_age: int,
    fallback_problem: str | None,
    fallback_emotion: str | None,
    notes: Counter[str],
) -> Persona:
    if card.error is not None:
        raise card.error[1]
    v = card.values
    problem = _clean(v.get("problem"))
    if not problem:
        raise _Bad("problem", "required field is missing: add a 'Problem: <what the seeker is going through>' line")
    data: dict[str, Any] = {"id": v.get("id") or f"{prefix}-{idx:04d}", "situation": problem}
    age, life_stage = card_age(v.get("age", ""), placeholder_age)
    if life_stage:
        notes["age placeholder (card gives no exact age); marked in life_stage"] += 1
    data["age"], data["life_stage"] = age, life_stage
    for key in ("name", "occupation"):
        val = _clean(v.get(key))
        if val.lower() in _NOT_GIVEN:
            notes[f"{key} set to '{UNKNOWN}'"] += 1
            val = UNKNOWN
        data[key] = val
    gender = _clean(v.get("gender")).lower()
    if gender in _NOT_GIVEN:
        notes[f"gender set to '{UNKNOWN}'"] += 1
        data["gender"] = UNKNOWN
    else:
        data["gender"] = _GENDERS.get(gender, gender)
    for key, infer, fallback, label in (
        ("problem_type", infer_problem_type, fallback_problem, "Problem type"),
        ("emotion_type", infer_emotion, fallback_emotion, "Emotion"),
    ):
        if v.get(key):
            data[key] = v[key]
            continue
        guess = infer(problem)  # type: ignore[operator]
        if guess is not None:
            notes[f"{key} inferred from the problem text by keyword rules"] += 1
            data[key] = guess
        elif fallback is not None:
            notes[f"{key} set to the fallback {fallback!r}"] += 1
            data[key] = fallback
        else:
            option = "--fallback-problem-type" if key == "problem_type" else "--fallback-emotion"
            raise _Bad(
                key,
                f"no '{label}:' line and no keyword rule matched the problem text; add a '{label}: ...' "
                f"line to the card or name a fallback with {option}",
            )
    if v.get("initial_intensity"):
        data["initial_intensity"] = v["initial_intensity"]
    else:
        notes[f"intensity set to the midpoint {DEFAULT_CARD_INTENSITY}"] += 1
        data["initial_intensity"] = DEFAULT_CARD_INTENSITY
    layers = {k: _clean(v.get(k)) for k in DISCLOSURE_LAYERS}
    if all(layers.values()):
        data["disclosure"] = layers
    else:
        derived = card_disclosure(problem, notes)
        data["disclosure"] = {k: layers[k] or derived[k] for k in DISCLOSURE_LAYERS}
    for key in ("locale", "talk_style"):
        if v.get(key):
            data[key] = _clean(v[key])
    return Persona.model_validate(data)


def import_rolecards(
    path: str | Path,
    *,
    placeholder_age: int = DEFAULT_PLACEHOLDER_AGE,
    id_prefix: str | None = None,
    fallback_problem_type: str | None = None,
    fallback_emotion: str | None = None,
    skip_invalid: bool = False,
) -> ImportResult:
    """ESC-Eval-style role cards: blocks of ``Field: value`` lines separated by blank lines
    (``Age``, ``Gender``, ``Occupation``, ``Problem``; optionally ``Name``, ``Problem type``,
    ``Emotion``, ``Intensity``, ``Locale``, ``Surface``, ``Context``, ``Core``, ``Talk style``,
    ``Id``). ESC-Eval's released JSON form (a list of objects whose ``base`` holds the card text)
    is read too. Errors name the line of the bad field (text form) or the record (JSON form)."""
    path = Path(path)
    text = _read_text(path, "role-card file")
    check_fallbacks(fallback_problem_type, fallback_emotion)
    cards: list[tuple[int | str, _Card]] = []
    if text.lstrip().startswith("["):
        data = read_json_list(path, text, "role-card records")
        for i, rec in enumerate(data, 1):
            base = rec.get("base") if isinstance(rec, dict) else None
            # one record is one card, also when its fields are separated by blank lines
            parsed = _parse_cards(base, single=True) if isinstance(base, str) else []
            card = parsed[0] if parsed else _Card({}, {}, 1, (1, _Bad("base", "expected the role card's text")))
            if isinstance(rec, dict) and "id" in rec and "id" not in card.values:
                card.values["id"] = f"{id_prefix or 'esceval'}-{slug(str(rec['id']))}"
            cards.append((f"record {i}", card))
    else:
        cards = [(c.start, c) for c in _parse_cards(text)]
    if not cards:
        raise UserError(
            f"{path}: no role card found; write blocks of 'Age: …', 'Gender: …', 'Occupation: …', "
            "'Problem: …' lines separated by blank lines"
        )
    prefix = id_prefix or f"card-{slug(path.stem)}"

    def locator(where: int | str, card: _Card) -> Locator:
        def locate(err: Exception) -> int | str:
            if not isinstance(where, int):
                return where
            if card.error is not None and err is card.error[1]:
                return card.error[0]
            fld = err.field if isinstance(err, _Bad) else _first_field(err)
            key = fld.split(".")[-1] if fld.startswith("disclosure") else fld
            key = {"situation": "problem"}.get(key, key)
            return card.lines.get(key, where)

        return locate

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        for i, (where, card) in enumerate(cards, 1):
            build = partial(_card_record, card, i, prefix, placeholder_age, fallback_problem_type, fallback_emotion)
            yield where, build, locator(where, card)

    return _collect(path, "rolecards", records(), skip_invalid)


def check_fallbacks(fallback_problem_type: str | None, fallback_emotion: str | None) -> None:
    """One-line `UserError` naming the option when a fallback is not a known problem type / emotion."""
    for value, name, opt in (
        (fallback_problem_type, "problem_type", "--fallback-problem-type"),
        (fallback_emotion, "emotion_type", "--fallback-emotion"),
    ):
        if value is not None:
            try:
                Persona.model_validate({name: value})
            except ValidationError as e:
                errs = [x for x in e.errors() if x["loc"] and x["loc"][0] == name]
                if errs:
                    raise UserError(f"option {opt}: {errs[0]['msg']}") from None


def read_json_list(path: Path, text: str, what: str) -> list[Any]:
    """`text` parsed as a JSON list, or a one-line `UserError` naming file and line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of {what}")
    return data


def _first_field(err: Exception) -> str:
    if isinstance(err, ValidationError) and err.errors():
        return ".".join(str(p) for p in err.errors()[0]["loc"])
    return ""


# -- CSV --------------------------------------------------------------------------------------------

LIST_FIELDS = ("coping_tried", "support_preferences")
#: Columns a persona CSV may have: the `Persona` fields, with the nested ones dotted.
CSV_COLUMNS: tuple[str, ...] = tuple(
    [f for f in Persona.model_fields if f not in ("disclosure", "personality")]
    + [f"disclosure.{k}" for k in DISCLOSURE_LAYERS]
    + [f"personality.{k}" for k in BigFive.model_fields]
)


def _csv_record(row: dict[str, str], notes: Counter[str]) -> Persona:
    data: dict[str, Any] = {}
    for col, raw in row.items():
        value = (raw or "").strip()
        if not value:
            continue  # an empty cell means "not given": the field's default applies
        if "." in col:
            outer, inner = col.split(".", 1)
            data.setdefault(outer, {})[inner] = value
        elif col in LIST_FIELDS:
            data[col] = [x.strip() for x in value.split(";") if x.strip()]
        else:
            data[col] = value
    return Persona.model_validate(data)


def import_csv(path: str | Path, *, skip_invalid: bool = False) -> ImportResult:
    """A CSV with a header of `Persona` field names: ``disclosure.surface``, ``disclosure.context``,
    ``disclosure.core`` and ``personality.<trait>`` for the nested fields, list fields
    (``coping_tried``, ``support_preferences``) separated by ``;``, empty cells for "not given".
    Errors name the line where the record starts and the column."""
    path = Path(path)
    text = _read_text(path, "CSV file")
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as e:
        raise UserError(f"{path}:1: not valid CSV ({e})") from None
    for col in header:
        if col not in CSV_COLUMNS:
            raise UserError(
                f"{path}:1: field '{col}': unknown column; columns are Persona field names: {', '.join(CSV_COLUMNS)}"
            )
    dupes = [c for c, k in Counter(header).items() if k > 1]
    if dupes:
        raise UserError(f"{path}:1: field '{dupes[0]}': column given twice")

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise UserError(f"{path}:{start}: not valid CSV ({e})") from None
            where, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UserError(
                    f"{path}:{where}: expected {len(header)} cells like the header, found {len(row)} "
                    "(quote cells that contain commas)"
                )
            yield where, partial(_csv_record, dict(zip(header, row, strict=True))), None

    return _collect(path, "csv", records(), skip_invalid)


# -- JSONL ------------------------------------------------------------------------------------------


def import_jsonl(path: str | Path, *, skip_invalid: bool = False) -> ImportResult:
    """Persona JSONL (one persona per line, or a JSON array), validated as `Persona`; aliases
    such as 'issues with parents' are normalised."""
    from socialsim.personas.bank import _records

    path = Path(path)
    if not skip_invalid:
        return ImportResult(load_personas(path), path, "jsonl")

    def build(rec: Any, notes: Counter[str]) -> Persona:
        if not isinstance(rec, dict):
            raise _Bad("(record)", "expected a JSON object with persona fields")
        return Persona.model_validate(rec)

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        for idx, (lineno, rec) in enumerate(_records(path)):
            yield (lineno if lineno is not None else f"record {idx + 1}"), partial(build, rec), None

    return _collect(path, "jsonl", records(), skip_invalid)


# -- dispatch and output --------------------------------------------------------------------------


def import_personas(
    kind: str,
    src: str | Path,
    *,
    placeholder_age: int = DEFAULT_PLACEHOLDER_AGE,
    id_prefix: str | None = None,
    fallback_problem_type: str | None = None,
    fallback_emotion: str | None = None,
    skip_invalid: bool = False,
    core_llm: Any = None,
) -> ImportResult:
    """Import from `src` with the importer named by `kind` (one of `IMPORT_KINDS`); with `core_llm`
    (an `LLM`), the core layers are then rewritten by that model (`socialsim.personas.core_llm`)."""
    result = _import(kind, src, placeholder_age, id_prefix, fallback_problem_type, fallback_emotion, skip_invalid)
    if core_llm is not None:
        from socialsim.personas.core_llm import llm_cores

        result.personas, notes = llm_cores(result.personas, core_llm)
        result.notes.update(notes)
    return result


def _import(
    kind: str,
    src: str | Path,
    placeholder_age: int,
    id_prefix: str | None,
    fallback_problem_type: str | None,
    fallback_emotion: str | None,
    skip_invalid: bool,
) -> ImportResult:
    if not 12 <= placeholder_age <= 100:
        raise UserError(f"option --placeholder-age: must be 12 to 100 (got {placeholder_age})")
    if kind == "esconv":
        return import_esconv(src, placeholder_age=placeholder_age, id_prefix=id_prefix, skip_invalid=skip_invalid)
    if kind == "rolecards":
        return import_rolecards(
            src,
            placeholder_age=placeholder_age,
            id_prefix=id_prefix,
            fallback_problem_type=fallback_problem_type,
            fallback_emotion=fallback_emotion,
            skip_invalid=skip_invalid,
        )
    if kind == "socialsim":
        from socialsim.personas.import_socialsim import import_socialsim

        return import_socialsim(
            src,
            placeholder_age=placeholder_age,
            id_prefix=id_prefix,
            fallback_problem_type=fallback_problem_type,
            fallback_emotion=fallback_emotion,
            skip_invalid=skip_invalid,
        )
    if kind == "csv":
        return import_csv(src, skip_invalid=skip_invalid)
    if kind == "jsonl":
        return import_jsonl(src, skip_invalid=skip_invalid)
    raise UserError(f"option --from: unknown source format {kind!r}; use one of {', '.join(IMPORT_KINDS)}")


def write_personas(personas: list[Persona], out: str | Path) -> int:
    """Write personas as JSONL atomically (a temporary file in the same folder, then a rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for p in personas:
                f.write(p.model_dump_json(exclude_none=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(personas)
