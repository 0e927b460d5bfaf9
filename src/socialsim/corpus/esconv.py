"""Export dialogues to ESConv's JSON schema; our extra fields go under a separate ``socialsim`` key
so ESConv readers ignore them and nothing is lost."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.errors import UserError, validation_message
from socialsim.io import atomic_open, parse_json
from socialsim.schema import PROBLEM_ALIASES, Dialogue, ProblemType, Turn, parse_strategy

EXTRA_KEY = "socialsim"


def to_esconv(d: Dialogue) -> dict[str, Any]:
    p = d.persona
    seeker_scores: dict[str, str] = {}
    if p is not None:
        seeker_scores["initial_emotion_intensity"] = str(p.initial_intensity)
    thoughts = [t.thought for t in d.turns if t.thought is not None]
    if thoughts:
        # ESConv's final intensity is seeker-reported; ours is the supporter's last estimate.
        seeker_scores["final_emotion_intensity"] = str(thoughts[-1].intensity)
    dialog = []
    extras = []
    for t in d.turns:
        annotation: dict[str, str] = {}
        if t.speaker == "supporter" and t.strategy is not None:
            annotation["strategy"] = t.strategy.value
        dialog.append({"speaker": t.speaker, "annotation": annotation, "content": t.text})
        extras.append(
            {
                "thought": t.thought.model_dump(mode="json") if t.thought else None,
                "disclosure_layer": t.disclosure_layer,
                "role_fallback": t.role_fallback,
                "usage": t.usage.model_dump(),
                "latency_s": t.latency_s,
                "risk": t.risk,
                "risk_reason": t.risk_reason,
            }
        )
    return {
        "experience_type": (
            "Previous Experience" if p is not None and p.experience_type == "previous" else "Current Experience"
        ),
        "emotion_type": p.emotion_type.value if p else "",
        "problem_type": p.problem_type.value if p else "",
        "situation": p.situation if p else "",
        "survey_score": {"seeker": seeker_scores, "supporter": {}},
        "dialog": dialog,
        EXTRA_KEY: {
            "dialogue_id": d.id,
            "persona_id": d.persona_id,
            "backend": d.backend,
            "model": d.model,
            "seed": d.seed,
            "status": d.status,
            "end_reason": d.end_reason,
            "failure_reason": d.failure_reason,
            "final_intensity_source": "supporter_estimate" if thoughts else None,
            "turns": extras,
        },
    }


def write_esconv(dialogues: Iterable[Dialogue], path: str | Path) -> int:
    """Write an ESConv-format JSON list atomically. Returns the number of dialogues."""
    path = Path(path)
    n = 0
    with atomic_open(path) as f:  # streamed: a corpus never has to fit in memory
        f.write("[")
        for d in dialogues:
            f.write(",\n" if n else "\n")
            f.write(json.dumps(to_esconv(d), ensure_ascii=False))
            n += 1
        f.write("\n]\n" if n else "]\n")
    return n


def esconv_json_schema() -> dict[str, Any]:
    """A JSON Schema of ESConv's dialogue format (from ESConv's documentation)."""
    text = resources.files("socialsim.corpus").joinpath("esconv.schema.json").read_text("utf-8")
    return json.loads(text)


# -- reading --------------------------------------------------------------------------------------

#: ESConv speaker labels, current and older, mapped to ours.
SPEAKER_LABELS = {
    "seeker": "seeker",
    "speaker": "seeker",
    "usr": "seeker",
    "user": "seeker",
    "supporter": "supporter",
    "listener": "supporter",
    "sys": "supporter",
    "system": "supporter",
    "help-seeker": "seeker",
}

EXTERNAL_BACKEND = "esconv"
EXTERNAL_MODEL = "human"


@dataclass
class DialogueMeta:
    """What a corpus says about one dialogue besides its turns (ESConv's metadata or the persona's)."""

    problem_type: str | None = None
    emotion_type: str | None = None
    situation: str | None = None
    experience_type: str | None = None
    survey: dict[str, Any] = field(default_factory=dict)
    #: where the dialogue came from: ``file#index`` or ``file:line``
    source: str = ""


def normalise_problem(value: str | None) -> str | None:
    """ESConv and persona problem types onto `ProblemType` values; unknown labels stay as given."""
    if value is None:
        return None
    key = value.strip().lower()
    if not key:
        return None
    for p in ProblemType:
        if p.value == key:
            return p.value
    if key in PROBLEM_ALIASES:
        return PROBLEM_ALIASES[key].value
    return key


def read_esconv(path: Path, data: Any = None) -> tuple[list[Dialogue], list[DialogueMeta]]:
    """Every dialogue of an ESConv JSON list (`data`: its parsed JSON, if at hand), with its metadata.
    Our own ``esconv.json`` exports come back with their ``socialsim`` extras."""
    if data is None:
        data = parse_json(path, path.read_text(encoding="utf-8-sig"))
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of ESConv dialogues")
    dialogues: list[Dialogue] = []
    meta: list[DialogueMeta] = []
    for i, obj in enumerate(data):
        d, m = esconv_to_dialogue(obj, where=f"{path}: dialogue [{i}]", default_id=f"{path.stem}-{i:04d}")
        m.source = f"{path}#{i}"
        dialogues.append(d)
        meta.append(m)
    return dialogues, meta


def esconv_to_dialogue(obj: Any, *, where: str, default_id: str) -> tuple[Dialogue, DialogueMeta]:
    """One ESConv dialogue object → (`Dialogue`, `DialogueMeta`); `where` prefixes error messages."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object with a 'dialog' list")
    dialog = obj.get("dialog")
    if dialog is None:
        raise UserError(f"{where}: field 'dialog': required field is missing")
    if not isinstance(dialog, list):
        raise UserError(f"{where}: field 'dialog': expected a list of utterances")
    extra = obj.get("socialsim") if isinstance(obj.get("socialsim"), dict) else None
    extra_turns = extra.get("turns") if extra and isinstance(extra.get("turns"), list) else None
    if extra_turns is not None and len(extra_turns) != len(dialog):
        extra_turns = None
    turns: list[Turn] = []
    feedback: list[int] = []
    for j, u in enumerate(dialog):
        fwhere = f"{where}: field 'dialog[{j}]"
        if not isinstance(u, dict):
            raise UserError(f"{fwhere}': expected an object with speaker and content")
        label = u.get("speaker")
        if not isinstance(label, str):
            raise UserError(f"{fwhere}.speaker': required field is missing")
        speaker = SPEAKER_LABELS.get(label.strip().lower())
        if speaker is None:
            raise UserError(
                f"{fwhere}.speaker': unknown speaker {label!r} (expected seeker/supporter or speaker/listener)"
            )
        content = u.get("content")
        if not isinstance(content, str):
            raise UserError(f"{fwhere}.content': expected a string")
        ann = u.get("annotation") or {}
        if not isinstance(ann, dict):
            raise UserError(f"{fwhere}.annotation': expected an object")
        strategy = None
        if speaker == "supporter" and ann.get("strategy"):
            try:
                strategy = parse_strategy(str(ann["strategy"]))
            except ValueError as e:
                raise UserError(f"{fwhere}.annotation.strategy': {e}") from None
        if speaker == "seeker" and str(ann.get("feedback", "")).strip().isdigit():
            feedback.append(int(str(ann["feedback"]).strip()))
        kw: dict[str, Any] = {}
        if extra_turns is not None and isinstance(extra_turns[j], dict):
            x = extra_turns[j]
            kw = {k: x[k] for k in ("thought", "disclosure_layer", "role_fallback", "usage", "latency_s") if k in x}
            kw = {k: v for k, v in kw.items() if v is not None}
        try:
            turns.append(Turn(speaker=speaker, text=content.strip(), strategy=strategy, **kw))  # type: ignore[arg-type]
        except ValidationError as e:
            raise UserError(validation_message(f"{fwhere}'", None, e)) from None
    survey = obj.get("survey_score") if isinstance(obj.get("survey_score"), dict) else {}
    if feedback:
        survey = {**survey, "seeker_feedback": feedback}
    m = DialogueMeta(
        problem_type=normalise_problem(obj.get("problem_type") if isinstance(obj.get("problem_type"), str) else None),
        emotion_type=(obj.get("emotion_type") or None) if isinstance(obj.get("emotion_type"), str) else None,
        situation=obj.get("situation") if isinstance(obj.get("situation"), str) else None,
        experience_type=obj.get("experience_type") if isinstance(obj.get("experience_type"), str) else None,
        survey=survey,
    )
    fields: dict[str, Any] = {
        "id": default_id,
        "persona_id": default_id,
        "backend": EXTERNAL_BACKEND,
        "model": EXTERNAL_MODEL,
        "seed": 0,
        "turns": turns,
        "created_at": "",
    }
    if extra is not None:  # our own export: restore what the ESConv schema has no place for
        mapping = {"dialogue_id": "id", "persona_id": "persona_id", "backend": "backend", "model": "model"}
        for src, dst in mapping.items():
            if isinstance(extra.get(src), str) and extra[src]:
                fields[dst] = extra[src]
        for key in ("seed", "status", "end_reason", "failure_reason"):
            if extra.get(key) is not None:
                fields[key] = extra[key]
    try:
        return Dialogue(**fields), m
    except ValidationError as e:
        raise UserError(validation_message(where, None, e)) from None
