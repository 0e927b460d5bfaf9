"""The corpus engine: many dialogues in flight on one backend, each committed to the run store
when it finishes; resumable, budgeted, with live progress."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from socialsim.agents.common import derive_seed
from socialsim.agents.prompts import Prompts
from socialsim.errors import RetriesExhausted, UserError
from socialsim.llm import LLM, BudgetExceeded
from socialsim.llm.factory import build_llm
from socialsim.llm.scheduling import enter_dialogue
from socialsim.personas.bank import default_bank_path, load_personas, sample_personas
from socialsim.provenance import backend_environment
from socialsim.schema import (
    LABEL_FAILURES,
    ROLE_SLIP_CHECKS,
    Dialogue,
    ExecutionConfig,
    Persona,
    RejectionCheck,
    SimulationConfig,
    Turn,
)
from socialsim.simulate.dialogue import DialogueConfig, DialogueEvents, default_safety, simulate_dialogue
from socialsim.simulate.store import RunStore


def run_loop(coro: Any) -> Any:
    """Run a coroutine on a fresh event loop: uvloop's when it is installed (a third less CPU per
    HTTP call than asyncio's own loop, measured in bench/bench_scale.py), asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


@contextlib.contextmanager
def fewer_collections(young: int = 20_000) -> Iterator[None]:
    """Run a large simulation with the cyclic garbage collector working less often.

    Every call allocates many short-lived objects (request bodies, parsed replies, validated
    models), so at the default threshold (700 allocations) the young generation is collected
    hundreds of times a second, and each full collection walks everything loaded at startup
    (models, templates, the persona bank). Here the objects alive at the start are frozen out of
    collection and the young generation is collected every ``young`` allocations; both are
    restored on leaving. At 800 dialogues on 256 slots against the load target this cut the
    collector's time from 0.042-0.050 to 0.003 ms per call (828-980 collections to 93).
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        raise UserError(f"{path}: persona file not found") from None
    return h.hexdigest()


def personas_path(spec: str) -> Path:
    return default_bank_path() if spec == "default" else Path(spec)


@dataclass
class Plan:
    """Dialogue ``idx`` plays ``personas[idx]`` with `seed(idx)` and id `dialogue_id(idx)`; all
    derived from the config, so a resumed run recomputes the same plan."""

    personas: list[Persona]
    run_seed: int
    prefix: str

    def seed(self, idx: int) -> int:
        return derive_seed(self.run_seed, "dialogue", idx)

    def dialogue_id(self, idx: int) -> str:
        return f"{self.prefix}-{idx:06d}"


def make_plan(sim: SimulationConfig, bank: list[Persona]) -> Plan:
    chosen = sample_personas(bank, sim.n, seed=sim.seed, mode=sim.sampling)
    return Plan(chosen, sim.seed, sim.config_hash()[:8])


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"K/N"`` (1 <= K <= N) as (K, N); None for the whole plan."""
    if spec is None:
        return None
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UserError(f"--shard {spec!r}: give K/N, e.g. 2/8 for the second of eight shards") from None
    if not 1 <= k <= n:
        raise UserError(f"--shard {spec!r}: K must be between 1 and N")
    return k, n


def plan_indices(n: int, shard: str | None = None) -> range:
    """The dialogue indices a run (or its shard K/N: every N-th index from K-1) simulates."""
    parsed = parse_shard(shard)
    if parsed is None:
        return range(n)
    k, of = parsed
    return range(k - 1, n, of)


@dataclass
class Live:
    """Figures the progress display and the summary read."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    in_flight: int = 0
    deferred: int = 0
    turns: int = 0
    skipped: int = 0
    quality: dict[str, int] = field(default_factory=dict)
    """Per-turn checks of the dialogues finished this session (see `turn_quality`)."""
    stopped: str | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass
class RunResult:
    root: Path
    live: Live
    stats: dict[str, Any]
    wall_s: float
    exports: dict[str, Path]
    summary: dict[str, Any]

    @property
    def unfinished(self) -> str | None:
        """Why the run is not complete yet (budget, deferred or pending dialogues), or None."""
        if self.live.stopped:
            return self.live.stopped
        pending = int(self.summary.get("dialogues_pending") or 0) if self.summary else 0
        if self.live.deferred or pending:
            return f"{pending} dialogues pending ({self.live.deferred} deferred after the backend gave up)"
        return None


ProgressHook = Callable[[Live, LLM], None]


REJECTION_CHECKS: tuple[RejectionCheck, ...] = get_args(RejectionCheck)


def role_slipped(t: Turn) -> bool:
    """A seeker turn on which the model slipped out of its role at least once: an attempt the role check or
    the repeat check rejected (also when a regeneration then passed), or a kept line that failed one."""
    return t.slip in ROLE_SLIP_CHECKS or any(r.check in ROLE_SLIP_CHECKS for r in t.rejected)


def card_verbatim(t: Turn, persona: Persona | None) -> bool:
    """A seeker line that copies the persona card (`socialsim.agents.seeker.recites`); False without a persona."""
    from socialsim.agents.seeker import recites

    return persona is not None and t.speaker == "seeker" and recites(t.text, persona) is not None


def mark_quality(d: Dialogue) -> Dialogue:
    """Set ``d.quality``: 'seeker_slipped' when the seeker slipped on more than half of its turns
    (`Dialogue.seeker_slipped`), else 'ok'. The run engine marks every dialogue before committing it."""
    d.quality = "seeker_slipped" if d.seeker_slipped else "ok"
    return d


def turn_quality(d: Dialogue) -> dict[str, int]:
    """Counts the run summary adds up: seeker role slips (`role_slipped`), kept slips (``slips_kept``: every
    attempt failed, the least supporter-like one kept; ``role_slips_kept``: of them, those that failed the role
    or repeat check), fixed fallback lines (``role_fallbacks``), seeker lines copying the persona card
    (``card_verbatim_lines``), dialogues whose seeker slipped on most turns, rejected seeker attempts per check
    (``seeker_rejected_<check>``), supporter replies regenerated for leaking prompt text, thoughts (how many
    validated on the first call), and turns per label that failed (``label_failures_<kind>``, `LABEL_FAILURES`)."""
    sup = [t for t in d.turns if t.speaker == "supporter" and t.thought_attempts is not None]
    labelled = [t for t in d.turns if t.realized_strategy is not None and t.strategy is not None]
    seeker = [t for t in d.turns if t.speaker == "seeker"]
    replies = [t for t in d.turns if t.speaker == "supporter" and not (t.risk_reason or "").startswith("protocol:")]
    return {
        "role_fallbacks": sum(1 for t in d.turns if t.role_fallback),
        "role_slips": sum(1 for t in seeker if role_slipped(t)),
        "slips_kept": sum(1 for t in seeker if t.slip is not None),
        "role_slips_kept": sum(1 for t in seeker if t.slip in ROLE_SLIP_CHECKS),
        "card_verbatim_lines": sum(1 for t in seeker if card_verbatim(t, d.persona)),
        "dialogues_seeker_slipped": int(d.seeker_slipped),
        **{f"seeker_rejected_{c}": sum(r.check == c for t in seeker for r in t.rejected) for c in REJECTION_CHECKS},
        "supporter_leaks": sum(t.leaks for t in d.turns),
        "supporter_echoes": sum(t.echoes for t in d.turns),
        "thoughts": len(sup),
        "thoughts_first_try": sum(1 for t in sup if t.thought_attempts == 1),
        "realized_labelled": len(labelled),
        "realized_agree": sum(1 for t in labelled if t.realized_strategy == t.strategy),
        "realized_agree_first_try": sum(1 for t in labelled if first_try_realized(t) == t.strategy),
        "strategy_checked": sum(1 for t in labelled if t.strategy_attempts),
        "strategy_rewrites": sum(max(0, len(t.strategy_attempts) - 1) for t in labelled),
        "supporter_replies": len(replies),
        "supporter_words": sum(len(t.text.split()) for t in replies),
        "seeker_words": sum(len(t.text.split()) for t in seeker),
        "appraisals": sum(1 for t in seeker if t.appraisal is not None),
        # a leak counts when it was seen, also when a regeneration then replaced it
        "seeker_leaks": sum(1 for t in seeker if _leaked(t)),
        "seeker_drift": sum(1 for t in seeker if t.fidelity and t.fidelity.get("drift")),
        "seeker_fidelity_checked": sum(1 for t in seeker if t.fidelity),
        "seeker_turns": len(seeker),
        **{f"label_failures_{k}": sum(1 for t in d.turns if k in t.label_failures) for k in LABEL_FAILURES},
    }


def words_per_turn(summary: dict[str, Any]) -> dict[str, Any]:
    """Mean words per supporter reply (crisis-protocol replies left out) and per seeker turn, next to ESConv's
    (valid split; per turn: a speaker's consecutive utterances joined, as one simulated turn; per utterance)."""
    from socialsim.recognize.strategy_check import esconv_reference_words

    out: dict[str, Any] = {}
    for role, words, turns in (("supporter", "supporter_words", "supporter_replies"),
                               ("seeker", "seeker_words", "seeker_turns")):  # fmt: skip
        n = summary.get(turns) or 0
        out[role] = round(summary.get(words, 0) / n, 1) if n else None
    out["esconv"] = esconv_reference_words()
    return out


def first_try_realized(t: Turn) -> Any:
    """The realized strategy of a supporter turn's first reply: before any rewrite the strategy check asked for."""
    return t.strategy_attempts[0].realized_strategy if t.strategy_attempts else t.realized_strategy


def _leaked(t: Turn) -> bool:
    f = t.fidelity or {}
    return bool(f.get("leak") or f.get("leak_regenerations"))


QUALITY_KEYS = (
    "role_fallbacks",
    "role_slips",
    "slips_kept",
    "role_slips_kept",
    "card_verbatim_lines",
    "dialogues_seeker_slipped",
    *(f"seeker_rejected_{c}" for c in REJECTION_CHECKS),
    "supporter_leaks",
    "supporter_echoes",
    "thoughts",
    "thoughts_first_try",
    "realized_labelled",
    "realized_agree",
    "realized_agree_first_try",
    "strategy_checked",
    "strategy_rewrites",
    "supporter_replies",
    "supporter_words",
    "seeker_words",
    "appraisals",
    "seeker_leaks",
    "seeker_drift",
    "seeker_fidelity_checked",
    "seeker_turns",
    *(f"label_failures_{k}" for k in LABEL_FAILURES),
)
MAX_CONSECUTIVE_GIVEUPS = 3


def dialogue_config(sim: SimulationConfig) -> DialogueConfig:
    return DialogueConfig.from_simulation(sim)


async def _run_pending(
    store: RunStore,
    sim: SimulationConfig,
    ex: ExecutionConfig,
    llm: LLM,
    plan: Plan,
    pending: Iterator[int],
    live: Live,
    prompts: Prompts,
    on_progress: ProgressHook | None,
    on_event: DialogueEvents | None = None,
    roles: dict[str, LLM] | None = None,
) -> None:
    dcfg = dialogue_config(sim)
    roles = roles or {}
    queue = iter(pending)
    stop = asyncio.Event()
    # more dialogues in flight than call slots: each dialogue is a chain of dependent calls, so
    # a full pipeline needs several chains per slot (measured in bench/bench_engine.py)
    width = ex.dialogues_in_flight or (2 if llm.concurrency == 1 else 8 * llm.concurrency)
    giveups = 0
    admitted = 0

    async def worker() -> None:
        nonlocal giveups, admitted
        while not stop.is_set():
            idx = next(queue, None)
            if idx is None:
                return
            admitted += 1
            enter_dialogue(admitted)  # its calls queue by progress, then admission order
            live.in_flight += 1
            try:
                d: Dialogue = await simulate_dialogue(
                    roles.get("seeker", llm),
                    plan.personas[idx],
                    seed=plan.seed(idx),
                    dialogue_id=plan.dialogue_id(idx),
                    config=dcfg,
                    prompts=prompts,
                    on_event=on_event,
                    supporter_llm=roles.get("supporter", llm),
                    classifier_llm=roles.get("classifier", llm),
                )
            except BudgetExceeded as e:
                live.stopped = str(e)
                stop.set()
                return
            except RetriesExhausted:
                # one call outlasted its retries: leave this dialogue for --resume, unless the
                # server has never answered or keeps failing; then stop the run with the error
                giveups += 1
                if llm.stats.ok_calls == 0 or giveups >= MAX_CONSECUTIVE_GIVEUPS:
                    raise
                live.deferred += 1
                continue
            finally:
                live.in_flight -= 1
            giveups = 0
            store.commit(idx, mark_quality(d))
            live.turns += len(d.turns)
            for k, v in turn_quality(d).items():
                live.quality[k] = live.quality.get(k, 0) + v
            if d.status == "ok":
                live.ok += 1
            else:
                live.failed += 1

    async def ticker() -> None:
        while True:
            if on_progress:
                on_progress(live, llm)
            await asyncio.sleep(0.25)

    tick = asyncio.create_task(ticker())
    try:
        workers = [asyncio.create_task(worker()) for _ in range(width)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
    finally:
        tick.cancel()
        if on_progress:
            on_progress(live, llm)


def run_simulation(
    store: RunStore,
    sim: SimulationConfig,
    ex: ExecutionConfig,
    *,
    on_progress: ProgressHook | None = None,
    llm: LLM | None = None,
    on_event: DialogueEvents | None = None,
) -> RunResult:
    """Simulate every dialogue of the plan not yet in the store, then export from the store.
    ``on_event`` sees every dialogue's turns as they are made (a live transcript)."""
    bank = load_personas(personas_path(sim.personas))
    plan = make_plan(sim, bank)
    done = store.done_indices()
    mine = plan_indices(sim.n, store.manifest.get("shard"))
    pending = (i for i in mine if i not in done)
    counts = store.counts()
    live = Live(total=len(mine), ok=counts["ok"], failed=counts["failed"], turns=counts["turns"], skipped=len(done))
    own_llm = llm is None
    llm = llm or build_llm(sim.backend, ex)
    b = sim.backend
    env = backend_environment(b.kind, base_url=b.base_url, model=b.model, api_key_env=ex.api_key_env)
    for role, cfg in sim.roles.items():  # each role's own backend, next to the main one
        env[f"{role}_backend"] = backend_environment(
            cfg.kind, base_url=cfg.base_url, model=cfg.model, api_key_env=ex.api_key_env
        )
    store.record_environment(env)
    prior = store.get_meta("summary") or {}
    llm.prior_tokens = int(prior.get("prompt_tokens", 0)) + int(prior.get("completion_tokens", 0))
    llm.prior_cost = float(prior.get("cost_usd", 0.0))
    from socialsim.simulate.roles import combined_stats, distinct, role_llms

    roles = role_llms(sim, ex, llm)
    everyone = distinct(roles) if llm in roles.values() else [llm, *distinct(roles)]
    prompts = Prompts()
    prompts.compile_all()
    if sim.safety:  # compile the safety rules and load the learned stage now, not inside the loop while calls wait
        default_safety()
    if sim.fidelity:  # load the embedding model now, not inside the loop
        from socialsim.embeddings import model as embedding_model

        embedding_model()
    t0 = time.monotonic()

    async def main() -> None:
        try:
            await _run_pending(store, sim, ex, llm, plan, pending, live, prompts, on_progress, on_event, roles)
        finally:
            # connections belong to this event loop: release them here (they reopen lazily)
            for m in everyone:
                await m.backend.aclose()

    try:
        with fewer_collections():
            run_loop(main())
    finally:
        wall = time.monotonic() - t0
        stats = combined_stats(everyone)
        _store_stats(store, stats, live, wall)
        exports = store.export()  # the exports always mirror the store, also after an abort
        for m in everyone:
            if own_llm or m is not llm:
                m.close()
    return RunResult(store.root, live, stats, wall, exports, store.get_meta("summary"))


def _store_stats(store: RunStore, stats: dict[str, Any], live: Live, wall: float) -> None:
    runs = store.get_meta("sessions", [])
    session = {
        "wall_s": round(wall, 3),
        "stopped": live.stopped,
        "deferred": live.deferred,
        **stats,
        **{k: live.quality.get(k, 0) for k in QUALITY_KEYS},
    }
    runs.append(session)
    write_summary(store, live.total, runs, stopped=live.stopped, deferred=live.deferred)


def write_summary(
    store: RunStore,
    total_dialogues: int,
    sessions: list[dict[str, Any]],
    *,
    stopped: str | None = None,
    deferred: int = 0,
) -> dict[str, Any]:
    """Store the sessions and the run's summary (also as ``summary.json``): dialogue counts from the
    store, usage summed over every session, and ``label_failures``: turns per label kind that could not be
    made (`LABEL_FAILURES`, zeros included); ``seeker_rejections``: rejected seeker attempts per check
    (`REJECTION_CHECKS`, zeros included); the seeker's role slips, kept slips, fixed fallback lines and lines
    copying the persona card, with their rates per seeker turn (`turn_quality`)."""
    import json

    from socialsim.io import atomic_write_text

    store.set_meta("sessions", sessions)
    keys = [k for k in (sessions[-1] if sessions else {}) if k not in ("stopped", "deferred")]
    total: dict[str, Any] = {k: 0 for k in keys}
    for r in sessions:
        for k in total:
            total[k] = round(total[k] + (r.get(k) or 0), 6)
    counts = store.counts()
    summary = {
        "dialogues_total": total_dialogues,
        "shard": store.manifest.get("shard"),
        "dialogues_ok": counts["ok"],
        "dialogues_failed": counts["failed"],
        "dialogues_pending": total_dialogues - counts["ok"] - counts["failed"],
        "turns": counts["turns"],
        "stopped": stopped,
        "deferred_this_session": deferred,
        **total,
    }
    summary["label_failures"] = {k: summary.pop(f"label_failures_{k}", 0) for k in LABEL_FAILURES}
    summary["seeker_rejections"] = {c: summary.pop(f"seeker_rejected_{c}", 0) for c in REJECTION_CHECKS}
    if summary.get("thoughts"):
        summary["thoughts_first_try_rate"] = round(summary["thoughts_first_try"] / summary["thoughts"], 4)
    if summary.get("realized_labelled"):
        summary["strategy_agreement"] = round(summary["realized_agree"] / summary["realized_labelled"], 4)
        summary["strategy_agreement_first_try"] = round(
            summary.get("realized_agree_first_try", 0) / summary["realized_labelled"], 4
        )
    summary["words_per_turn"] = words_per_turn(summary)
    if summary.get("seeker_turns"):
        rates = {
            "seeker_leaks": "leak_rate",
            "seeker_drift": "drift_rate",
            "role_fallbacks": "role_fallback_rate",
            "role_slips": "role_slip_rate",
            "slips_kept": "slips_kept_rate",
            "card_verbatim_lines": "card_verbatim_rate",
        }
        for k, name in rates.items():
            summary[name] = round(summary.get(k, 0) / summary["seeker_turns"], 4)
        if not summary.get("seeker_fidelity_checked"):  # a run without --fidelity measured no leak or drift
            summary["leak_rate"] = summary["drift_rate"] = None
    store.set_meta("summary", summary)
    atomic_write_text(store.root / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
