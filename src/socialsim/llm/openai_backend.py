"""OpenAI-compatible HTTP backend (vLLM, SGLang, Ollama, llama.cpp server, OpenAI, DeepSeek).

Structured output: ``structured="auto"`` first asks for OpenAI's ``json_schema`` response format;
if the server rejects it (llama.cpp's server answers 500), it falls back to llama.cpp's
``json_object`` + ``schema`` form, then to prompt-only JSON. Output is always validated by the
caller with pydantic, so a server that ignores the format is still safe.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Literal

import openai

from socialsim.errors import BackendError, UserError
from socialsim.llm.base import ChatRequest, Completion, TransientError
from socialsim.schema import Usage

log = logging.getLogger(__name__)

StructuredMode = Literal["auto", "json_schema", "json_object", "off"]
_FALLBACK: dict[str, str] = {"json_schema": "json_object", "json_object": "off"}


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class OpenAIBackend:
    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        structured: StructuredMode = "auto",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"--base-url {base_url!r} must start with http:// or https://")
        if not model:
            raise UserError("--model is required with --backend openai (the name the server serves)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.structured_mode: str = "json_schema" if structured == "auto" else structured
        self._auto = structured == "auto"
        key = os.environ.get(api_key_env) or "sk-no-key-needed"
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=key, timeout=timeout_s, max_retries=0)

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url}

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        if self.structured_mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": schema.get("title", "output"), "schema": schema},
            }
        if self.structured_mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    async def complete(self, request: ChatRequest) -> Completion:
        while True:
            kwargs: dict[str, Any] = {
                "model": self.model,
                "messages": request.message_dicts(),
                "temperature": request.temperature,
                "top_p": request.top_p,
                "max_tokens": request.max_tokens,
            }
            if request.seed is not None:
                kwargs["seed"] = request.seed
            if request.stop:
                kwargs["stop"] = list(request.stop)
            # llama.cpp-style servers read repeat_penalty; others ignore unknown body fields.
            kwargs["extra_body"] = {"repeat_penalty": request.repeat_penalty}
            fmt = self._response_format(request.json_schema) if request.json_schema else None
            if fmt is not None:
                kwargs["response_format"] = fmt
            start = time.perf_counter()
            try:
                resp = await self._client.chat.completions.create(**kwargs)
            except openai.APIStatusError as e:
                if fmt is not None and self._auto and e.status_code in (400, 422, 500, 501):
                    nxt = _FALLBACK.get(self.structured_mode)
                    if nxt:
                        log.warning(
                            "server rejected response_format %s (HTTP %s); falling back to %s",
                            self.structured_mode,
                            e.status_code,
                            nxt,
                        )
                        self.structured_mode = nxt
                        continue
                if e.status_code == 429 or e.status_code >= 500:
                    raise TransientError(
                        f"HTTP {e.status_code} from {self.base_url}",
                        retry_after=_retry_after(e.response.headers),
                    ) from None
                raise BackendError(f"{self.base_url} answered HTTP {e.status_code}: {_short(e.message)}") from None
            except (openai.APIResponseValidationError, ValueError) as e:
                raise TransientError(f"malformed response from {self.base_url} ({e.__class__.__name__})") from None
            except openai.APITimeoutError:
                raise TransientError(f"timed out after {self.timeout_s}s at {self.base_url}") from None
            except openai.APIConnectionError as e:
                raise TransientError(f"cannot connect to {self.base_url} ({_short(str(e.__cause__ or e))})") from None
            latency = time.perf_counter() - start
            if not resp.choices:
                raise TransientError(f"{self.base_url} returned no choices")
            choice = resp.choices[0]
            usage = resp.usage
            return Completion(
                text=choice.message.content or "",
                usage=Usage(
                    prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                    completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                ),
                latency_s=latency,
                finish_reason=choice.finish_reason,
            )

    async def aclose(self) -> None:
        await self._client.close()


def _short(text: str, n: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= n else line[: n - 1] + "…"
