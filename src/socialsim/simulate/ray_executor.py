"""The same deterministic plan on a Ray cluster (``simulate --executor ray``).

N actors each own an event loop, a backend and a call cache; the driver hands them dialogue
indices, and each finished dialogue streams back to the driver, which alone writes the run store
(same schema, same resume as a local run). An actor that dies loses only the dialogues it had in
flight: they go back to the queue and a fresh actor takes its place. A killed driver leaves a run
that resumes like any other (the store holds every dialogue that came back).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from socialsim.errors import RetriesExhausted, UserError
from socialsim.llm import LLM, BudgetExceeded, Price
from socialsim.schema import Dialogue, ExecutionConfig, SimulationConfig
from socialsim.simulate.engine import (
    MAX_CONSECUTIVE_GIVEUPS,
    Live,
    ProgressHook,
    RunResult,
    _store_stats,
    make_plan,
    mark_quality,
    personas_path,
    plan_indices,
    turn_quality,
)
from socialsim.simulate.store import RunStore

RAY_MISSING = "--executor ray needs Ray, which is not installed: pip install 'socialsim[ray]'"


class DialogueWorker:
    """One Ray actor: its own plan, LLM (backend + cache) and event loop; simulates given indices. The strategy
    recognizer (``realized_strategy`` 'recognizer') loads in each actor on its first reply, once per actor
    process (the model directory: the shipped one, or ``$SOCIALSIM_STRATEGY_MODEL`` as the actor inherits it)."""

    def __init__(self, sim_json: str, ex_json: str) -> None:
        from socialsim.agents.prompts import Prompts
        from socialsim.llm.factory import build_llm
        from socialsim.personas.bank import load_personas
        from socialsim.simulate.engine import dialogue_config

        self.sim = SimulationConfig.model_validate_json(sim_json)
        ex = ExecutionConfig.model_validate_json(ex_json)
        self.plan = make_plan(self.sim, load_personas(personas_path(self.sim.personas)))
        self.llm = build_llm(self.sim.backend, ex)
        self.prompts = Prompts()
        self.dcfg = dialogue_config(self.sim)

    async def simulate(self, idx: int) -> tuple[str, dict[str, Any]]:
        """The dialogue (as JSON) and this actor's usage so far, so the driver's totals and live
        progress include every actor's calls, also those of an actor that dies later."""
        from socialsim.llm.scheduling import enter_dialogue
        from socialsim.simulate.dialogue import simulate_dialogue

        enter_dialogue(idx)
        d = await simulate_dialogue(
            self.llm,
            self.plan.personas[idx],
            seed=self.plan.seed(idx),
            dialogue_id=self.plan.dialogue_id(idx),
            config=self.dcfg,
            prompts=self.prompts,
        )
        return d.model_dump_json(), self._usage()

    async def stats(self) -> dict[str, Any]:
        return self._usage()

    def _usage(self) -> dict[str, Any]:
        return {k: v for k, v in self.llm.stats.__dict__.items() if k != "started" and isinstance(v, int | float)}


class RayExecutor:
    """A runner for `new_run` / `resume_run` (same call as `run_simulation`) that uses Ray actors."""

    def __init__(self, *, workers: int = 2, address: str | None = None, per_worker: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(RAY_MISSING) from None
        self.workers, self.address, self.per_worker = workers, address, per_worker
        self.actors: list[Any] = []
        self.replaced = 0

    def _actor(self, sim: SimulationConfig, ex: ExecutionConfig) -> Any:
        import ray

        cls = ray.remote(num_cpus=0, max_restarts=0)(DialogueWorker)
        return cls.options(max_concurrency=self._width(ex) + 4).remote(sim.model_dump_json(), ex.model_dump_json())

    def _width(self, ex: ExecutionConfig) -> int:
        return self.per_worker or ex.dialogues_in_flight or 8 * ex.concurrency

    def __call__(
        self,
        store: RunStore,
        sim: SimulationConfig,
        ex: ExecutionConfig,
        *,
        llm: LLM,
        on_progress: ProgressHook | None = None,
    ) -> RunResult:
        if sim.roles:
            from socialsim.errors import UserError

            raise UserError("role-specific models (--seeker-model, --supporter-model, ...) need --executor local")
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        done = store.done_indices()
        queue = deque(i for i in plan_indices(sim.n, store.manifest.get("shard")) if i not in done)
        counts = store.counts()
        live = Live(
            total=len(plan_indices(sim.n, store.manifest.get("shard"))),
            ok=counts["ok"],
            failed=counts["failed"],
            turns=counts["turns"],
            skipped=len(done),
        )
        prior = store.get_meta("summary") or {}
        budget_tokens = None if ex.max_tokens is None else ex.max_tokens - int(prior.get("prompt_tokens", 0)) - int(
            prior.get("completion_tokens", 0)
        )
        # budgets hold for the whole run: the driver stops handing out dialogues once they are spent
        budget_cost = None if ex.max_cost is None else ex.max_cost - float(prior.get("cost_usd", 0.0))
        price = Price(ex.price_in_per_m, ex.price_out_per_m)
        used_cost = 0.0
        self.actors = [self._actor(sim, ex) for _ in range(self.workers)]
        load = [0] * self.workers
        inflight: dict[Any, tuple[int, int, int]] = {}
        width = self._width(ex)
        giveups, deaths, used_tokens = 0, 0, 0
        t0 = time.monotonic()
        # the latest usage snapshot of every actor this run has had (a dead actor's stays counted)
        usage: dict[int, dict[str, Any]] = {}
        actor_ids = list(range(self.workers))
        try:
            while True:
                if live.stopped is None:
                    for a in range(self.workers):
                        while queue and load[a] < width:
                            idx = queue.popleft()
                            inflight[self.actors[a].simulate.remote(idx)] = (idx, a, actor_ids[a])
                            load[a] += 1
                live.in_flight = len(inflight)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.25)
                for ref in ready:
                    idx, a, aid = inflight.pop(ref)
                    load[a] -= 1
                    try:
                        raw, snapshot = ray.get(ref)
                        d = Dialogue.model_validate_json(raw)
                        if snapshot.get("calls", 0) >= usage.get(aid, {}).get("calls", 0):
                            usage[aid] = snapshot
                    except RayActorError:
                        # the actor died: its dialogues in flight go back to the queue, a new actor
                        # takes its place (unless actors keep dying before finishing anything)
                        deaths += 1
                        if deaths > 3 * self.workers:
                            raise UserError(
                                f"Ray actors died {deaths} times without finishing a dialogue; "
                                "see the Ray logs (e.g. /tmp/ray/session_latest/logs)"
                            ) from None
                        lost = [idx]
                        for r in [r for r, (_, b, _) in inflight.items() if b == a]:
                            lost.append(inflight.pop(r)[0])
                        queue.extendleft(sorted(lost, reverse=True))
                        load[a] = 0
                        self._replace(a, sim, ex)
                        actor_ids[a] = max(actor_ids) + 1
                        continue
                    except RayTaskError as e:  # the dialogue raised inside the actor: as in-process
                        cause = e.cause if isinstance(e.cause, BaseException) else e
                        if isinstance(cause, BudgetExceeded):
                            live.stopped = str(cause)
                            continue
                        if isinstance(cause, RetriesExhausted):
                            giveups += 1
                            if giveups >= MAX_CONSECUTIVE_GIVEUPS:
                                raise cause from None
                            live.deferred += 1
                            continue
                        raise cause from None
                    giveups = deaths = 0
                    store.commit(idx, mark_quality(d))
                    used_tokens += d.usage.prompt_tokens + d.usage.completion_tokens
                    used_cost += price.cost(d.usage.prompt_tokens, d.usage.completion_tokens)
                    live.turns += len(d.turns)
                    for k, v in turn_quality(d).items():
                        live.quality[k] = live.quality.get(k, 0) + v
                    live.ok += d.status == "ok"
                    live.failed += d.status == "failed"
                    if budget_tokens is not None and used_tokens >= budget_tokens and live.stopped is None:
                        live.stopped = f"token budget {ex.max_tokens} reached"
                    if budget_cost is not None and used_cost >= budget_cost and live.stopped is None:
                        live.stopped = f"cost budget ${ex.max_cost} reached"
                if ready:
                    _sum_into(llm, usage)
                if on_progress:
                    on_progress(live, llm)
            for a, actor in enumerate(self.actors):
                try:
                    usage[actor_ids[a]] = ray.get(actor.stats.remote(), timeout=30)
                except RayActorError:
                    pass
        finally:
            for actor in self.actors:
                ray.kill(actor)
            wall = time.monotonic() - t0
            _sum_into(llm, usage)
            _store_stats(store, llm.stats.as_dict(), live, wall)
            exports = store.export()
        if on_progress:
            on_progress(live, llm)
        return RunResult(store.root, live, llm.stats.as_dict(), wall, exports, store.get_meta("summary"))

    def _replace(self, a: int, sim: SimulationConfig, ex: ExecutionConfig) -> None:
        import ray

        ray.kill(self.actors[a])
        self.actors[a] = self._actor(sim, ex)
        self.replaced += 1




def _sum_into(llm: LLM, usage: dict[int, dict[str, Any]]) -> None:
    """The driver makes no calls itself: its stats are the sum of the actors' latest snapshots."""
    for k in {k for snap in usage.values() for k in snap}:
        setattr(llm.stats, k, type(getattr(llm.stats, k))(sum(snap.get(k, 0) for snap in usage.values())))
