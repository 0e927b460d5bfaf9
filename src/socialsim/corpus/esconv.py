"""Export dialogues to ESConv's JSON schema; our extra fields go under a separate ``socialsim`` key
so ESConv readers ignore them and nothing is lost."""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from socialsim.io import atomic_open
from socialsim.schema import Dialogue

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
