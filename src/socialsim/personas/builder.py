"""Synthesise new personas with an LLM, from a seeded stratified plan, resumably.

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

**Files.** ``OUT`` (accepted personas, JSONL), ``OUT.rejects.jsonl`` and ``OUT.progress.json``
(the build's config and counters). Each accepted or rejected slot is appended as one line with a
single ``write`` on an ``O_APPEND`` descriptor and fsynced, so a kill loses at most the slots in
flight; a torn last line (power loss) is cut off on resume. A restart with the same ``OUT`` skips
the slots already in either file. Persona ids are ``<prefix>-<slot:05d>``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from socialsim.agents.common import derive_seed
from socialsim.errors import StructuredOutputError, UserError, validation_message
from socialsim.io import LineWriter, atomic_write_text, iter_jsonl, repair_tail
from socialsim.llm.base import ChatRequest
from socialsim.llm.structured import generate_structured, grammar_schema
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


# -- files ------------------------------------------------------------------------------------------


def progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.json")


def rejects_path(out: Path) -> Path:
    return out.with_name(out.name + ".rejects.jsonl")


# -- the build ----------------------------------------------------------------------------------------


@dataclass
class BuildStats:
    """Figures of one build session (and totals over the whole output for done/accepted/rejected)."""

    total: int = 0
    accepted: int = 0
    rejected: int = 0
    resumed: int = 0
    attempts: int = 0
    retries: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    session_accepted: int = 0
    session_rejected: int = 0
    started: float = field(default_factory=time.monotonic)
    torn_lines_repaired: int = 0

    @property
    def done(self) -> int:
        return self.accepted + self.rejected

    def count_reason(self, reason: str) -> None:
        for kind in reason_kinds(reason):
            self.reasons[kind] = self.reasons.get(kind, 0) + 1


#: (substring of a problem, its category) for the build summary; first match wins.
_REASON_KINDS: tuple[tuple[str, str], ...] = (
    ("unparseable", "unparseable or schema-invalid JSON"),
    ("example", "copied the prompt's example"),
    ("placeholder text", "placeholder text"),
    ("name", "not a person's name"),
    ("first person", "not in the first person"),
    ("third person", "speaks of the seeker in the third person"),
    ("repeats itself", "degenerate repetition"),
    ("repeats", "disclosure layers repeat each other"),
    ("occupation", "implausible occupation"),
    ("off-topic", "off-topic for the problem type"),
    ("near-duplicate", "near-duplicate"),
)


def reason_kinds(reason: str) -> list[str]:
    """The categories of the problems in one attempt's reason (problems are separated by '; ')."""
    kinds: list[str] = []
    for part in reason.split("; "):
        kind = next((k for sub, k in _REASON_KINDS if sub in part), "other")
        if kind not in kinds:
            kinds.append(kind)
    return kinds


@dataclass
class BuildResult:
    out: Path
    rejects: Path
    progress: Path
    stats: BuildStats
    wall_s: float
    llm_stats: dict[str, Any]


ProgressHook = Callable[[BuildStats, Any], None]


def _config(
    llm: Any,
    seed: int,
    attempts: int,
    temperature: float,
    dedupe_against_default: bool,
    id_prefix: str,
    prompts: BuilderPrompts,
    threshold: float,
) -> dict[str, Any]:
    ident = dict(llm.backend.identity())
    ident.pop("base_url", None)  # the same model served at another address gives the same personas
    return {
        "seed": seed,
        "backend": ident,
        "attempts": attempts,
        "temperature": temperature,
        "dedupe_against_default": dedupe_against_default,
        "id_prefix": id_prefix,
        "templates_digest": prompts.digest(),
        "near_duplicate_threshold": threshold,
    }


def _load_done(out: Path, rej: Path, id_prefix: str, stats: BuildStats) -> tuple[set[int], list[Persona]]:
    """Slots already done (accepted or rejected) and the accepted personas, after repairing torn tails."""
    done: set[int] = set()
    personas: list[Persona] = []
    id_re = re.compile(re.escape(id_prefix) + r"-(\d+)$")
    for path in (out, rej):
        if repair_tail(path):
            stats.torn_lines_repaired += 1
    hint = "the build output was changed by hand; fix or remove that line"
    if out.exists():
        for lineno, obj in iter_jsonl(out, hint=hint):
            try:
                p = Persona.model_validate(obj)
            except ValidationError as e:
                msg = validation_message(out, lineno, e).removesuffix(" Fix this record and run again.")
                raise UserError(f"{msg} The build output was changed by hand; fix or remove that line.") from None
            m = id_re.match(p.id)
            if not m:
                raise UserError(
                    f"{out}:{lineno}: field 'id': {p.id!r} is not an id of this build "
                    f"('{id_prefix}-NNNNN'); the file was changed by hand"
                )
            done.add(int(m.group(1)))
            personas.append(p)
    stats.accepted = len(personas)
    if rej.exists():
        for lineno, obj in iter_jsonl(rej, hint=hint, what="a rejects line of this build"):
            try:
                slot = int(obj["slot"])
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{rej}:{lineno}: field 'slot': not a rejects line of this build") from None
            if slot not in done:
                done.add(slot)
                stats.rejected += 1
    return done, personas


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


async def abuild_personas(
    llm: Any,
    n: int,
    out: str | Path,
    seed: int = 0,
    *,
    attempts: int = 3,
    temperature: float = 0.9,
    dedupe_against_default: bool = True,
    id_prefix: str | None = None,
    max_tokens: int = 512,
    prompts: BuilderPrompts | None = None,
    on_progress: ProgressHook | None = None,
    width: int | None = None,
) -> BuildResult:
    """Async form of `build_personas` (run it inside your own event loop)."""
    from socialsim import embeddings
    from socialsim.personas.bank import default_personas

    if n < 1:
        raise UserError(f"option --n: must be at least 1 (got {n})")
    if not 1 <= attempts <= 20:
        raise UserError(f"option --attempts: must be 1 to 20 (got {attempts})")
    out = Path(out)
    prompts = prompts or BuilderPrompts()
    id_prefix = id_prefix or f"gen-s{seed}"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,60}", id_prefix):
        raise UserError(f"option --id-prefix: {id_prefix!r} may hold only letters, digits, '_', '.', '-'")
    threshold = embeddings.NEAR_DUPLICATE_THRESHOLD
    config = _config(llm, seed, attempts, temperature, dedupe_against_default, id_prefix, prompts, threshold)
    prog, rej = progress_path(out), rejects_path(out)
    if prog.exists():
        try:
            state = json.loads(prog.read_text(encoding="utf-8"))
            old = state["config"] if state.get("kind") == PROGRESS_KIND else None
        except (ValueError, KeyError, TypeError, AttributeError):
            old = None
        if not isinstance(old, dict):
            raise UserError(f"{prog}: not a persona-build progress file; remove it or choose another --out")
        diffs = [f"{k} {old.get(k)!r} → {v!r}" for k, v in config.items() if old.get(k) != v]
        if diffs:
            raise UserError(
                f"{out}: a build with another config is in progress there ({'; '.join(diffs)}); resume it with the "
                "same options, or choose another --out"
            )
        created = state.get("created")
    else:
        for path in (out, rej):
            if path.exists():
                raise UserError(
                    f"{path}: exists but has no build progress file ({prog.name}); it was not written by "
                    "`build`, so it is left alone: choose another --out or move the file away"
                )
        created = None
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = BuildStats(total=n)
    embeddings.model()  # fail early (and before the first LLM call) when embeddings are not installed
    done, existing = _load_done(out, rej, id_prefix, stats)
    stats.resumed = len([i for i in done if i < n])
    created = created or datetime.now(UTC).isoformat(timespec="seconds")

    def save_progress(finished: bool = False) -> None:
        atomic_write_text(
            prog,
            json.dumps(
                {
                    "kind": PROGRESS_KIND,
                    "version": 1,
                    "config": config,
                    "n": n,
                    "created": created,
                    "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                    "accepted": stats.accepted,
                    "rejected": stats.rejected,
                    "finished": finished,
                    "output": out.name,
                    "rejects": rej.name,
                },
                indent=2,
                ensure_ascii=False,
            )
            + "\n",
        )

    save_progress()
    bank = default_personas()
    index = _Index()
    if existing:
        for p, v in zip(existing, embeddings.embed([persona_text(p) for p in existing]), strict=True):
            index.add(p.id, v)
    bank_index = _Index()
    if dedupe_against_default:
        for p, v in zip(bank, embeddings.embed([persona_text(p) for p in bank]), strict=True):
            bank_index.add(p.id, v)
    topic = TopicCheck()
    system = prompts.render("persona_system.j2")
    pending = iter([i for i in range(n) if i not in done])
    out_writer, rej_writer = LineWriter(out), LineWriter(rej)
    stop = asyncio.Event()

    async def one(slot: Slot) -> None:
        example = example_for(slot, bank, seed)
        ex_vec = embeddings.embed([persona_text(example)])[0] if example is not None else None
        tries: list[dict[str, Any]] = []
        avoid = ""
        show_example = example is not None
        for attempt in range(attempts):
            stats.attempts += 1
            if attempt:
                stats.retries += 1
            user = prompts.render(
                "persona_user.j2", slot=slot, example=example_json(example) if show_example else "", avoid=avoid
            )
            req = ChatRequest.of(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                temperature=min(1.3, temperature + 0.1 * attempt),
                max_tokens=max_tokens,
                seed=derive_seed(seed, "persona", slot.index, attempt),
                json_schema=DRAFT_SCHEMA,
            )
            raw = ""
            try:
                draft, comps = await generate_structured(llm, req, PersonaDraft, attempts=1)
                raw = comps[-1].text
            except StructuredOutputError as e:
                reason = f"unparseable: {e}"
                raw = e.raw
            else:
                problems = draft_problems(draft, example if show_example else None)
                reason = "; ".join(problems)
                persona = None
                if not problems:
                    try:
                        persona = draft_to_persona(draft, slot, f"{id_prefix}-{slot.index:05d}")
                    except ValidationError as e:
                        first = e.errors()[0]
                        reason = f"unparseable: Persona field '{'.'.join(map(str, first['loc']))}': {first['msg']}"
                if persona is not None:
                    vec = embeddings.embed([persona_text(persona)])[0]
                    near_id, sim = index.nearest(vec)
                    bank_id, bank_sim = bank_index.nearest(vec)
                    ex_sim = float(vec @ ex_vec) if ex_vec is not None else 0.0
                    rank = topic.rank(vec, slot.problem_type)
                    if show_example and ex_sim >= threshold:
                        reason = f"copies the prompt's example {example.id} (similarity {ex_sim:.2f})"  # type: ignore[union-attr]
                    elif rank > TOPIC_MAX_RANK:
                        reason = (
                            f"off-topic: the text is not about {slot.problem_type.value} "
                            f"(ranks {rank} of {len(topic.types)} problem types)"
                        )
                    elif sim >= threshold:
                        reason = f"near-duplicate of {near_id} in the output (similarity {sim:.2f})"
                    elif bank_sim >= threshold:
                        reason = f"near-duplicate of {bank_id} in the default bank (similarity {bank_sim:.2f})"
                    else:
                        # no await between the check above and here: concurrent slots cannot race
                        out_writer.append(persona.model_dump_json(exclude_none=True))
                        done.add(slot.index)
                        index.add(persona.id, vec)
                        stats.accepted += 1
                        stats.session_accepted += 1
                        return
            stats.count_reason(reason)
            tries.append({"attempt": attempt + 1, "reason": reason, "raw": raw[:4000]})
            avoid = reason.split(";")[0][:160]
            if "example" in reason:  # it copied the example: the next try goes without one
                show_example = False
        rej_writer.append(json.dumps({**slot.as_dict(), "attempts": tries}, ensure_ascii=False))
        done.add(slot.index)
        stats.rejected += 1
        stats.session_rejected += 1

    from socialsim.llm import BudgetExceeded

    stopped: list[BaseException] = []

    async def worker() -> None:
        while not stop.is_set():
            i = next(pending, None)
            if i is None:
                return
            stats.in_flight += 1
            try:
                await one(plan_slot(seed, i))
            except Exception as e:  # budget reached, backend gave up: stop every worker, keep what is done
                stopped.append(e)
                stop.set()
                return
            finally:
                stats.in_flight -= 1
            if stats.done % 10 == 0:
                save_progress()

    async def ticker() -> None:
        while True:
            if on_progress:
                on_progress(stats, llm)
            await asyncio.sleep(0.25)

    t0 = time.monotonic()
    tick = asyncio.create_task(ticker())
    try:
        workers = [asyncio.create_task(worker()) for _ in range(max(1, width or getattr(llm, "concurrency", 1)))]
        await asyncio.gather(*workers)
    finally:
        tick.cancel()
        out_writer.close()
        rej_writer.close()
        if on_progress:
            on_progress(stats, llm)
        save_progress(finished=all(i in done for i in range(n)))
    if stopped:
        err = stopped[0]
        if isinstance(err, BudgetExceeded):
            raise UserError(f"{err}; {stats.done}/{n} slots done, run the same command again to continue") from None
        raise err
    return BuildResult(out, rej, prog, stats, time.monotonic() - t0, llm.stats.as_dict())


def build_personas(
    llm: Any,
    n: int,
    out: str | Path,
    seed: int = 0,
    *,
    attempts: int = 3,
    temperature: float = 0.9,
    dedupe_against_default: bool = True,
    id_prefix: str | None = None,
    max_tokens: int = 512,
    prompts: BuilderPrompts | None = None,
    show_progress: bool = True,
    console: Any = None,
) -> BuildResult:
    """Synthesise `n` personas into the JSONL file `out` with `llm` (an `socialsim.llm.LLM`), from
    the stratified plan of `seed`; resumes when `out` holds an unfinished build of the same config.
    See the module docstring for the plan, the checks and the files."""
    progress = BuildProgress(console) if show_progress else None

    async def main() -> BuildResult:
        try:
            return await abuild_personas(
                llm,
                n,
                out,
                seed,
                attempts=attempts,
                temperature=temperature,
                dedupe_against_default=dedupe_against_default,
                id_prefix=id_prefix,
                max_tokens=max_tokens,
                prompts=prompts,
                on_progress=progress.update if progress else None,
            )
        finally:
            await llm.backend.aclose()

    if progress is None:
        return asyncio.run(main())
    with progress:
        return asyncio.run(main())


class BuildProgress:
    """A rich progress bar for `build_personas` (on stderr unless given a console)."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]personas"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self.task: Any = None

    def __enter__(self) -> BuildProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, stats: BuildStats, llm: Any) -> None:
        s = llm.stats
        elapsed = max(1e-6, time.monotonic() - stats.started)
        rate = 60 * (stats.session_accepted + stats.session_rejected) / elapsed
        info = (
            f"accepted {stats.accepted} · rejected {stats.rejected} · retries {stats.retries}"
            + (f" · resumed {stats.resumed}" if stats.resumed else "")
            + f" · {rate:.1f}/min · calls {s.calls} (cached {s.cached}) · tok {s.prompt_tokens}/{s.completion_tokens}"
        )
        done = min(stats.total, stats.done)
        if self.task is None:
            self.task = self.progress.add_task("build", total=stats.total, completed=done, info=info)
        else:
            self.progress.update(self.task, completed=done, info=info)
