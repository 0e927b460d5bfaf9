"""Starting and resuming a run: the resume rules, and the one-writer lock of a run folder.

A run folder has one writer at a time. `RunLock` takes an OS lock (``fcntl.flock``) on
``writer.lock`` in the folder; the kernel drops it when the process ends, however it ends
(kill -9 included), so there is never a stale lock to clean up. Readers (`evaluate`, `export`,
the web UI) open the store without it: SQLite's WAL lets them read while the writer writes.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.errors import ParamError, UserError, validation_message
from socialsim.llm.base import model_record
from socialsim.llm.factory import build_llm
from socialsim.schema import (
    REALIZED_MODES,
    BackendConfig,
    ExecutionConfig,
    SeekerFormat,
    SimulationConfig,
    parse_realized_mode,
)
from socialsim.simulate.engine import (
    LLM,
    RunResult,
    file_sha256,
    parse_shard,
    personas_path,
    run_simulation,
)
from socialsim.simulate.store import MANIFEST, RunStore

LOCK_FILE = "writer.lock"


class RunLock:
    """An exclusive, non-blocking OS lock on a run folder, held while a process writes the run."""

    def __init__(self, root: Path, fd: int) -> None:
        self.root, self._fd = root, fd

    @classmethod
    def acquire(cls, root: str | Path) -> RunLock:
        """Take the lock, or raise `UserError` naming the pid that holds it (never waits)."""
        root = Path(root)
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(
                f"{root}: another socialsim process (pid {holder}) is writing this run; "
                "wait for it to finish or stop it, then resume"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(root, fd)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The pid the holder wrote (it writes right after locking: wait a moment for it)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"


def _execute(
    store: RunStore,
    sim: SimulationConfig,
    ex: ExecutionConfig,
    llm: LLM,
    progress: Any,
    runner: Callable[..., RunResult] | None,
    on_event: Any = None,
) -> RunResult:
    """Run the plan with an optional progress display (a context manager with ``update``) and an
    optional live transcript (``on_event``, see `DialogueEvents`)."""
    run = runner or run_simulation
    extra = {"on_event": on_event} if on_event is not None else {}
    try:
        with progress if progress is not None else nullcontext():
            return run(store, sim, ex, llm=llm, on_progress=progress.update if progress is not None else None, **extra)
    finally:
        store.close()


def check_labeller(sim: SimulationConfig) -> None:
    """Load the seeker's role check, the safety layer (with the learned stage where installed) when the run
    labels seeker turns with it, and, when the run labels replies with it (``realized_strategy``
    'recognizer'), the strategy recognizer now: a missing or unreadable model is one line (exit 2) before
    anything is written, and the run's dialogues reuse this load (one per process; a Ray worker loads its own
    on first use) instead of stalling the event loop for seconds in the middle of the run."""
    from socialsim.recognize.voice import default_voice

    default_voice().check("warm up")  # also loads the embedding model
    if sim.safety:
        from socialsim.simulate.dialogue import default_safety

        default_safety()
    if sim.realized_strategy == "recognizer":
        from socialsim.recognize.strategy import default_recognizer

        default_recognizer()


def new_run(
    out: str | Path,
    sim: SimulationConfig,
    ex: ExecutionConfig,
    *,
    progress: Any = None,
    llm: LLM | None = None,
    runner: Callable[..., RunResult] | None = None,
    shard: str | None = None,
    on_event: Any = None,
) -> RunResult:
    """Create the run folder ``out`` and simulate the whole plan (or its ``shard`` "K/N") into it,
    holding its lock.

    ``progress`` is a context manager with an ``update(live, llm)`` method (e.g. `RunProgress`);
    ``runner`` replaces the in-process engine (e.g. the Ray executor), same signature as
    `run_simulation`."""
    out = Path(out)
    parse_shard(shard)
    llm = llm or build_llm(sim.backend, ex)  # bad backend settings fail here, before anything is written
    check_labeller(sim)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    if (out / MANIFEST).exists():
        raise UserError(f"{out}: already holds a run; continue it with --resume {out} or choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    with RunLock.acquire(out):
        store = RunStore.create(
            out, sim.model_dump(mode="json"), sim.config_hash(), shard=shard, model=model_record(llm.backend)
        )
        return _execute(store, sim, ex, llm, progress, runner, on_event)


def resume_config(
    store: RunStore,
    *,
    changes: dict[str, Any],
    backend: BackendConfig | None = None,
    personas: str = "default",
    force: bool = False,
) -> SimulationConfig:
    """The run's config for a resume. ``changes`` are corpus options the user gave again (None =
    not given); any that differ from the run's, another backend or another persona file are
    refused unless ``force`` (then the given options win)."""
    root = store.root
    try:
        sim = SimulationConfig.model_validate(store.manifest["config"])
    except ValidationError as e:
        raise UserError(validation_message(root / MANIFEST, None, e)) from None
    diffs = [f"{k} {getattr(sim, k)} → {v}" for k, v in changes.items() if v is not None and getattr(sim, k) != v]
    if backend is not None and (
        backend.kind != sim.backend.kind
        or (backend.kind == "openai" and (backend.base_url, backend.model) != (sim.backend.base_url, sim.backend.model))
        or (backend.kind == "local" and backend.model not in (None, sim.backend.model))
    ):
        diffs.append(f"backend {sim.backend.kind}:{sim.backend.model} → {backend.kind}:{backend.model}")
    if personas not in ("default", sim.personas) and str(Path(personas).resolve()) != sim.personas:
        diffs.append(f"personas {sim.personas} → {personas}")
    if file_sha256(personas_path(sim.personas)) != sim.personas_sha256:
        diffs.append(f"persona file {sim.personas} changed since the run started")
    if diffs and not force:
        raise UserError(
            f"{root}: resuming with a different config ({'; '.join(diffs)}); "
            "drop those options, or add --force to continue anyway"
        )
    if diffs:
        sim = sim.model_copy(update={k: v for k, v in changes.items() if v is not None})
    return sim


def resume_run(
    root: str | Path,
    ex: ExecutionConfig,
    *,
    changes: dict[str, Any] | None = None,
    backend: BackendConfig | None = None,
    personas: str = "default",
    force: bool = False,
    progress: Any = None,
    runner: Callable[..., RunResult] | None = None,
) -> RunResult:
    """Continue the run in ``root`` where it stopped. The folder's lock is taken first: a second
    writer gets a one-line `UserError` naming the holder's pid before any call is made."""
    store = RunStore.open(root)
    try:
        lock = RunLock.acquire(store.root)
    except UserError:
        store.close()
        raise
    with lock:
        try:
            sim = resume_config(store, changes=changes or {}, backend=backend, personas=personas, force=force)
            llm = build_llm(sim.backend, ex)
            check_labeller(sim)
        except BaseException:
            store.close()
            raise
        return _execute(store, sim, ex, llm, progress, runner)


#: The corpus options a run takes from its caller; None means "not given": a new run takes the
#: `SimulationConfig` default, a resumed run keeps its own value.
RUN_OPTIONS: tuple[str, ...] = (
    "n", "seed", "sampling", "max_turns", "safety", "disclosure", "realized_strategy", "fidelity", "strategy_check",
    "seeker_format",
)  # fmt: skip


def default_seeker_format(backend: BackendConfig, roles: dict[str, BackendConfig] | None = None) -> SeekerFormat:
    """The seeker's prompt format when none is given, by the backend that plays the seeker (its own in ``roles``,
    else ``backend``): ``text`` (a written transcript the model continues) on the embedded models, where it measured
    fewer role slips than a chat prompt (docs/method/fidelity.md); ``transcript`` (chat) on a server, as some
    (OpenAI's chat models, DeepSeek) have no plain-text ``/completions``."""
    return seeker_format_for(((roles or {}).get("seeker") or backend).kind)


def seeker_format_for(kind: str) -> SeekerFormat:
    """`default_seeker_format` by the kind of the seeker's backend ('local', 'hf', 'openai')."""
    return "text" if kind in ("local", "hf") else "transcript"


def simulation_config(personas: str, backend: BackendConfig, **fields: Any) -> SimulationConfig:
    """The config of a new run on the persona bank ``personas`` (a file, or 'default'): the bank is
    checked now (one clear line for a bad file, before anything is written) and its digest and the
    prompt templates' digest recorded. Fields not given take the `SimulationConfig` defaults."""
    from socialsim.agents.prompts import Prompts
    from socialsim.personas.bank import load_personas

    path = personas_path(personas)
    load_personas(path)
    if fields.get("seeker_format") is None:
        fields["seeker_format"] = default_seeker_format(backend, fields.get("roles"))
    try:
        return SimulationConfig(
            backend=backend,
            personas=personas if personas == "default" else str(Path(personas).resolve()),
            personas_sha256=file_sha256(path),
            templates_digest=Prompts().source_digest(),
            **fields,
        )
    except ValidationError as e:
        raise ParamError.from_validation(e, "config") from None


def start_run(
    backend: BackendConfig,
    ex: ExecutionConfig,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    personas: str = "default",
    options: dict[str, Any] | None = None,
    force: bool = False,
    shard: str | None = None,
    progress: Any = None,
    runner: Callable[..., RunResult] | None = None,
    on_event: Any = None,
    roles: dict[str, BackendConfig] | None = None,
) -> RunResult:
    """Start a new run in ``out``, or continue the one in ``resume``: the one entry point of
    ``socialsim simulate``. ``options`` holds the `RUN_OPTIONS` the caller gave (None = not given).
    A local backend with no model named is recorded as today's default model in a new run, and as
    "the run's own" in a resumed one, so a later default cannot change a run."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise ParamError(unknown[0], f"not a run option (use {', '.join(RUN_OPTIONS)})")
    if "realized_strategy" in options:  # one spelling, so a resume compares like with like (true = 'llm')
        options["realized_strategy"] = parse_realized_mode(options["realized_strategy"])
        if options["realized_strategy"] not in REALIZED_MODES:
            raise ParamError("realized_strategy", f"use one of {', '.join(REALIZED_MODES)}")
    if options.get("strategy_check") and options.get("realized_strategy", "recognizer") != "recognizer":
        raise ParamError(
            "strategy_check",
            f"needs realized_strategy 'recognizer' (the check reads its probabilities), "
            f"not {options['realized_strategy']!r}",
        )
    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise ParamError("out", "a new run (out) and a resumed run (resume) cannot be asked for at once; give one")
        if shard is not None:
            raise ParamError("shard", "belongs to a new run; a resumed run keeps the shard it was started with")
        if roles:
            raise ParamError("roles", "role-specific models belong to a new run; a resumed run keeps its own roles")
        return resume_run(
            resume,
            ex,
            changes={k: options.get(k) for k in RUN_OPTIONS},
            backend=backend,
            personas=personas,
            force=force,
            progress=progress,
            runner=runner,
        )
    if out is None:
        raise ParamError("out", "required: the run folder to create (or resume a run)")
    if "n" not in options:
        raise ParamError("n", "required: how many dialogues to simulate")
    if backend.kind == "local" and backend.model_path is None and backend.model is None:
        from socialsim.llm.models import DEFAULT_MODEL

        backend = backend.model_copy(update={"model": DEFAULT_MODEL})
    sim = simulation_config(personas, backend, **options, **({"roles": roles} if roles else {}))
    return new_run(out, sim, ex, progress=progress, shard=shard, runner=runner, on_event=on_event)


def make_runner(executor: str, *, workers: int = 2, address: str | None = None) -> Callable[..., RunResult] | None:
    """The engine a run uses: None for this process (`run_simulation`), or the Ray executor."""
    if executor == "local":
        return None
    if executor == "ray":
        from socialsim.simulate.ray_executor import RayExecutor

        return RayExecutor(workers=workers, address=address)
    raise UserError(f"--executor {executor!r}: use 'local' or 'ray'")
