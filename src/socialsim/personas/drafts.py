"""What the persona builder plans and checks: the seeded stratified plan, the draft the LLM writes,
the checks a draft must pass, and the prompts (the build itself is `socialsim.personas.builder`).

**Plan.** Slot ``i`` gets a problem type, an emotion, an age band (and an age inside it) and a
gender from `plan_slot`: each dimension walks through its values in blocks, every block a fresh
seeded shuffle, so each dimension stays balanced for any N and combinations vary. Genders are
drawn woman:man:non-binary = 2:2:1 (`GENDER_WEIGHTS`). Slot ``i`` depends only on the seed and
``i``: a larger N extends a plan without changing its start.

**One slot.** The LLM gets the slot's facts (and one example persona of another problem type from
the default bank) and writes a `PersonaDraft` as JSON (grammar-constrained where the backend can).
A draft is accepted when it parses, passes `draft_problems` (first-person voice, no placeholders,
distinct layers, no degenerate repetition, a plausible name, not a copy of the example), is on
topic (`TOPIC_MAX_RANK`) and is not a near-duplicate (cosine similarity ≥
`NEAR_DUPLICATE_THRESHOLD` on `persona_text`) of a persona already in the output or, optionally,
in the default bank. Otherwise it is retried with a new seed and the reason in the prompt (and
without the example once it was copied), up to ``attempts`` times; a slot that stays invalid is
written to the rejects file with every attempt's reason and raw output. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from socialsim.agents.common import derive_seed
from socialsim.llm.structured import grammar_schema
from socialsim.personas.stats import AGE_BANDS, persona_text
from socialsim.schema import EmotionType, Persona, ProblemType
from socialsim.templating import PromptSet

#: Genders of the plan with their weights within each block.
GENDER_WEIGHTS: tuple[tuple[str, int], ...] = (("woman", 2), ("man", 2), ("non-binary", 1))
#: A draft is off-topic when its assigned problem type ranks below this place among all problem
#: types by embedding similarity of `persona_text` to "I am struggling with <type>." On the
#: hand-written default bank every persona's own type ranks 12th or better (90 % in the top 4).
TOPIC_MAX_RANK = 14
#: The oldest age the plan gives in the open-ended band "65+".
MAX_PLAN_AGE = 88
PROGRESS_KIND = "socialsim-persona-build"
TEMPLATE_NAMES = ("persona_system.j2", "persona_user.j2")


# -- plan -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One persona to write: its index and the facts the plan fixes."""

    index: int
    problem_type: ProblemType
    emotion_type: EmotionType
    age_band: str
    age: int
    gender: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.index,
            "problem_type": self.problem_type.value,
            "emotion_type": self.emotion_type.value,
            "age_band": self.age_band,
            "age": self.age,
            "gender": self.gender,
        }


def _block_pick(values: list[Any], seed: int, dim: str, index: int) -> Any:
    block, pos = divmod(index, len(values))
    order = list(values)
    random.Random(derive_seed(seed, "plan", dim, block)).shuffle(order)
    return order[pos]


def plan_slot(seed: int, index: int) -> Slot:
    """The facts of slot `index` under `seed` (see the module docstring)."""
    genders = [g for g, w in GENDER_WEIGHTS for _ in range(w)]
    band = _block_pick(list(AGE_BANDS), seed, "age_band", index)
    label, lo, hi = band
    age = random.Random(derive_seed(seed, "age", index)).randint(lo, min(hi, MAX_PLAN_AGE))
    return Slot(
        index=index,
        problem_type=_block_pick(list(ProblemType), seed, "problem_type", index),
        emotion_type=_block_pick(list(EmotionType), seed, "emotion_type", index),
        age_band=label,
        age=age,
        gender=_block_pick(genders, seed, "gender", index),
    )


def make_plan(seed: int, n: int) -> list[Slot]:
    return [plan_slot(seed, i) for i in range(n)]


# -- what the LLM writes ----------------------------------------------------------------------------


class PersonaDraft(BaseModel):
    """The part of a `Persona` the LLM writes; the plan fixes problem, emotion, age and gender."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=3, max_length=40)
    occupation: str = Field(min_length=3, max_length=60)
    situation: str = Field(min_length=40, max_length=320)
    surface: str = Field(min_length=10, max_length=160)
    context: str = Field(min_length=20, max_length=260)
    core: str = Field(min_length=10, max_length=180)
    initial_intensity: int = Field(ge=1, le=5)
    talk_style: str = Field(min_length=3, max_length=60)


DRAFT_SCHEMA = grammar_schema(PersonaDraft, max_string=320)

_PLACEHOLDER = re.compile(
    r"<[^>]{0,40}>|\[[^\]]{0,40}\]|\{[^}]{0,40}\}|lorem ipsum|\bTODO\b|\bN/A\b|^\s*(?:string|text|none|null|"
    r"name|occupation|unknown)\s*$",
    re.I,
)
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|Im|my|me|myself|mine|we|our|us|ours)\b", re.I)
_THIRD_PARTY = re.compile(r"\b(?:the seeker|the user|the persona|the client|the help-seeker|this person)\b", re.I)
_BAD_NAME_WORDS = {
    "seeker", "persona", "name", "user", "assistant", "anonymous", "unknown", "doe", "counselor", "supporter",
    "person", "example",
}  # fmt: skip


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def _degenerate(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    if len(words) >= 30 and len(set(words)) / len(words) < 0.35:
        return True
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return any(k >= 3 for k in _count(grams).values())


def _count(items: list[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


#: A draft that shares a run of this many words with the prompt's example copied from it.
COPY_NGRAM = 8


def _ngrams(text: str, n: int = COPY_NGRAM) -> set[tuple[str, ...]]:
    words = _norm(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def draft_problems(draft: PersonaDraft, example: Persona | None = None) -> list[str]:
    """Content problems pydantic cannot see; an empty list means the draft is acceptable.
    `example` is the persona shown in the prompt, if any: copying from it is a problem."""
    problems: list[str] = []
    texts = {
        "name": draft.name,
        "occupation": draft.occupation,
        "situation": draft.situation,
        "surface": draft.surface,
        "context": draft.context,
        "core": draft.core,
        "talk_style": draft.talk_style,
    }
    for key, text in texts.items():
        if _PLACEHOLDER.search(text):
            problems.append(f"{key} holds placeholder text ({text[:40]!r})")
    name_words = re.findall(r"[A-Za-z]+", draft.name)
    if not re.fullmatch(r"[A-Za-z][A-Za-z.'\- ]{1,39}", draft.name.strip()) or not 1 <= len(name_words) <= 4:
        problems.append(f"name {draft.name!r} is not a person's name (letters only, 1 to 4 words)")
    elif {w.lower() for w in name_words} & _BAD_NAME_WORDS:
        problems.append(f"name {draft.name!r} is a role or placeholder, not a person's name")
    elif example is not None and _norm(draft.name) == _norm(example.name):
        problems.append("name copied from the example")
    if _norm(draft.name) == _norm(draft.occupation):
        problems.append("occupation repeats the name")
    if len(draft.occupation.split()) > 6:
        problems.append("occupation is a description, not a job (more than 6 words)")
    for key in ("situation", "core"):
        if not _FIRST_PERSON.search(texts[key]):
            problems.append(f"{key} is not in the first person (no 'I', 'my', 'me', 'we' or 'our')")
    for key in ("situation", "surface", "context", "core"):
        if _THIRD_PARTY.search(texts[key]):
            problems.append(f"{key} talks about the seeker in the third person")
        if _degenerate(texts[key]):
            problems.append(f"{key} repeats itself (degenerate text)")
    if example is not None:
        shown = _ngrams(persona_text(example))
        for key in ("situation", "surface", "context", "core"):
            copied = _ngrams(texts[key]) & shown
            if copied:
                problems.append(f"{key} copies words from the example ({' '.join(sorted(copied)[0])!r})")
    layers = [("situation", draft.situation), ("surface", draft.surface), ("context", draft.context),
              ("core", draft.core)]  # fmt: skip
    for i, (ka, a) in enumerate(layers):
        for kb, b in layers[i + 1 :]:
            na, nb = _norm(a), _norm(b)
            if na and nb and (na == nb or (min(len(na), len(nb)) >= 20 and (na in nb or nb in na))):
                problems.append(f"{kb} repeats {ka}")
    return problems


class TopicCheck:
    """Ranks problem types by embedding similarity to a persona text (see `TOPIC_MAX_RANK`)."""

    def __init__(self) -> None:
        from socialsim import embeddings

        self.types = list(ProblemType)
        self.vectors = embeddings.embed([f"I am struggling with {t.value}." for t in self.types])

    def rank(self, vec: Any, problem_type: ProblemType) -> int:
        sims = self.vectors @ vec
        own = sims[self.types.index(problem_type)]
        return int((sims > own).sum()) + 1


def draft_to_persona(draft: PersonaDraft, slot: Slot, persona_id: str) -> Persona:
    return Persona(
        id=persona_id,
        name=draft.name.strip(),
        age=slot.age,
        gender=slot.gender,
        occupation=draft.occupation.strip(),
        problem_type=slot.problem_type,
        emotion_type=slot.emotion_type,
        initial_intensity=draft.initial_intensity,
        situation=draft.situation.strip(),
        disclosure={"surface": draft.surface.strip(), "context": draft.context.strip(), "core": draft.core.strip()},
        talk_style=draft.talk_style.strip(),
    )


# -- prompts ----------------------------------------------------------------------------------------


class BuilderPrompts(PromptSet):
    """The builder's Jinja2 templates (``personas/templates``), overridable file by file."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        super().__init__("socialsim.personas", TEMPLATE_NAMES, override_dir)


def example_for(slot: Slot, bank: list[Persona], seed: int) -> Persona | None:
    """A default-bank persona of another problem type, chosen by seed and slot."""
    pool = [p for p in bank if p.problem_type != slot.problem_type]
    if not pool:
        return None
    return pool[derive_seed(seed, "example", slot.index) % len(pool)]


def example_json(p: Persona) -> str:
    d = p.disclosure
    return json.dumps(
        {
            "name": p.name,
            "occupation": p.occupation,
            "situation": p.situation,
            "surface": d.surface,
            "context": d.context,
            "core": d.core,
            "initial_intensity": p.initial_intensity,
            "talk_style": p.talk_style or "plain, medium-length messages",
        },
        ensure_ascii=False,
    )


class _Index:
    """Unit vectors of accepted personas (growing), for nearest-neighbour checks."""

    def __init__(self, dim: int = 384) -> None:
        import numpy as np

        self.np = np
        self.vecs = np.zeros((64, dim), dtype="float32")
        self.ids: list[str] = []

    def add(self, pid: str, vec: Any) -> None:
        if len(self.ids) == len(self.vecs):
            self.vecs = self.np.concatenate([self.vecs, self.np.zeros_like(self.vecs)])
        self.vecs[len(self.ids)] = vec
        self.ids.append(pid)

    def nearest(self, vec: Any) -> tuple[str | None, float]:
        if not self.ids:
            return None, 0.0
        sims = self.vecs[: len(self.ids)] @ vec
        i = int(self.np.argmax(sims))
        return self.ids[i], float(sims[i])
