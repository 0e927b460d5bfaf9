"""The Python API: socialsim from a notebook or a script.

Seven calls cover the data's life; everything else stays importable from its own module:

```python
import socialsim

backend = socialsim.Backend.local("smollm2-135m")          # or Backend.openai(url, model)
run = socialsim.simulate(2, backend=backend, out="runs/quick", max_turns=3)
run.to_pandas()                                           # one row per turn
socialsim.evaluate(run, reference="esconv-dev").to_pandas()
socialsim.export(run, "exports/quick", formats=["sft"])
socialsim.screen("I have the pills here and I'm taking them tonight").tier   # 'protocol'
```

These are the functions the command line calls (``socialsim simulate`` is `simulate` with options), so a
run started here resumes with ``socialsim simulate --resume`` and the other way round. Bad input raises
`UserError` (its subclass `ParamError` names the parameter): the same errors the command line prints as
one line with exit code 2.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from socialsim.errors import ParamError, UserError

if TYPE_CHECKING:
    import datasets
    import pandas

    from socialsim.evaluate.run import Evaluation
    from socialsim.safety.layer import SafetyDecision, SafetyLayer
    from socialsim.schema import BackendConfig, Dialogue, ExecutionConfig, Persona

__all__ = [
    "Backend",
    "EvaluationResult",
    "ParamError",
    "PersonaBank",
    "Run",
    "UserError",
    "asimulate",
    "evaluate",
    "export",
    "load_personas",
    "open_run",
    "resume",
    "screen",
    "simulate",
]

T = TypeVar("T")


def _outside_loop(fn: Callable[[], T]) -> T:
    """Call ``fn`` here, or, when this thread already runs an event loop (a Jupyter cell), in a worker
    thread with a loop of its own, waiting for it: the engine runs its own event loop."""
    import asyncio
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="socialsim") as pool:
        return pool.submit(fn).result()


# -- backends ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """Who answers: an embedded GGUF model in this process, an OpenAI-compatible server, or a transformers
    folder. Build one with `Backend.local`, `Backend.openai` or `Backend.hf`; pass it to `simulate`,
    `resume`, `evaluate` (as the judge) or `screen` (for the LLM risk classifier)."""

    kind: Literal["local", "openai", "hf"] = "local"
    model: str | None = None
    """The model's name: an embedded one ('qwen2.5-1.5b', 'smollm2-135m') or the server's model name."""
    base_urls: tuple[str, ...] = ()
    """The server's URL(s); more than one: replicas of the same model, calls go to the least busy."""
    model_path: str | None = None
    """Any GGUF file (local) or a transformers model folder (hf)."""
    api_key_env: str = "OPENAI_API_KEY"
    """The name of the environment variable holding the API key (never the key itself)."""
    concurrency: int = 8
    timeout: float = 60.0
    max_attempts: int = 5
    http_client: Literal["aiohttp", "openai"] = "aiohttp"
    structured: Literal["auto", "json_schema", "json_object", "off"] = "auto"
    rpm: int | None = None
    tpm: int | None = None
    cache: bool = True
    """Answer identical calls from the per-call cache (cheap reruns and resumes)."""
    cache_path: str | None = None

    @classmethod
    def local(cls, model: str | None = None, *, path: str | Path | None = None, cache: bool = True) -> Backend:
        """An embedded model run in-process by llama.cpp: 'qwen2.5-1.5b' (the default when ``model`` is None)
        or 'smollm2-135m' (fast, for wiring checks), or any GGUF file at ``path``."""
        return cls(kind="local", model=model, model_path=str(path) if path is not None else None, cache=cache)

    @classmethod
    def openai(
        cls, base_url: str | Sequence[str], model: str, *, api_key_env: str = "OPENAI_API_KEY", **options: Any
    ) -> Backend:
        """Any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp's server, OpenAI, DeepSeek) at
        ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``; a list: replicas) serving ``model``. ``options``:
        any other field (concurrency, timeout, max_attempts, http_client, structured, rpm, tpm, cache)."""
        urls = (base_url,) if isinstance(base_url, str) else tuple(base_url)
        if not urls:
            raise ParamError("base_url", "required: the server's URL, e.g. http://127.0.0.1:8000/v1")
        return cls(kind="openai", model=model, base_urls=urls, api_key_env=api_key_env, **options)

    @classmethod
    def hf(cls, path: str | Path) -> Backend:
        """A transformers model folder (e.g. ``socialsim train``'s ``merged/``), run in-process."""
        return cls(kind="hf", model_path=str(path))

    def configs(self, **execution: Any) -> tuple[BackendConfig, ExecutionConfig]:
        """The library's two config objects for this backend; ``execution`` adds `ExecutionConfig` fields
        (budgets, prices, dialogues in flight). A bad value is a `ParamError` naming the field."""
        from pydantic import ValidationError

        from socialsim.schema import BackendConfig, ExecutionConfig

        if self.kind == "local" and self.model_path is not None and not Path(self.model_path).is_file():
            raise ParamError("model_path", f"{self.model_path}: GGUF file not found")
        if self.kind == "local" and self.model:
            from socialsim.llm.models import get_model

            get_model(self.model)  # an unknown name is one clear line
        try:
            cfg = BackendConfig(
                kind=self.kind,
                base_url=self.base_urls[0] if self.base_urls else None,
                model=self.model,
                model_path=self.model_path,
                structured=self.structured,
            )
            ex = ExecutionConfig(
                api_key_env=self.api_key_env,
                timeout_s=self.timeout,
                http_client=self.http_client,
                concurrency=self.concurrency,
                max_attempts=self.max_attempts,
                rpm=self.rpm,
                tpm=self.tpm,
                cache=self.cache,
                cache_path=self.cache_path,
                replica_urls=list(self.base_urls[1:]),
                **execution,
            )
        except ValidationError as e:
            raise ParamError.from_validation(e, "backend") from None
        return cfg, ex

    def llm(self) -> Any:
        """An `LLM` on this backend (the cache in front when asked); close it with ``.close()``."""
        from socialsim.llm.factory import build_llm

        return build_llm(*self.configs())

    def __str__(self) -> str:
        where = self.base_urls[0] if self.base_urls else (self.model_path or "in-process")
        return f"{self.kind}:{self.model or self.model_path or 'default'} ({where})"


# -- personas ---------------------------------------------------------------------------------


class PersonaBank(list["Persona"]):
    """A list of `Persona` read from a JSONL file (or the built-in bank), with the file it came from."""

    def __init__(self, personas: Sequence[Persona], source: str) -> None:
        super().__init__(personas)
        self.source = source
        """'default' (the built-in bank) or the file's path: what `simulate` records in the run."""

    def to_pandas(self) -> pandas.DataFrame:
        """One row per persona: id, name, age, occupation, problem and emotion type, and each layer's text."""
        import pandas as pd

        rows = []
        for p in self:
            row = p.model_dump(mode="json")
            layers = row.pop("layers", None)
            if isinstance(layers, list):
                for i, layer in enumerate(layers):
                    row[f"layer_{i}"] = layer.get("text") if isinstance(layer, dict) else layer
            rows.append({k: v for k, v in row.items() if not isinstance(v, (dict, list))})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"PersonaBank({self.source!r}: {len(self)} personas)"


def load_personas(source: str | Path = "default") -> PersonaBank:
    """The persona bank in ``source`` (a JSONL file, one persona per line) or the built-in bank
    ('default'). A bad line is a `UserError` naming the file, the line and the field."""
    from socialsim.personas.bank import default_bank_path
    from socialsim.personas.bank import load_personas as load

    spec = str(source)
    path = default_bank_path() if spec == "default" else Path(spec)
    if spec != "default" and not path.is_file():
        raise ParamError("personas", f"{path}: no such file (a JSONL persona bank, or 'default')")
    return PersonaBank(load(path), spec if spec == "default" else str(path.resolve()))


# -- runs -------------------------------------------------------------------------------------


TURN_COLUMNS = (
    "dialogue_id", "persona_id", "status", "turn", "speaker", "text", "strategy", "realized_strategy",
    "emotion", "intensity", "disclosure_layer", "role_fallback", "safety_tier", "risk",
)  # fmt: skip


@dataclass
class Run:
    """A run folder: its config, its summary and its dialogues (read when first asked for). What `simulate`,
    `resume` and `open_run` return; prints as a short summary, shows as a table in a notebook."""

    root: Path
    summary: dict[str, Any] = field(default_factory=dict)
    unfinished: str | None = None
    """Why the run is not complete (a budget, deferred or pending dialogues), or None when it is."""
    _dialogues: list[Dialogue] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run in folder ``path`` (finished or not; another process may still be writing it)."""
        import json

        from socialsim.simulate.store import MANIFEST

        root = Path(path)
        if not (root / MANIFEST).is_file():
            raise ParamError("run", f"{root}: not a socialsim run (no {MANIFEST})")
        summary: dict[str, Any] = {}
        if (root / "summary.json").is_file():
            try:
                summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise UserError(f"{root / 'summary.json'}: unreadable ({e}); `socialsim simulate --resume {root}` "
                                "rewrites it") from None
        pending = int(summary.get("dialogues_pending") or 0)
        why = summary.get("stopped") or (f"{pending} dialogues pending" if pending else None)
        return cls(root, summary, why)

    @property
    def config(self) -> dict[str, Any]:
        """The run's `SimulationConfig` as stored in its manifest."""
        import json

        from socialsim.simulate.store import MANIFEST

        return dict(json.loads((self.root / MANIFEST).read_text(encoding="utf-8")).get("config", {}))

    @property
    def dialogues(self) -> list[Dialogue]:
        """Every finished dialogue in the run's store (read once, then kept)."""
        if self._dialogues is None:
            from socialsim.evaluate.readers import read_run

            self._dialogues = read_run(self.root).dialogues
        return self._dialogues

    @property
    def complete(self) -> bool:
        return self.unfinished is None

    def __len__(self) -> int:
        return len(self.dialogues)

    def turns(self) -> list[dict[str, Any]]:
        """One record per turn (the columns of `TURN_COLUMNS`)."""
        rows = []
        for d in self.dialogues:
            for i, t in enumerate(d.turns):
                rows.append({
                    "dialogue_id": d.id, "persona_id": d.persona_id, "status": d.status, "turn": i,
                    "speaker": t.speaker, "text": t.text,
                    "strategy": t.strategy.value if t.strategy else None,
                    "realized_strategy": t.realized_strategy.value if t.realized_strategy else None,
                    "emotion": t.thought.emotion if t.thought else None,
                    "intensity": t.thought.intensity if t.thought else None,
                    "disclosure_layer": t.disclosure_layer, "role_fallback": t.role_fallback,
                    "safety_tier": t.safety_tier, "risk": t.risk,
                })  # fmt: skip
        return rows

    def to_pandas(self, per: Literal["turn", "dialogue"] = "turn") -> pandas.DataFrame:
        """A pandas table: one row per turn (default) or per dialogue (id, persona, status, end, turns)."""
        import pandas as pd

        if per == "turn":
            return pd.DataFrame(self.turns(), columns=list(TURN_COLUMNS))
        if per == "dialogue":
            return pd.DataFrame([
                {"dialogue_id": d.id, "persona_id": d.persona_id, "status": d.status, "end_reason": d.end_reason,
                 "turns": len(d.turns), "model": d.model, "prompt_tokens": d.usage.prompt_tokens,
                 "completion_tokens": d.usage.completion_tokens}
                for d in self.dialogues
            ])  # fmt: skip
        raise ParamError("per", f"{per!r}: use 'turn' or 'dialogue'")

    def to_dataset(self, per: Literal["turn", "dialogue"] = "turn") -> datasets.Dataset:
        """The same table as a Hugging Face `datasets.Dataset` (needs the [train] extra)."""
        try:
            import datasets
        except ImportError:
            raise UserError("to_dataset needs the `datasets` package: pip install -e '.[train]'") from None
        return datasets.Dataset.from_pandas(self.to_pandas(per), preserve_index=False)

    def _state(self) -> str:
        s = self.summary
        total = s.get("dialogues_total", "?")
        done = f"{s.get('dialogues_ok', 0)} ok, {s.get('dialogues_failed', 0)} failed of {total}"
        return f"{done}; {'complete' if self.complete else 'unfinished: ' + str(self.unfinished)}"

    def __repr__(self) -> str:
        return f"Run('{self.root}': {self._state()})"

    def _repr_html_(self) -> str:
        keys = ("dialogues_ok", "dialogues_failed", "turns", "calls", "prompt_tokens", "completion_tokens",
                "role_fallback_rate", "strategy_agreement", "thoughts_first_try_rate")
        rows = "".join(f"<tr><td>{k}</td><td>{html.escape(str(self.summary[k]))}</td></tr>"
                       for k in keys if self.summary.get(k) is not None)
        return (f"<b>Run</b> <code>{html.escape(str(self.root))}</code>: {html.escape(self._state())}"
                f"<table>{rows}</table>")


def open_run(path: str | Path) -> Run:
    """The run in folder ``path``: `Run.open`."""
    return Run.open(path)


def _result_run(result: Any) -> Run:
    run = Run.open(result.root)
    run.unfinished = result.unfinished
    return run


def _progress(progress: bool) -> Any:
    if not progress:
        return None
    from rich.console import Console

    from socialsim.simulate.progress import RunProgress

    return RunProgress(console=Console(stderr=True))


def simulate(
    n: int,
    *,
    out: str | Path,
    backend: Backend | None = None,
    personas: str | Path | PersonaBank = "default",
    seed: int | None = None,
    max_turns: int | None = None,
    sampling: str | None = None,
    disclosure: str | None = None,
    realized_strategy: str | None = None,
    safety: bool | None = None,
    fidelity: bool | None = None,
    strategy_check: int | None = None,
    seeker_format: str | None = None,
    roles: dict[str, Backend] | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    dialogues_in_flight: int | None = None,
    shard: str | None = None,
    executor: Literal["local", "ray"] = "local",
    workers: int = 2,
    progress: bool = True,
) -> Run:
    """Simulate ``n`` dialogues into the new run folder ``out`` and return the `Run`.

    ``backend`` plays both roles (default: the embedded default model); ``roles`` may give the
    'seeker', 'supporter' or 'classifier' a backend of its own. The corpus options (``seed``,
    ``max_turns``, ``sampling``, ``disclosure``, ``realized_strategy``, ``safety``, ``fidelity``,
    ``strategy_check``, ``seeker_format``) take
    the defaults of ``socialsim simulate`` when None. A run stopped by a budget, an interruption or a
    failing server is saved: continue it with `resume` (or ``socialsim simulate --resume OUT``).
    Inside a running event loop (a notebook cell) the run goes to a worker thread; see `asimulate`."""
    from socialsim.simulate.run import make_runner, start_run

    backend = backend or Backend.local()
    bank = personas.source if isinstance(personas, PersonaBank) else str(personas)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParamError("n", f"must be a positive whole number, got {n!r}")
    cfg, ex = backend.configs(max_cost=max_cost, max_tokens=max_tokens, dialogues_in_flight=dialogues_in_flight)
    role_cfgs = None
    if roles:
        unknown = sorted(set(roles) - {"seeker", "supporter", "classifier"})
        if unknown:
            raise ParamError("roles", f"{unknown[0]!r}: the roles are 'seeker', 'supporter' and 'classifier'")
        role_cfgs = {role: b.configs()[0] for role, b in roles.items()}
    options = {"n": n, "seed": seed, "max_turns": max_turns, "sampling": sampling, "disclosure": disclosure,
               "realized_strategy": realized_strategy, "safety": safety, "fidelity": fidelity,
               "strategy_check": strategy_check, "seeker_format": seeker_format}

    def go() -> Run:
        result = start_run(cfg, ex, out=out, personas=bank, options=options, roles=role_cfgs, shard=shard,
                           progress=_progress(progress), runner=make_runner(executor, workers=workers))
        return _result_run(result)

    return _outside_loop(go)


async def asimulate(n: int, **kwargs: Any) -> Run:
    """`simulate` for code that already runs an event loop (``await socialsim.asimulate(...)`` in a
    notebook): the run goes to a worker thread with its own loop, so the caller's loop stays free."""
    import asyncio

    return await asyncio.to_thread(simulate, n, **kwargs)


def resume(
    run: str | Path | Run,
    *,
    backend: Backend | None = None,
    force: bool = False,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    progress: bool = True,
) -> Run:
    """Continue a stopped run where it stopped (a run started here or by ``socialsim simulate``). The run
    keeps its own model and options; ``backend`` only changes how calls are made (server URL, concurrency,
    cache) — another model is refused unless ``force``."""
    from socialsim.simulate.run import start_run

    root = run.root if isinstance(run, Run) else Path(run)
    Run.open(root)  # a folder that is not a run: one line, before any lock or load
    given = backend is not None
    cfg, ex = (backend or Backend()).configs(max_cost=max_cost, max_tokens=max_tokens)

    def go() -> Run:
        result = start_run(cfg if given else None, ex, resume=root, force=force,  # type: ignore[arg-type]
                           progress=_progress(progress))
        return _result_run(result)

    return _outside_loop(go)


# -- evaluate and export ----------------------------------------------------------------------


def _shared_reference(name: str) -> Path:
    from socialsim.io import shared_data_dir

    files = {"esconv-dev": "esconv/devWithStrategy_short.tsv", "esconv-valid": "esconv/splits/valid.jsonl",
             "esconv-failed": "esconv/FailedESConv.json"}
    if name not in files:
        return Path(name)
    path = shared_data_dir() / files[name]
    if not path.is_file():
        raise ParamError("reference", f"{name!r}: {path} is missing (ESConv is not shipped; give a path to your copy)")
    return path


def _corpus_path(corpus: str | Path | Run) -> Path:
    path = corpus.root if isinstance(corpus, Run) else Path(corpus)
    if not path.exists():
        raise ParamError("corpus", f"{path}: no such file or folder")
    return path


@dataclass
class EvaluationResult:
    """What `evaluate` measured: one row of figures per corpus, the recognizer's strategy figures and the
    paths of the HTML and JSON report."""

    evaluation: Evaluation

    @property
    def report(self) -> dict[str, Path]:
        """``{"html": ..., "json": ...}``: the self-contained report page and its data."""
        return self.evaluation.report

    @property
    def recognized(self) -> dict[str, Any] | None:
        """The strategy recognizer's figures per corpus (distribution, JSD to ESConv, agreement), or None."""
        return self.evaluation.recognized

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Each corpus's metrics as JSON-ready dicts, by corpus name."""
        return {m.name: m.as_dict() for m in self.evaluation.metrics}

    def to_pandas(self) -> pandas.DataFrame:
        """One row per corpus, one column per scalar figure (nested figures flattened as ``a.b``)."""
        import pandas as pd

        return pd.json_normalize([m.as_dict() for m in self.evaluation.metrics]).set_index("name")

    def __repr__(self) -> str:
        names = ", ".join(m.name for m in self.evaluation.metrics)
        return f"EvaluationResult({names}; report {self.report.get('html')})"

    def _repr_html_(self) -> str:
        cols = ["dialogues", "failure_rate", "strategy_jsd", "embedding_diversity", "self_bleu"]
        df = self.to_pandas()
        page = html.escape(str(self.report.get("html")))
        return df[[c for c in cols if c in df.columns]].to_html() + f"<p>report: {page}</p>"


def evaluate(
    corpus: str | Path | Run,
    reference: str | Path | Sequence[str | Path] | None = None,
    *,
    report_dir: str | Path | None = None,
    judge: Backend | None = None,
    diversity: str = "both",
    sample: int = 100,
    recognize: bool = True,
    seed: int = 0,
    judge_n: int = 10,
    rubric: str = "esconv",
    progress: bool = True,
) -> EvaluationResult:
    """Measure ``corpus`` (a `Run`, a run folder, a dialogues JSONL, an ESConv JSON or TSV, an SSConv JSON)
    beside ``reference`` corpora (the first is THE reference of the strategy divergence; the names
    'esconv-dev', 'esconv-valid' and 'esconv-failed' mean those ESConv files in ``../shared/data``), label
    every reply with the strategy recognizer, judge with ``judge`` when given, and write the report
    (default: ``RUN/report`` or ``./<name>-report``). ``socialsim evaluate`` with the same options."""
    from socialsim.evaluate.metrics import DIVERSITY_CHOICES
    from socialsim.evaluate.rubrics import RUBRICS
    from socialsim.evaluate.run import evaluate_corpora

    if diversity not in DIVERSITY_CHOICES:
        raise ParamError("diversity", f"{diversity!r}: use one of {', '.join(DIVERSITY_CHOICES)}")
    if rubric not in RUBRICS:
        raise ParamError("rubric", f"{rubric!r}: use one of {', '.join(RUBRICS)}")
    path = _corpus_path(corpus)
    given = [] if reference is None else [reference] if isinstance(reference, (str, Path)) else list(reference)
    refs = [_shared_reference(str(r)) for r in given]
    for r in refs:
        if not r.exists():
            raise ParamError("reference", f"{r}: no such file or folder")
    llm = judge.llm() if judge is not None else None
    try:
        done = _outside_loop(lambda: evaluate_corpora(
            path, refs, llm=llm, diversity=diversity, sample=sample, seed=seed, rubric=rubric, judge_n=judge_n,
            report_dir=Path(report_dir) if report_dir is not None else None, progress=progress, recognize=recognize,
            settings={"corpus": str(path), "references": [str(r) for r in refs], "diversity": diversity,
                      "diversity_sample": sample, "seed": seed, "judge": judge is not None, "recognize": recognize},
        ))
    finally:
        if llm is not None:
            llm.close()
    return EvaluationResult(done)


def export(
    corpus: str | Path | Run,
    out: str | Path,
    formats: Sequence[str] = ("sft",),
    *,
    with_strategy: bool = True,
    with_thought: bool = False,
    valid_fraction: float = 0.1,
    seed: int = 0,
    include_flagged: bool = False,
) -> dict[str, Any] | None:
    """Write ``corpus`` into the new folder ``out`` in each of ``formats`` ('sft', 'parquet', 'hf', 'jsonl',
    'esconv', 'ssconv'; see ``socialsim export --help``). Returns the SFT split's counts when SFT data was
    written (``left_out_examples``: crisis-protocol replies, replies the safety screen replaced and replies
    after a seeker slip, which ``include_flagged`` keeps), else None."""
    from socialsim.corpus.export import export_corpus

    return export_corpus(_corpus_path(corpus), Path(out), list(formats), with_strategy=with_strategy,
                         with_thought=with_thought, valid_fraction=valid_fraction, seed=seed,
                         include_flagged=include_flagged)


# -- safety -----------------------------------------------------------------------------------


_layer: SafetyLayer | None = None


def safety_layer() -> SafetyLayer:
    """The safety layer `screen` uses (built once): rules plus the learned stage where installed, the same
    layer ``serve`` and ``chat`` build by default (no LLM classifier)."""
    global _layer
    if _layer is None:
        from socialsim.safety.build import LayerOptions, build_layer, load_learned

        options = LayerOptions(classify="off")
        learned = load_learned(options)
        if learned is not None:
            learned.warm()
        _layer = build_layer(options, learned=learned, source="api")
    return _layer


def screen(message: str, history: Sequence[tuple[str, str]] = ()) -> SafetyDecision:
    """The safety layer's decision on a seeker ``message``, after ``history`` (earlier turns as
    ``(speaker, text)``, speaker 'seeker' or 'supporter'): its ``tier`` ('none', 'check_in', 'protocol'),
    ``category``, the ``stage`` that decided and the learned ``score``. The reply a tier calls for:
    ``safety_layer().protocol_reply(decision)`` or ``.check_in_question(decision)``."""
    from socialsim.schema import Turn

    if not isinstance(message, str) or not message.strip():
        raise ParamError("message", "an empty message has nothing to screen")
    turns = []
    for i, item in enumerate(history):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and item[0] in ("seeker", "supporter")):
            raise ParamError("history", f"item {i}: give (speaker, text) with speaker 'seeker' or 'supporter'")
        turns.append(Turn(speaker=item[0], text=str(item[1])))
    turns.append(Turn(speaker="seeker", text=message))
    return safety_layer().decide(turns)

