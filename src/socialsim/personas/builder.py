"""Synthesise new personas with an LLM, from a seeded stratified plan, resumably.

The plan (slot facts), the draft the LLM writes and the checks a draft must pass are in
`socialsim.personas.drafts`; this module runs the build: each slot is asked, checked, retried with the
reason, and written as accepted or rejected. Nothing is dropped silently.

**Files.** ``OUT`` (accepted personas, JSONL), ``OUT.rejects.jsonl`` and ``OUT.progress.json``
(the build's config and counters). Each accepted or rejected slot is appended as one line with a
single ``write`` on an ``O_APPEND`` descriptor and fsynced, so a kill loses at most the slots in
flight; a torn last line (power loss) is cut off on resume. A restart with the same ``OUT`` skips
the slots already in either file. Persona ids are ``<prefix>-<slot:05d>``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.agents.common import derive_seed
from socialsim.errors import StructuredOutputError, UserError, validation_message
from socialsim.io import LineWriter, atomic_write_text, iter_jsonl, repair_tail
from socialsim.llm.base import ChatRequest
from socialsim.llm.structured import generate_structured
from socialsim.personas.build_progress import BuildProgress
from socialsim.personas.drafts import (
    DRAFT_SCHEMA,
    PROGRESS_KIND,
    TOPIC_MAX_RANK,
    BuilderPrompts,
    PersonaDraft,
    Slot,
    TopicCheck,
    _Index,
    draft_problems,
    draft_to_persona,
    example_for,
    example_json,
    plan_slot,
)
from socialsim.personas.stats import persona_text
from socialsim.schema import Persona

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
