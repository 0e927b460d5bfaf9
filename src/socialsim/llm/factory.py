"""The one way to build an `LLM` from a backend config, and the one place for the concurrency rule.

In-process models (``local``: llama.cpp, ``hf``: transformers) run one call at a time on their own
thread; a second call in flight only queues and makes the first slower, so their wrapper gets
concurrency 1 whatever was asked. Only a server (``openai``) takes ``ExecutionConfig.concurrency``.

Backend specs such as ``local:embedded``, ``hf:runs/lora/merged`` or ``openai:URL|MODEL`` (the
chatbot evaluation's contenders, seekers and judges) are parsed here too (`parse_spec`).
Errors name the parameter (``spec``, ``base_url`` ...); the command line maps them to its flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.llm import LLM, CallCache, Price, make_backend
from socialsim.schema import BackendConfig, ExecutionConfig

#: Backends that run the model inside this process: one call at a time.
IN_PROCESS_KINDS: frozenset[str] = frozenset({"local", "hf"})
#: Calls in flight for a server backend when the caller does not say (chatbot evaluation).
SERVER_CONCURRENCY = 8
#: Chatbot modes of a contender spec: ``plain`` (the model replies directly) or ``pipeline``.
CONTENDER_MODES: tuple[str, ...] = ("plain", "pipeline")


def call_concurrency(kind: str, requested: int) -> int:
    """LLM calls in flight for a backend of this kind: 1 for in-process models, else ``requested``."""
    return 1 if kind in IN_PROCESS_KINDS else requested


def default_cache_path() -> Path:
    """The per-call cache file: ``calls.sqlite`` in socialsim's cache folder (`socialsim.io.cache_dir`)."""
    from socialsim.io import cache_dir

    return cache_dir() / "calls.sqlite"


def build_backend(cfg: BackendConfig, ex: ExecutionConfig | None = None, *, base_url: str | None = None) -> Any:
    """The backend of ``cfg`` with the transport settings of ``ex`` (defaults when None); with
    replica URLs in ``ex``, a pool of one backend per URL (``cfg.base_url`` first)."""
    ex = ex or ExecutionConfig()
    if ex.replica_urls and cfg.kind != "openai" and base_url is None:
        raise UserError("--base-url given more than once needs --backend openai (replicas of one served model)")

    def one(url: str | None) -> Any:
        return make_backend(
            cfg.kind,
            base_url=url,
            model=cfg.model,
            model_path=cfg.model_path,
            timeout_s=ex.timeout_s,
            structured=cfg.structured,
            http_client=ex.http_client,
            api_key_env=ex.api_key_env,
        )

    if base_url is None and ex.replica_urls:
        from socialsim.llm.replicas import ReplicaPool

        return ReplicaPool([one(u) for u in [cfg.base_url, *ex.replica_urls]])
    return one(base_url or cfg.base_url)


def build_llm(cfg: BackendConfig, ex: ExecutionConfig | None = None, *, cache: CallCache | None = None) -> LLM:
    """An `LLM` over ``cfg``'s backend with the cache, limits, retries and budget of ``ex``; ``cache``
    shares an already open call cache (a role's `LLM` next to the run's main one)."""
    ex = ex or ExecutionConfig()
    backend = build_backend(cfg, ex)
    if cache is None and ex.cache:
        cache = CallCache(Path(ex.cache_path) if ex.cache_path else default_cache_path())
    return LLM(
        backend,
        cache=cache,
        concurrency=call_concurrency(cfg.kind, ex.concurrency),
        rpm=ex.rpm,
        tpm=ex.tpm,
        max_attempts=ex.max_attempts,
        price=Price(ex.price_in_per_m, ex.price_out_per_m),
        max_cost=ex.max_cost,
        max_tokens=ex.max_tokens,
    )


def parse_spec(spec: str) -> BackendConfig:
    """``BACKEND:TARGET`` → a `BackendConfig`. ``local:embedded`` (the default embedded model),
    ``local:NAME`` (an embedded model by name), ``local:FILE.gguf``, ``hf:FOLDER``, ``openai:URL|MODEL``."""
    kind, colon, target = spec.partition(":")
    if not colon or not target:
        raise UserError(f"spec {spec!r}: expected BACKEND:TARGET")
    if kind == "local":
        from socialsim.llm.models import MODELS

        if target == "embedded" or target in MODELS:
            return BackendConfig(kind="local", model=None if target == "embedded" else target)
        return BackendConfig(kind="local", model_path=target)
    if kind == "hf":
        return BackendConfig(kind="hf", model_path=target)
    if kind == "openai":
        url, bar, model = target.partition("|")
        if not bar:
            raise UserError(f"spec {spec!r}: openai targets are BASE_URL|MODEL")
        return BackendConfig(kind="openai", base_url=url, model=model)
    raise UserError(f"spec {spec!r}: unknown backend {kind!r} (local, hf or openai)")


def parse_contender(spec: str) -> tuple[str, BackendConfig, str]:
    """``NAME=BACKEND:TARGET[:MODE]`` → (name, backend config, mode); MODE defaults to ``plain``."""
    name, eq, rest = spec.partition("=")
    if not eq or not name or ":" not in rest:
        raise UserError(f"spec {spec!r}: expected NAME=BACKEND:TARGET[:MODE]")
    mode = "plain"
    head, _, last = rest.rpartition(":")
    if last in CONTENDER_MODES and ":" in head:
        rest, mode = head, last
    try:
        return name, parse_spec(rest), mode
    except UserError as e:
        raise UserError(str(e).replace(f"spec {rest!r}", f"spec {spec!r}", 1)) from None


def contender_llm(cfg: BackendConfig) -> LLM:
    """The `LLM` of a chatbot-evaluation contender, seeker or judge: no call cache, the concurrency rule."""
    return build_llm(cfg, ExecutionConfig(cache=False, concurrency=SERVER_CONCURRENCY))
