"""Import SocialSim's released user profiles (the SSConv release, ``SocialSim_UserProfile_*.json``).

The file is one JSON list of objects with the fields ``ID``, ``Gender``, ``Age``, ``Occupation``,
``Personality``, ``Topic``, ``Subtopic``, ``Situation``, ``Event Time``, ``Event Location``,
``Event Participants``, ``Event Description``, ``Emotional Experience Words``, ``Coped Strategies and
Effects`` and ``Goals and Expectations``. Each profile becomes one layered persona by fixed rules
(every fill is counted in `ImportResult.notes`):

* **Surface** (what the seeker opens with) = ``Situation``; it is also the persona's ``situation``.
* **Context** (the events behind it) = ``Event Description`` followed by when, where and with whom
  (``Event Time``, ``Event Location``, ``Event Participants``).
* **Core** (said last) = ``Goals and Expectations`` after the feeling words (``Emotional Experience
  Words``): "I feel fear, trembling, … I hope …".
* **Big Five** from ``Personality``, a comma list of one pole per trait: Openness/Closedness,
  Conscientiousness/Unconscientiousness, Extraversion/Introversion, Agreeableness/Disagreeableness,
  Neuroticism/Emotional stability → high/low; a trait it does not name stays medium.
* **Topic** and **Subtopic** are kept as given (``topic``, ``subtopic``). The ESConv-style
  ``problem_type`` comes from the keyword rules over topic, subtopic, situation and event
  (`infer_problem_type`), else `TOPIC_PROBLEM_TYPES`, else the caller's fallback; ``emotion_type``
  from the feeling words, else the situation, else the fallback.
* ``coping_tried`` = ``Coped Strategies and Effects``; intensity is the midpoint 3 (not given);
  ``name`` is ``unknown``; an age that is not a number is a marked placeholder as for role cards.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

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
    _read_text,
    check_fallbacks,
    cut_at_word,
    read_json_list,
    slug,
)
from socialsim.personas.importers.rules import (
    _GENDERS,
    _NOT_GIVEN,
    card_age,
    infer_emotion,
    infer_problem_type,
)
from socialsim.schema import Level, Persona, ProblemType

#: The fields of one SocialSim profile; all must be present (values may be empty where noted).
PROFILE_FIELDS = (
    "ID",
    "Gender",
    "Age",
    "Occupation",
    "Personality",
    "Topic",
    "Subtopic",
    "Situation",
    "Event Time",
    "Event Location",
    "Event Participants",
    "Event Description",
    "Emotional Experience Words",
    "Coped Strategies and Effects",
    "Goals and Expectations",
)
_REQUIRED_TEXT = ("Situation", "Event Description")

#: Big Five poles (lower-case) → (trait, level).
BIG_FIVE_POLES: dict[str, tuple[str, Level]] = {
    "openness": ("openness", Level.HIGH),
    "closedness": ("openness", Level.LOW),
    "conscientiousness": ("conscientiousness", Level.HIGH),
    "unconscientiousness": ("conscientiousness", Level.LOW),
    "extraversion": ("extraversion", Level.HIGH),
    "extroversion": ("extraversion", Level.HIGH),
    "introversion": ("extraversion", Level.LOW),
    "agreeableness": ("agreeableness", Level.HIGH),
    "disagreeableness": ("agreeableness", Level.LOW),
    "antagonism": ("agreeableness", Level.LOW),
    "neuroticism": ("neuroticism", Level.HIGH),
    "emotional stability": ("neuroticism", Level.LOW),
    "stability": ("neuroticism", Level.LOW),
}

#: SocialSim topics (lower-case) → a problem type, used when no keyword rule matches.
TOPIC_PROBLEM_TYPES: dict[str, ProblemType] = {
    "study": ProblemType.ACADEMIC,
    "school": ProblemType.ACADEMIC,
    "education": ProblemType.ACADEMIC,
    "work": ProblemType.WORKPLACE,
    "career": ProblemType.JOB_CRISIS,
    "job": ProblemType.JOB_CRISIS,
    "family": ProblemType.PARENTS,
    "parents": ProblemType.PARENTS,
    "love": ProblemType.BREAKUP,
    "romance": ProblemType.BREAKUP,
    "relationship": ProblemType.BREAKUP,
    "marriage": ProblemType.DIVORCE,
    "friendship": ProblemType.FRIENDS,
    "friends": ProblemType.FRIENDS,
    "social": ProblemType.SOCIAL_ANXIETY,
    "interpersonal": ProblemType.FRIENDS,
    "health": ProblemType.HEALTH_ANXIETY,
    "sleep": ProblemType.SLEEP,
    "money": ProblemType.MONEY,
    "finance": ProblemType.MONEY,
    "emotion": ProblemType.ONGOING_DEPRESSION,
    "mental health": ProblemType.ONGOING_DEPRESSION,
}


def big_five(value: str) -> dict[str, str]:
    """``"Closedness, Unconscientiousness, …"`` → ``{"openness": "low", …}``; raises `_Bad` on an
    unknown pole or two poles of one trait."""
    out: dict[str, str] = {}
    for raw in re.split(r"[,;/]", value):
        pole = _clean(raw).lower()
        if not pole:
            continue
        if pole not in BIG_FIVE_POLES:
            raise _Bad(
                "Personality",
                f"unknown Big Five pole {raw.strip()!r}; use {', '.join(p.title() for p in BIG_FIVE_POLES)}",
            )
        trait, level = BIG_FIVE_POLES[pole]
        if trait in out and out[trait] != level.value:
            raise _Bad("Personality", f"both poles of {trait} given")
        out[trait] = level.value
    return out


def _text(rec: dict[str, Any], key: str) -> str:
    v = rec.get(key)
    if isinstance(v, list):
        v = ", ".join(str(x) for x in v)
    return _clean(v)


def profile_context(rec: dict[str, Any]) -> str:
    """The context layer: the event, then when, where and with whom."""
    parts = [_text(rec, "Event Description").rstrip(".") + "."]
    for key, label in (("Event Time", "When"), ("Event Location", "Where"), ("Event Participants", "Who was there")):
        v = _text(rec, key)
        if v and v.lower() not in _NOT_GIVEN:
            parts.append(f"{label}: {v}.")
    return cut_at_word(" ".join(parts))


def profile_core(rec: dict[str, Any]) -> str:
    """The core layer by rule: the feeling words, then the goals and expectations."""
    words = _text(rec, "Emotional Experience Words")
    goals = _text(rec, "Goals and Expectations")
    parts = []
    if words:
        parts.append(f"I feel {words.lower().rstrip('.')}.")
    if goals:
        parts.append(goals)
    return cut_at_word(" ".join(parts))


def _profile_record(
    rec: Any,
    idx: int,
    prefix: str,
    placeholder_age: int,
    fallback_problem: str | None,
    fallback_emotion: str | None,
    notes: Counter[str],
) -> Persona:
    if not isinstance(rec, dict):
        raise _Bad("(record)", "expected a JSON object with SocialSim's profile fields")
    missing = [k for k in PROFILE_FIELDS if k not in rec]
    if missing:
        raise _Bad(missing[0], "required field is missing (a SocialSim profile has " + ", ".join(PROFILE_FIELDS) + ")")
    for key in _REQUIRED_TEXT:
        if len(_text(rec, key)) < 5:
            raise _Bad(key, "empty; the persona's layers are built from it")
    situation = _text(rec, "Situation")
    data: dict[str, Any] = {
        "id": f"{prefix}-{slug(str(rec['ID']))}",
        "name": UNKNOWN,
        "situation": situation,
        "topic": _text(rec, "Topic") or None,
        "subtopic": _text(rec, "Subtopic") or None,
    }
    notes[f"name set to '{UNKNOWN}'"] += 1
    age, life_stage = card_age(str(rec.get("Age") if rec.get("Age") is not None else ""), placeholder_age)
    if life_stage:
        notes["age placeholder (profile gives no exact age); marked in life_stage"] += 1
    data["age"], data["life_stage"] = age, life_stage
    occupation = _text(rec, "Occupation")
    if occupation.lower() in _NOT_GIVEN:
        notes[f"occupation set to '{UNKNOWN}'"] += 1
        occupation = UNKNOWN
    data["occupation"] = occupation
    gender = _text(rec, "Gender").lower()
    if gender in _NOT_GIVEN:
        notes[f"gender set to '{UNKNOWN}'"] += 1
        gender = UNKNOWN
    data["gender"] = _GENDERS.get(gender, gender)
    personality = big_five(_text(rec, "Personality"))
    if personality:
        data["personality"] = personality
    words = _text(rec, "Emotional Experience Words")
    topic_text = " ".join(_text(rec, k) for k in ("Topic", "Subtopic", "Situation", "Event Description"))
    problem = infer_problem_type(topic_text)
    if problem is not None:
        notes["problem_type inferred from topic, subtopic, situation and event by keyword rules"] += 1
    else:
        topic = _text(rec, "Topic").lower()
        problem = TOPIC_PROBLEM_TYPES.get(topic)
        if problem is not None:
            notes["problem_type from the topic (TOPIC_PROBLEM_TYPES)"] += 1
        elif fallback_problem is not None:
            notes[f"problem_type set to the fallback {fallback_problem!r}"] += 1
            problem = fallback_problem  # type: ignore[assignment]
        else:
            raise _Bad(
                "Topic",
                f"no keyword rule matched and topic {_text(rec, 'Topic')!r} has no problem type; "
                "name one with --fallback-problem-type",
            )
    data["problem_type"] = problem
    emotion = infer_emotion(words)
    if emotion is not None:
        notes["emotion_type inferred from the emotional experience words"] += 1
    else:
        emotion = infer_emotion(situation + " " + _text(rec, "Event Description"))
        if emotion is not None:
            notes["emotion_type inferred from situation and event by keyword rules"] += 1
        elif fallback_emotion is not None:
            notes[f"emotion_type set to the fallback {fallback_emotion!r}"] += 1
            emotion = fallback_emotion  # type: ignore[assignment]
        else:
            raise _Bad("Emotional Experience Words", "no emotion recognised; name one with --fallback-emotion")
    data["emotion_type"] = emotion
    notes[f"intensity set to the midpoint {DEFAULT_CARD_INTENSITY}"] += 1
    data["initial_intensity"] = DEFAULT_CARD_INTENSITY
    coping = _text(rec, "Coped Strategies and Effects")
    if coping:
        data["coping_tried"] = [coping]
    core = profile_core(rec)
    if len(core) < 3:
        raise _Bad("Goals and Expectations", "empty, and no emotional experience words either; the core needs one")
    data["disclosure"] = {"surface": cut_at_word(situation), "context": profile_context(rec), "core": core}
    return Persona.model_validate(data)


def import_socialsim(
    path: str | Path,
    *,
    placeholder_age: int = DEFAULT_PLACEHOLDER_AGE,
    id_prefix: str | None = None,
    fallback_problem_type: str | None = None,
    fallback_emotion: str | None = None,
    skip_invalid: bool = False,
) -> ImportResult:
    """SocialSim user profiles (a JSON list) → layered personas; errors name the record and field."""
    path = Path(path)
    check_fallbacks(fallback_problem_type, fallback_emotion)
    data = read_json_list(path, _read_text(path, "SocialSim profile file"), "SocialSim profiles ('ID', 'Situation', …)")
    prefix = id_prefix or "socialsim"

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        for i, rec in enumerate(data, 1):
            build = partial(_profile_record, rec, i, prefix, placeholder_age, fallback_problem_type, fallback_emotion)
            yield f"record {i}", build, None

    return _collect(path, "socialsim", records(), skip_invalid)
