"""LLM backends behind one protocol, and the `LLM` wrapper (cache, retries, limits, budget)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from socialsim.llm.base import Backend, ChatRequest, Completion, TransientError
from socialsim.llm.client import LLM, BudgetExceeded, CallCache, Price

__all__ = [
    "LLM",
    "Backend",
    "BudgetExceeded",
    "CallCache",
    "ChatRequest",
    "Completion",
    "Price",
    "TransientError",
    "make_backend",
]


def make_backend(
    kind: str,
    *,
    base_url: str | None = None,
    model: str | None = None,
    model_path: str | Path | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout_s: float = 60.0,
    structured: str = "auto",
    http_client: str = "aiohttp",
) -> Backend:
    """Build a backend by name: ``local`` (a named embedded model, `model` = 'qwen2.5-1.5b' by default or
    'smollm2-135m', or any GGUF at `model_path`),
    ``openai`` (any compatible server) or ``hf`` (a transformers model folder at `model_path`)."""
    from socialsim.errors import UserError

    if kind == "local":
        from socialsim.llm.local import LocalBackend

        if model and model_path:
            raise UserError("--backend local: give either --model NAME or --model-path FILE, not both")
        return LocalBackend(model_path, model_name=model)
    if kind == "openai":
        if not base_url:
            raise UserError("--base-url is required with --backend openai, e.g. http://127.0.0.1:8000/v1")
        from socialsim.llm.openai_backend import OpenAIBackend

        kw: dict[str, Any] = {
            "api_key_env": api_key_env,
            "timeout_s": timeout_s,
            "structured": structured,
            "transport": http_client,
        }
        return OpenAIBackend(base_url, model or "", **kw)
    if kind == "hf":
        if not model_path:
            raise UserError("--model-path is required with --backend hf (a transformers model folder)")
        from socialsim.llm.hf import HFBackend

        return HFBackend(model_path)
    raise UserError(f"unknown backend {kind!r}: use 'local', 'openai' or 'hf'")
