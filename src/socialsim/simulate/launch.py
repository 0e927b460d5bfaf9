"""A simulation run from plain option values, as ``socialsim simulate`` gives them: the backend and
execution fields, each role's own backend, the run options. It builds the configs (a bad value is a
`ParamError` naming the field), checks what only makes sense together, and starts or resumes the run
through `socialsim.simulate.run.start_run`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.errors import ParamError
from socialsim.schema import REALIZED_MODES, BackendConfig, ExecutionConfig, parse_realized_mode
from socialsim.simulate.engine import RunResult


def launch_run(
    backend: Mapping[str, Any],
    execution: Mapping[str, Any],
    *,
    roles: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Any] | None = None,
    personas: str = "default",
    out: str | Path | None = None,
    resume: str | Path | None = None,
    force: bool = False,
    shard: str | None = None,
    progress: Any = None,
    executor: str = "local",
    workers: int = 2,
    ray_address: str | None = None,
) -> RunResult:
    """Start the run in ``out`` (or continue the one in ``resume``).

    ``backend``: `BackendConfig` fields; ``execution``: `ExecutionConfig` fields; ``roles``: per role
    (seeker, supporter, classifier) its own ``kind``/``base_url``/``model``, None where it uses the main
    backend's (`socialsim.simulate.roles.role_backends`); ``options``: the run options (``n``, ``seed``,
    ``max_turns``, ``realized_strategy``, ...; None = not given). ``executor``: 'local' or 'ray' (over
    ``workers`` actors, joining ``ray_address``)."""
    from socialsim.simulate.roles import role_backends
    from socialsim.simulate.run import make_runner, start_run

    options = dict(options or {})
    realized = options.get("realized_strategy")
    if realized is not None:
        options["realized_strategy"] = realized = str(parse_realized_mode(realized))
        if realized not in REALIZED_MODES:
            raise ParamError("realized_strategy", f"{realized!r} is not one of {', '.join(REALIZED_MODES)}")
    classifier = {k: v for k, v in (roles or {}).get("classifier", {}).items() if v is not None}
    if classifier and realized != "llm":
        raise ParamError(
            f"classifier_{next(iter(classifier))}".replace("classifier_kind", "classifier_backend"),
            "the LLM classifier labels replies only with --realized-strategy llm",
        )
    try:
        ex = ExecutionConfig(**execution)
        bcfg = BackendConfig(**backend)
        role_cfgs = role_backends(bcfg, {role: dict(spec) for role, spec in (roles or {}).items()})
    except ValidationError as e:
        raise ParamError.from_validation(e) from None
    return start_run(
        bcfg,
        ex,
        out=out,
        resume=resume,
        personas=personas,
        options=options,
        roles=role_cfgs,
        force=force,
        shard=shard,
        progress=progress,
        runner=make_runner(executor, workers=workers, address=ray_address),
    )
