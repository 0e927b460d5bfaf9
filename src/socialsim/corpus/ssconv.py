"""SSConv, the corpus SocialSim's authors released (3,229 dialogues, CC BY-NC 4.0): read and write.

A file is one JSON list of ``{"ID": 1, "Dialogue": [{"Turn": 1, "Seeker": "..."}, {"Turn": 2,
"Supporter Step by Step Reasoning": "...", "Supporter": "..."}, ...]}``.

* Reading: each dialogue becomes a `Dialogue` (backend ``ssconv``); the reasoning is kept as the
  supporter turn's ``thought_text``; ``strategy`` stays None (SSConv does not label strategies).
* Writing (`socialsim export --format ssconv`): our supporter thought is rendered as the reasoning
  text (`render_thought`), so our corpus can be compared with or merged into SSConv. What SSConv has
  no place for (persona, strategy labels, usage) is left out; use the JSONL export to keep it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.errors import UserError, validation_message
from socialsim.io import atomic_open, parse_json
from socialsim.schema import Dialogue, SupporterThought, Turn

SEEKER = "Seeker"
SUPPORTER = "Supporter"
REASONING = "Supporter Step by Step Reasoning"
BACKEND = "ssconv"
MODEL = "ssconv"


def render_thought(th: SupporterThought) -> str:
    """A supporter thought as step-by-step reasoning text."""
    return (
        f"1. The seeker feels {th.emotion} (intensity {th.intensity}/5). 2. Likely cause: {th.cause.rstrip('.')}. "
        f"3. What they need now: {th.need.rstrip('.')}. 4. Strategy: {th.strategy.value}, because "
        f"{th.rationale.rstrip('.')}."
    )


def to_ssconv(d: Dialogue, dialogue_id: int) -> dict[str, Any]:
    turns: list[dict[str, Any]] = []
    for i, t in enumerate(d.turns, 1):
        if t.speaker == "seeker":
            turns.append({"Turn": i, SEEKER: t.text})
            continue
        reasoning = render_thought(t.thought) if t.thought is not None else (t.thought_text or "")
        turns.append({"Turn": i, REASONING: reasoning, SUPPORTER: t.text})
    return {"ID": dialogue_id, "Dialogue": turns}


def write_ssconv(dialogues: Iterable[Dialogue], path: str | Path) -> int:
    """Write dialogues as an SSConv JSON list (IDs 1, 2, …), atomically. Returns the count."""
    path = Path(path)
    n = 0
    with atomic_open(path) as f:
        f.write("[")
        for d in dialogues:
            n += 1
            f.write(",\n" if n > 1 else "\n")
            f.write(json.dumps(to_ssconv(d, n), ensure_ascii=False))
        f.write("\n]\n" if n else "]\n")
    return n


def looks_like_ssconv(data: Any) -> bool:
    """True for a JSON list whose first object has SSConv's ``Dialogue`` list (ESConv has ``dialog``)."""
    return bool(data) and isinstance(data, list) and isinstance(data[0], dict) and "Dialogue" in data[0]


def ssconv_to_dialogue(obj: Any, *, where: str, default_id: str) -> Dialogue:
    """One SSConv dialogue object → `Dialogue`; `where` prefixes one-line errors."""
    if not isinstance(obj, dict) or not isinstance(obj.get("Dialogue"), list):
        raise UserError(f"{where}: field 'Dialogue': expected a list of turns")
    turns: list[Turn] = []
    for j, u in enumerate(obj["Dialogue"]):
        fwhere = f"{where}: field 'Dialogue[{j}]"
        if not isinstance(u, dict):
            raise UserError(f"{fwhere}': expected an object with 'Seeker' or 'Supporter'")
        has_seeker, has_supporter = isinstance(u.get(SEEKER), str), isinstance(u.get(SUPPORTER), str)
        if has_seeker == has_supporter:
            raise UserError(f"{fwhere}': expected exactly one of 'Seeker' and 'Supporter' (a string)")
        reasoning = u.get(REASONING)
        if reasoning is not None and not isinstance(reasoning, str):
            raise UserError(f"{fwhere}.{REASONING}': expected a string")
        try:
            if has_seeker:
                turns.append(Turn(speaker="seeker", text=u[SEEKER].strip()))
            else:
                turns.append(Turn(speaker="supporter", text=u[SUPPORTER].strip(), thought_text=reasoning or None))
        except ValidationError as e:
            raise UserError(validation_message(f"{fwhere}'", None, e)) from None
    did = f"{default_id.rsplit('-', 1)[0]}-{obj['ID']}" if obj.get("ID") is not None else default_id
    return Dialogue(id=did, persona_id=did, backend=BACKEND, model=MODEL, seed=0, turns=turns, created_at="")


def read_ssconv(path: str | Path, data: Any = None) -> list[Dialogue]:
    """Every dialogue of an SSConv file (`data`: its already parsed JSON, if at hand)."""
    path = Path(path)
    if data is None:
        data = parse_json(path, path.read_text(encoding="utf-8-sig"))
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of SSConv dialogues")
    return [
        ssconv_to_dialogue(obj, where=f"{path}: dialogue [{i}]", default_id=f"{path.stem}-{i}")
        for i, obj in enumerate(data)
    ]
