"""The option groups every command shares, each declared once: backend (who answers, and how it is
called), cache, safety (the crisis safety layer), output, config (``--config``/``--dump-config``) and,
for ``serve`` and ``chat``, the supporter's sampling.

A command takes a group as one parameter and `use` puts the group's options in its place::

    @use(backend=BackendGroup("Who judges."), cache=CacheGroup(default=True))
    def evaluate_cmd(path: Path, backend: BackendOptions, cache: CacheOptions) -> None:
        llm = backend.llm(cache)

The command line still shows every option (``--backend``, ``--model``, ``--cache``, ...) under the same
parameter names, so ``--config`` files and ``--dump-config`` keep their keys; the function gets them
packed into one object (`BackendOptions`, `CacheOptions`, `SafetyOptions`, ...). What differs between
commands (the ``--backend`` wording, a default, a subset of the options, a role prefix) is an
argument of the group, never a second declaration.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from socialsim.cli.options import BACKENDS_HELP, backend_configs, make_llm

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Opt:
    """One option of a group: parameter name, type, default, help and any other `typer.Option` keyword."""

    name: str
    annotation: Any
    default: Any
    help: str
    decls: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def parameter(self) -> inspect.Parameter:
        """The keyword-only parameter typer reads this option from."""
        info = typer.Option(*self.decls, help=self.help, **self.extra)
        return inspect.Parameter(
            self.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[self.annotation, info], default=self.default
        )


class Group:
    """A set of options a command takes as one parameter (see `use`)."""

    def options(self) -> list[Opt]:
        """The group's options, in the order ``--help`` lists them."""
        raise NotImplementedError

    def pack(self, values: dict[str, Any]) -> Any:
        """The object the command receives, from the parsed options (parameter name → value)."""
        raise NotImplementedError


def _tailor(opts: Sequence[Opt], only: Sequence[str] | None, defaults: Mapping[str, Any], helps: Mapping[str, str],
            extra: Mapping[str, Mapping[str, Any]]) -> list[Opt]:  # fmt: skip
    """``opts`` restricted to ``only`` (in that order), with per-command defaults, help and keywords."""
    by_name = {o.name: o for o in opts}
    unknown = sorted((set(only or ()) | set(defaults) | set(helps) | set(extra)) - set(by_name))
    if unknown:
        raise TypeError(f"not options of this group: {', '.join(unknown)}")
    out = []
    for name in only if only is not None else list(by_name):
        o = by_name[name]
        out.append(
            replace(
                o,
                default=defaults.get(name, o.default),
                help=helps.get(name, o.help),
                extra={**o.extra, **extra.get(name, {})},
            )
        )
    return out


def use(**groups: Group) -> Callable[[F], F]:
    """Decorate a command: each parameter named like a keyword here is replaced on the command line by
    that group's options, and the command is called with the group's packed object in its place."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        missing = sorted(set(groups) - set(sig.parameters))
        if missing:
            raise TypeError(f"{fn.__name__}: no parameter for the option group(s) {', '.join(missing)}")
        params: list[inspect.Parameter] = []
        owned: dict[str, list[str]] = {}
        for p in sig.parameters.values():
            if p.name in groups:
                opts = [o.parameter() for o in groups[p.name].options()]
                owned[p.name] = [o.name for o in opts]
                params.extend(opts)
            else:
                params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        names = [p.name for p in params]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise TypeError(f"{fn.__name__}: option(s) declared twice: {', '.join(twice)}")

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            packed = {key: groups[key].pack({n: kwargs.pop(n) for n in own}) for key, own in owned.items()}
            return fn(**kwargs, **packed)

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params} | {"return": sig.return_annotation}
        command.option_groups = dict(groups)  # type: ignore[attr-defined]
        return command  # type: ignore[return-value]

    return decorate


# -- backend ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendOptions:
    """Who answers and how it is called: the backend group's values (unset options keep these defaults)."""

    backend: str | None = "local"
    base_url: str | list[str] | None = None
    model: str | None = None
    model_path: Path | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    structured: str = "auto"
    http_client: str = "aiohttp"
    concurrency: int = 8
    max_attempts: int = 5
    require_model: str | None = None
    """When set, ``--model`` is required with ``--backend openai``, and this says what for."""

    @property
    def urls(self) -> list[str]:
        """Every ``--base-url`` given (several where the command takes replicas)."""
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @property
    def name(self) -> str:
        """``backend model`` (or the backend alone), for reports."""
        return f"{self.backend} {self.model}" if self.model else str(self.backend)

    def configs(self, cache: CacheOptions | None = None, **overrides: Any) -> tuple[Any, Any]:
        """(BackendConfig, ExecutionConfig), checked with one-line errors naming the option (see
        `socialsim.cli.options.backend_configs`); ``overrides`` replace option values (e.g. ``concurrency``)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("backend", "base_url")}
        values.update(base_url=(self.urls or [None])[0], **overrides)
        if cache is not None:
            values.update(cache=cache.cache, cache_path=cache.cache_path)
        return backend_configs(str(self.backend), **values)

    def llm(self, cache: CacheOptions | None = None, **overrides: Any) -> Any:
        """The `LLM` these options describe (see `configs`)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("backend", "base_url")}
        values.update(base_url=(self.urls or [None])[0], **overrides)
        if cache is not None:
            values.update(cache=cache.cache, cache_path=cache.cache_path)
        return make_llm(str(self.backend), **values)

    def config_fields(self, cache: CacheOptions | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The `BackendConfig` and `ExecutionConfig` fields these options give, unchecked (for a caller that
        validates them itself, such as `socialsim.simulate.launch.launch_run`); the second ``--base-url`` on
        are replicas."""
        urls = self.urls
        backend = {
            "kind": self.backend,
            "base_url": urls[0] if urls else None,
            "model": self.model,
            "model_path": str(self.model_path) if self.model_path else None,
            "structured": self.structured,
        }
        execution: dict[str, Any] = {
            "http_client": self.http_client,
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "timeout_s": self.timeout,
            "max_attempts": self.max_attempts,
            "replica_urls": urls[1:],
        }
        if cache is not None:
            execution.update(cache=cache.cache, cache_path=str(cache.cache_path) if cache.cache_path else None)
        return backend, execution

    def role(self) -> dict[str, Any]:
        """A role's backend as `socialsim.simulate.roles.role_backends` takes it (None: the main one's)."""
        return {"kind": self.backend, "base_url": (self.urls or [None])[0], "model": self.model}


MODEL_HELP = (
    "--backend openai: the model name the server serves. --backend local: an embedded model, 'qwen2.5-1.5b' "
    "(default; Qwen2.5-Coder-1.5B-Instruct Q4_K_M, assembled once from its 22 wheels into the cache) or "
    "'smollm2-135m' (SmolLM2-135M-Instruct: fast, for wiring checks; poor text)."
)
#: What each option of a role's own backend is, for its help ("Model for the seeker; default: --model.").
_ROLE_WHAT = {"backend": "Backend kind", "base_url": "Server URL", "model": "Model"}


def _backend_opts(role: str, replicas: bool) -> list[Opt]:
    from socialsim.cli.options import model_defaults
    from socialsim.schema import BackendConfig, ExecutionConfig

    ex, be = model_defaults(ExecutionConfig), model_defaults(BackendConfig)
    base_url = (
        Opt("base_url", list[str] | None, None,
            "Server URL for --backend openai, e.g. http://127.0.0.1:8000/v1. Repeat it for replicas of the same "
            "model (one vLLM per GPU): calls go to the least busy one, a failing one rests while its calls are "
            "retried on the others. The first URL is the run's endpoint (its cache identity).",
            extra={"metavar": "URL"})
        if replicas
        else Opt("base_url", str | None, None, "Server URL for --backend openai, e.g. http://127.0.0.1:8000/v1.")
    )  # fmt: skip
    return [
        Opt("backend", str, "local", f"{role} {BACKENDS_HELP}".strip(), ("--backend", "-b")),
        base_url,
        Opt("model", str | None, None, MODEL_HELP),
        Opt("model_path", Path | None, None,
            "--backend local: any GGUF file instead of a named model. --backend hf: the transformers model folder."),
        Opt("api_key_env", str, ex["api_key_env"],
            "Name of the environment variable holding the API key of the --backend openai server (never pass the "
            "key itself)."),
        Opt("timeout", float, ex["timeout_s"], "Seconds before one HTTP call times out (it is then retried)."),
        Opt("structured", str, be["structured"],
            "Structured-output mode for the supporter's thought: auto (try json_schema, then llama.cpp "
            "json_object+schema, then prompt-only), json_schema, json_object, off."),
        Opt("http_client", str, ex["http_client"],
            "HTTP client for --backend openai: 'aiohttp' (lean; ~0.7 ms CPU per call) or 'openai' (the official "
            "SDK; ~2.6 ms per call, which caps throughput near 400 calls/s per core)."),
        Opt("concurrency", int, ex["concurrency"], "LLM calls in flight at once (in-process models always run one).",
            extra={"min": 1}),
        Opt("max_attempts", int, ex["max_attempts"], "Attempts per call on 429/5xx/timeouts before giving up."),
    ]  # fmt: skip


class BackendGroup(Group):
    """The backend options. ``role`` opens the ``--backend`` help (who answers); ``only`` picks the options
    a command takes (default: all); ``defaults``, ``helps`` and ``extra`` change one option for one command;
    ``replicas`` makes ``--base-url`` repeatable; ``require_model`` makes ``--model`` required with
    ``--backend openai`` (saying what for).

    With ``prefix`` (e.g. ``seeker``) the group is a role's own backend: ``--seeker-backend``,
    ``--seeker-base-url``, ``--seeker-model``, each unset by default (the main backend's), ``role``
    naming who (``the seeker``)."""

    def __init__(
        self,
        role: str = "",
        *,
        only: Sequence[str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        helps: Mapping[str, str] | None = None,
        extra: Mapping[str, Mapping[str, Any]] | None = None,
        replicas: bool = False,
        require_model: str | None = None,
        prefix: str = "",
        panel: str | None = None,
    ) -> None:
        self.role, self.prefix, self.require_model = role, prefix, require_model
        opts = _backend_opts("" if prefix else role, replicas)
        if prefix:
            only = only or tuple(_ROLE_WHAT)
            opts = [
                replace(o, name=f"{prefix}_{o.name}", annotation=str | None, default=None, decls=(),
                        help=f"{_ROLE_WHAT[o.name]} for {role}; default: --{o.name.replace('_', '-')}.")
                for o in opts if o.name in _ROLE_WHAT
            ]  # fmt: skip
            only = [f"{prefix}_{n}" for n in only]
        self._opts = _tailor(opts, only, defaults or {}, helps or {}, extra or {})
        if panel:
            self._opts = [replace(o, extra={**o.extra, "rich_help_panel": panel}) for o in self._opts]

    def options(self) -> list[Opt]:
        return self._opts

    def pack(self, values: dict[str, Any]) -> BackendOptions:
        if self.prefix:
            values = {k.removeprefix(self.prefix + "_"): v for k, v in values.items()}
            values.setdefault("backend", None)
        return BackendOptions(**values, require_model=self.require_model)


# -- cache --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheOptions:
    """The per-call cache: on or off, and its file (None: the default one)."""

    cache: bool = False
    cache_path: Path | None = None


class CacheGroup(Group):
    """``--cache/--no-cache`` (on by ``default``) and, unless ``path`` is false (the default cache file
    only), ``--cache-path``."""

    def __init__(self, *, default: bool = False, path: bool = True) -> None:
        self.default, self.path = default, path

    def options(self) -> list[Opt]:
        opts = [
            Opt("cache", bool, self.default,
                "Answer identical calls from the per-call cache (makes resumes and reruns cheap)."),
            Opt("cache_path", Path | None, None,
                "Cache file (default ~/.cache/socialsim/calls.sqlite or $SOCIALSIM_CACHE_DIR/calls.sqlite)."),
        ]  # fmt: skip
        return opts if self.path else opts[:1]

    def pack(self, values: dict[str, Any]) -> CacheOptions:
        return CacheOptions(**values)


# -- output -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputOptions:
    """How much a command prints while it works."""

    quiet: bool = False


class OutputGroup(Group):
    """``--quiet/-q``; ``help`` says what it leaves out where that is more than the progress display.
    (Where the output goes, ``--out``, means a different thing in every command: a run folder, a
    persona file, a study; it stays with each command.)"""

    def __init__(self, *, help: str = "No progress display.") -> None:  # noqa: A002 - typer's word
        self.help = help

    def options(self) -> list[Opt]:
        return [Opt("quiet", bool, False, self.help, ("--quiet", "-q"))]

    def pack(self, values: dict[str, Any]) -> OutputOptions:
        return OutputOptions(**values)


# -- config -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigOptions:
    """``--config`` (already applied as the command's defaults when the command runs) and ``--dump-config``."""

    config: Path | None = None
    dump_config: bool = False

    def dumped(self, ctx: typer.Context) -> bool:
        """With ``--dump-config``: print the effective configuration (YAML) and say so, so the command ends."""
        if self.dump_config:
            from socialsim.config import dump_config

            print(dump_config(ctx), end="")
        return self.dump_config


def _install_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    from socialsim.config import install_config

    install_config(ctx, value)
    return value


class ConfigGroup(Group):
    """``--config FILE`` (a YAML file of option values, read before every other option) and ``--dump-config``."""

    def options(self) -> list[Opt]:
        return [
            Opt("config", Path | None, None,
                "A YAML file of options (keys are option names, e.g. 'n: 100', 'max-turns: 6'). The command line "
                "overrides the file, the file overrides the environment (OPENAI_BASE_URL) and the defaults; an "
                "unknown key is an error. See --dump-config.",
                ("--config",), {"is_eager": True, "callback": _install_config}),
            Opt("dump_config", bool, False,
                "Print the effective configuration as YAML (a file --config takes back) and exit.", ("--dump-config",)),
        ]  # fmt: skip

    def pack(self, values: dict[str, Any]) -> ConfigOptions:
        return ConfigOptions(**values)


# -- safety -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafetyOptions:
    """The crisis safety layer's options (`socialsim.safety.build.LayerOptions`) and, where a command
    serves replies, its crisis resources and event log."""

    classify: str | None = None
    learned: bool | None = None
    check_in_threshold: float | None = None
    protocol_threshold: float | None = None
    locale: str | None = None
    resources: Path | None = None
    safety_log: Path | None = None
    log_messages: bool = False

    def values(self) -> dict[str, Any]:
        """Every field by name (what `socialsim.serve.factory.SupporterOptions` takes)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SafetyGroup(Group):
    """The safety layer's options, the same in ``serve``, ``chat`` and ``safety-eval``; ``serving`` adds
    the crisis resources and the event log (commands that answer people)."""

    def __init__(self, *, serving: bool = True) -> None:
        self.serving = serving

    def options(self) -> list[Opt]:
        hidden_default = {"show_default": False}
        layer = [
            Opt("classify", str | None, None,
                "When the LLM risk classifier runs, on --backend: 'ambiguous' (messages the rules find ambiguous), "
                "'all' (every message the earlier stages do not send to the protocol) or 'off'. Default: off, in "
                "serve, chat and safety-eval alike: it costs an LLM call per message it reads and safety-eval has no "
                "LLM unless given one, so the default layer is the one safety-eval measures.",
                extra=hidden_default),
            Opt("learned", bool | None, None,
                "The learned risk stage after the rules (a logistic regression on MiniLM sentence embeddings of the "
                "message, or of each window of a long one, with the earlier seeker turns): a score at or above the "
                "check-in threshold makes the reply ask about safety, one at or above the protocol threshold (or any "
                "failure of the stage) gets the crisis protocol. Default: on where it is installed (the eval extra), "
                "else the rules alone with a one-line note; --learned makes a missing install an error. The same in "
                "serve, chat and safety-eval.",
                ("--learned/--no-learned",), hidden_default),
            Opt("check_in_threshold", float | None, None,
                "Learned score (0-1) from which the reply checks in about safety (default: the model file's, chosen "
                "on validation data).",
                extra=hidden_default),
            Opt("protocol_threshold", float | None, None,
                "Learned score (0-1) from which the reply is the crisis protocol (default: the model file's).",
                extra=hidden_default),
        ]  # fmt: skip
        if not self.serving:
            return layer
        return [
            *layer,
            Opt("locale", str | None, None,
                "Locale of the crisis resources (en-US, en-GB, de-DE, ...; default: generic)."),
            Opt("resources", Path | None, None,
                "Your own crisis resources JSON (same shape as socialsim/safety/data/resources.json)."),
            Opt("safety_log", Path | None, None,
                "Safety event log, JSONL (default: safety-events.jsonl in $SOCIALSIM_CACHE_DIR or "
                "~/.cache/socialsim)."),
            Opt("log_messages", bool, False,
                "Also write flagged messages' text to the safety log (default: only a hash)."),
        ]  # fmt: skip

    def pack(self, values: dict[str, Any]) -> SafetyOptions:
        return SafetyOptions(**values)


# -- the served supporter (serve, chat) ---------------------------------------------------------------


@dataclass(frozen=True)
class ReplyOptions:
    """How the served supporter replies (`socialsim.serve.factory.SupporterOptions`' reply fields)."""

    mode: str = "pipeline"
    temperature: float = 0.7
    reply_max_tokens: int = 120
    seed: int = 0

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ReplyGroup(Group):
    """``--seed``, ``--temperature``, ``--reply-max-tokens`` and ``--mode`` of ``serve`` and ``chat``."""

    def options(self) -> list[Opt]:
        return [
            Opt("seed", int, 0, "Seed; replies to the same conversation are reproducible."),
            Opt("temperature", float, 0.7, "Supporter sampling temperature (0-2)."),
            Opt("reply_max_tokens", int, 120, "Cap on the reply's tokens."),
            Opt("mode", str, "pipeline",
                "'pipeline': the model first writes a thought (emotion, cause, need, ESConv strategy), then the "
                "reply. 'plain': the model replies directly in the SFT chat format; use it for a model trained with "
                "`socialsim train` (e.g. --backend hf --model-path runs/lora/merged), whose [Strategy] tag is read, "
                "not shown."),
        ]  # fmt: skip

    def pack(self, values: dict[str, Any]) -> ReplyOptions:
        return ReplyOptions(**values)


#: The groups the issue names as shared: no command may declare one of their options itself.
SHARED_GROUPS: tuple[type[Group], ...] = (BackendGroup, CacheGroup, SafetyGroup, OutputGroup, ConfigGroup)
