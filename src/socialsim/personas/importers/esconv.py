"""ESConv's JSON → persona seeds (one per dialogue; layers from the seeker's own messages)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from socialsim.corpus.esconv import SPEAKER_LABELS
from socialsim.errors import UserError
from socialsim.io import parse_json
from socialsim.personas.importers.common import (
    DEFAULT_PLACEHOLDER_AGE,
    UNKNOWN,
    Builder,
    ImportResult,
    Locator,
    _Bad,
    _clean,
    _collect,
    _placeholder_life_stage,
    _read_text,
    cut_at_word,
    slug,
    three_parts,
)
from socialsim.schema import (
    DISCLOSURE_LAYERS,
    Persona,
)

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
        is_seeker = SPEAKER_LABELS.get(str(turn.get("speaker", "")).strip().lower()) == "seeker"
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
    data = parse_json(path, text, hint="give ESConv's JSON")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise UserError(f"{path}: expected a JSON list of ESConv dialogues")
    prefix = id_prefix or f"esconv-{slug(path.stem)}"

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        for i, rec in enumerate(data, 1):
            yield f"record {i}", partial(_esconv_record, rec, i, prefix, placeholder_age), None

    return _collect(path, "esconv", records(), skip_invalid)
