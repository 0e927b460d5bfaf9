"""The one function that turns the backend options into an `LLM`, and small helpers every command
uses (option names in messages, defaults from the config models, choice checks). The options
themselves are declared once, in option groups: see `socialsim.cli.groups`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from socialsim.errors import UserError

BACKEND_KINDS: tuple[str, ...] = ("local", "openai", "hf")

BACKENDS_HELP = (
    "'local': an embedded GGUF model in-process, named by --model (default qwen2.5-1.5b; smollm2-135m is "
    "the tiny, fast one), or any GGUF at --model-path. "
    "'openai': any OpenAI-compatible server at --base-url (vLLM, SGLang, Ollama, llama.cpp server, OpenAI, "
    "DeepSeek). 'hf': a transformers model folder at --model-path (e.g. `socialsim train`'s merged/)."
)


def backend_configs(
    backend: str,
    *,
    base_url: str | None = None,
    model: str | None = None,
    model_path: Path | str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float = 60.0,
    structured: str = "auto",
    http_client: str = "aiohttp",
    concurrency: int = 8,
    max_attempts: int = 5,
    cache: bool = False,
    cache_path: Path | None = None,
    kinds: tuple[str, ...] = BACKEND_KINDS,
    require_model: str | None = None,
) -> tuple[Any, Any]:
    """(BackendConfig, ExecutionConfig) from the shared options, checked with one-line `UserError`s
    naming the option. ``require_model``: when set, ``--model`` is required with ``--backend openai``
    and this says what for."""
    from socialsim.schema import BackendConfig, ExecutionConfig

    if backend not in kinds:
        raise UserError(f"option --backend: unknown backend {backend!r}: use {', '.join(repr(k) for k in kinds)}")
    if http_client not in ("aiohttp", "openai"):
        raise UserError(f"option --http-client: {http_client!r}: use 'aiohttp' or 'openai'")
    if structured not in ("auto", "json_schema", "json_object", "off"):
        raise UserError(f"option --structured: {structured!r}: use auto, json_schema, json_object or off")
    if timeout <= 0:
        raise UserError(f"option --timeout: must be positive, got {timeout:g}")
    if not 1 <= max_attempts <= 20:
        raise UserError(f"option --max-attempts: must be between 1 and 20, got {max_attempts}")
    if concurrency < 1:
        raise UserError(f"option --concurrency: must be at least 1, got {concurrency}")
    if backend == "openai" and require_model and not model:
        raise UserError(f"option --model: required with --backend openai ({require_model})")
    if backend == "local" and model_path is not None and not Path(model_path).is_file():
        raise UserError(f"option --model-path: {model_path}: GGUF file not found")
    if backend == "local" and model:
        from socialsim.llm.models import get_model

        get_model(model)  # an unknown name fails here, in one line
    cfg = BackendConfig(
        kind=backend,  # type: ignore[arg-type]
        base_url=base_url,
        model=model,
        model_path=str(model_path) if model_path is not None else None,
        structured=structured,  # type: ignore[arg-type]
    )
    ex = ExecutionConfig(
        api_key_env=api_key_env,
        timeout_s=timeout,
        http_client=http_client,  # type: ignore[arg-type]
        concurrency=concurrency,
        max_attempts=max_attempts,
        cache=cache,
        cache_path=str(cache_path) if cache_path is not None else None,
    )
    return cfg, ex


def make_llm(backend: str, **options: Any) -> Any:
    """An `LLM` from the shared options (see `backend_configs`), built by
    `socialsim.llm.factory.build_llm`: the per-call cache when asked; in-process backends run one
    call at a time."""
    from socialsim.llm.factory import build_llm

    return build_llm(*backend_configs(backend, **options))


_OPTION_NAMES = {
    "kind": "--backend",
    "max_cost": "--max-cost",
    "max_tokens": "--max-tokens",
    "n": "--n",
    "price_in_per_m": "--price-in",
    "price_out_per_m": "--price-out",
    "roles": "--seeker-/--supporter-/--classifier-(backend|base-url|model)",
    "timeout_s": "--timeout",
}


def option_name(param: str) -> str:
    """The command-line option of a library parameter or config field (``max_turns`` → ``--max-turns``)."""
    return _OPTION_NAMES.get(param, "--" + param.replace("_", "-"))


def options_message(err: Any) -> str:
    """One line naming the command-line option a validation error is about."""
    first = err.errors()[0]
    opt = option_name(str(first["loc"][-1]) if first["loc"] else "?")
    return f"option {opt}: {first['msg']} (got {first.get('input')!r}); see --help"


def model_defaults(model: Any) -> dict[str, Any]:
    """The default of every field of a pydantic config model that has a plain one: command options
    take their defaults from here, so the library and the command line share one set."""
    return {
        name: f.default for name, f in model.model_fields.items() if not f.is_required() and f.default_factory is None
    }


def quiet_model_loading() -> None:
    """Hide the embedding model's weight-loading bar (it would interleave with our own output)."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def check_choice(option: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    """A `UserError` naming ``option`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise UserError(f"option {option}: {value!r} is not one of {', '.join(choices)}")
