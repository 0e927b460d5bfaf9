"""Role-specific models: the seeker, the supporter and the strategy classifier may each run on their own
backend (e.g. a strong model plays the seeker while the chatbot under test sits in the supporter's seat).
A role without its own backend uses the run's main one. Each role's backend is in the run config (and so in
its hash); every call's cache key carries the identity of the backend that answers it; the run's token
and cost budget counts every role's usage."""

from __future__ import annotations

from typing import Any

from socialsim.llm import LLM
from socialsim.llm.client import Stats
from socialsim.schema import ROLES, BackendConfig, ExecutionConfig, SimulationConfig


def role_backends(main: BackendConfig, specs: dict[str, dict[str, Any]]) -> dict[str, BackendConfig]:
    """Backends for the roles given any option (``{"seeker": {"kind": None, "base_url": ..., "model": ...}}``):
    unset fields default to the main backend's (the base URL only when the kind is the same)."""
    out: dict[str, BackendConfig] = {}
    for role, spec in specs.items():
        given = {k: v for k, v in spec.items() if v is not None}
        if not given:
            continue
        kind = given.get("kind", main.kind)
        base = main.model_dump() if kind == main.kind else {"kind": kind, "structured": main.structured}
        if "model" in given or "model_path" in given:
            base.update(model=None, model_path=None)
        base.update(given, kind=kind)
        out[role] = BackendConfig.model_validate(base)
    return out


def role_llms(sim: SimulationConfig, ex: ExecutionConfig, main: LLM) -> dict[str, LLM]:
    """An `LLM` per role (`ROLES`): the main one unless the config gives the role its own backend. Role
    LLMs share the main one's call cache and budget."""
    from socialsim.llm.factory import build_llm

    out: dict[str, LLM] = {}
    built: dict[str, LLM] = {}
    for role in ROLES:
        cfg = sim.roles.get(role)
        if cfg is None or cfg == sim.backend:
            out[role] = main
            continue
        key = cfg.model_dump_json()
        if key not in built:
            llm = build_llm(cfg, ex.model_copy(update={"replica_urls": []}), cache=main.cache)
            built[key] = llm
        out[role] = built[key]
    group = [main, *built.values()]
    for m in group:
        m.budget_peers = [x for x in group if x is not m]
    return out


def distinct(llms: dict[str, LLM]) -> list[LLM]:
    seen: dict[int, LLM] = {}
    for m in llms.values():
        seen.setdefault(id(m), m)
    return list(seen.values())


def combined_stats(llms: list[LLM]) -> dict[str, Any]:
    """`Stats.as_dict` summed over several LLMs."""
    total: dict[str, Any] = Stats().as_dict()
    for m in llms:
        for k, v in m.stats.as_dict().items():
            total[k] = round(total[k] + v, 6)
    return total
