"""ESC-Eval-style role cards (text blocks, or ESC-Eval's JSON with the card under ``base``)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.personas.importers.common import (
    DEFAULT_CARD_INTENSITY,
    DEFAULT_PLACEHOLDER_AGE,
    UNKNOWN,
    Builder,
    ImportResult,
    Locator,
    _Bad,
    _clean,
    _collect,
    _first_field,
    _read_text,
    check_fallbacks,
    read_json_list,
    slug,
)
from socialsim.personas.importers.rules import (
    _GENDERS,
    _NOT_GIVEN,
    card_age,
    card_disclosure,
    infer_emotion,
    infer_problem_type,
)
from socialsim.schema import (
    DISCLOSURE_LAYERS,
    Persona,
)

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
