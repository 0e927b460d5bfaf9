"""OpenAI-compatible HTTP backend (vLLM, SGLang, Ollama, llama.cpp server, OpenAI, DeepSeek).

The protocol (request body, usage, error mapping, structured-output fallback) is done here once; two
interchangeable transports carry it (`socialsim.llm.transports`):

- ``openai``: the official ``openai`` async client (the reference client);
- ``aiohttp``: a lean client on one kept-alive ``aiohttp`` session, for large runs where the
  client's own CPU per call becomes the ceiling (see ``bench/``).

Structured output: ``structured="auto"`` first asks for OpenAI's ``json_schema`` response format;
if the server rejects it (llama.cpp's server answers 500), it falls back to llama.cpp's
``json_object`` + ``schema`` form, then to prompt-only JSON. Each request steps down on its own
rejections, starting from the level known to work; that level is remembered one step at a time. Output
is always validated by the caller with pydantic, so a server that ignores the format is still safe.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from socialsim.errors import BackendError, UserError
from socialsim.llm.base import ChatRequest, Completion, TransientError
from socialsim.llm.transports import AiohttpTransport, HTTPStatusError, OpenAISDKTransport, Transport, short
from socialsim.schema import Usage

log = logging.getLogger(__name__)

StructuredMode = Literal["auto", "json_schema", "json_object", "off"]
TransportName = Literal["openai", "aiohttp"]
_FALLBACK: dict[str, str] = {"json_schema": "json_object", "json_object": "off"}


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _rejects_format(e: HTTPStatusError) -> bool:
    """Did the server refuse the response_format itself? 400/422 are about the request; a 5xx only
    when its message names the format (llama.cpp's server answers 500 with a validation error),
    so a transient 500 is retried, never taken as a reason to drop structured output."""
    if e.status in (400, 422):
        return True
    msg = e.message.lower()
    return e.status in (500, 501) and any(w in msg for w in ("response_format", "json_schema", "schema"))


def _usage(usage: Any) -> Usage:
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


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
        transport: TransportName = "openai",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"--base-url {base_url!r} must start with http:// or https://")
        if not model:
            raise UserError("--model is required with --backend openai (the name the server serves)")
        if transport not in ("openai", "aiohttp"):
            raise UserError(f"--http-client {transport!r}: use 'openai' or 'aiohttp'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.transport = transport
        self.structured_mode: str = "json_schema" if structured == "auto" else structured
        self._auto = structured == "auto"
        key = os.environ.get(api_key_env) or "sk-no-key-needed"
        carrier = AiohttpTransport if transport == "aiohttp" else OpenAISDKTransport
        self._transport: Transport = carrier(self.base_url, key, timeout_s)

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url}

    # -- request ------------------------------------------------------------------------------
    def body(self, request: ChatRequest, level: str | None = None) -> dict[str, Any]:
        """The request body, asking for structured output at ``level`` (default: the level known to work)."""
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            # llama.cpp-style servers read repeat_penalty; others ignore unknown body fields
            "repeat_penalty": request.repeat_penalty,
        }
        if request.prompt is not None:  # a text completion: the transport posts it to /completions
            body["prompt"] = request.prompt
        else:
            body["messages"] = request.message_dicts()
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        schema = request.json_schema
        if schema is not None:
            level = self.structured_mode if level is None else level
            if level == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": schema.get("title", "output"), "schema": schema},
                }
            elif level == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    async def complete(self, request: ChatRequest) -> Completion:
        level = self.structured_mode  # this request's own level: it steps down on its own rejections only
        while True:
            body = self.body(request, level)
            start = time.perf_counter()
            try:
                data = await self._transport.post(body)
            except HTTPStatusError as e:
                nxt = self._step_down(level, e) if "response_format" in body else None
                if nxt is None:
                    raise self._status_error(e) from None
                level = nxt
                continue
            return self._parse(data, time.perf_counter() - start)

    def _step_down(self, level: str, e: HTTPStatusError) -> str | None:
        """The next level for a request the server rejected at ``level`` (None: no fallback). The
        remembered level moves down only from the level this request was rejected at, so requests
        rejected together move it one level, never past a level no request has tried."""
        nxt = _FALLBACK.get(level) if self._auto and _rejects_format(e) else None
        if nxt is not None and self.structured_mode == level:
            log.warning("server rejected response_format %s (HTTP %s); falling back to %s", level, e.status, nxt)
            self.structured_mode = nxt
        return nxt

    def _status_error(self, e: HTTPStatusError) -> Exception:
        """A transient error (retried) for 408/409/429/5xx, a permanent `BackendError` otherwise."""
        if e.status in (408, 409, 429) or e.status >= 500:
            return TransientError(f"HTTP {e.status} from {self.base_url}", retry_after=_retry_after(e.headers))
        hint = " (check the API key variable, --api-key-env)" if e.status in (401, 403) else ""
        hint = hint or (" (check --model)" if e.status == 404 else "")
        return BackendError(f"{self.base_url} answered HTTP {e.status}: {short(e.message)}{hint}")

    # -- streaming ------------------------------------------------------------------------------
    async def stream(self, request: ChatRequest, info: Completion | None = None) -> AsyncIterator[str]:
        """Yield the reply's text from a streamed (SSE) chat completion, on either transport.

        Asks for ``stream_options.include_usage`` so servers that support it report usage in their last
        chunk; servers that don't simply ignore it. A server error event inside the stream raises
        `BackendError`; failures before the first piece raise like `complete` (retried by `LLM`)."""
        info = info if info is not None else Completion(text="")
        body = self.body(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        start = time.perf_counter()
        gen = self._transport.stream(body)
        pieces: list[str] = []
        try:
            async for obj in gen:
                piece = self._take_chunk(obj, info)
                if piece:
                    pieces.append(piece)
                    yield piece
            if not pieces and info.finish_reason is None:
                # no text and no finish reason: a server that ignored "stream" and sent a reply without
                # usable choices, or a stream cut short; before the first piece, so `LLM` retries it
                raise TransientError(f"malformed stream from {self.base_url}: it ended without a reply")
        except HTTPStatusError as e:
            raise self._status_error(e) from None
        finally:
            await gen.aclose()
            info.text = "".join(pieces)
            info.latency_s = time.perf_counter() - start

    def _take_chunk(self, obj: Any, info: Completion) -> str | None:
        """Read one chat.completion.chunk (a dict); returns its text piece, if any."""
        if not isinstance(obj, dict):
            raise TransientError(f"malformed stream chunk from {self.base_url}")
        if obj.get("error"):
            err = obj["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise BackendError(f"{self.base_url} sent an error in the stream: {short(str(message))}")
        usage = obj.get("usage")
        if isinstance(usage, dict):
            info.usage = _usage(usage)
        choices = obj.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            info.finish_reason = choice["finish_reason"]
        if isinstance(choice.get("text"), str):  # a text completion's chunk
            return choice["text"] or None
        # a chunk's "delta"; a server that ignored "stream" sends one whole reply with a "message"
        delta = choice.get("delta") or choice.get("message") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        return piece or None

    def _parse(self, data: Any, latency: float) -> Completion:
        try:
            choice = data["choices"][0]
            # a text completion's choice has "text", a chat completion's a "message"
            text = choice["text"] if "text" in choice else choice["message"].get("content") or ""
            usage = data.get("usage") or {}
            return Completion(
                text=text,
                usage=_usage(usage),
                latency_s=latency,
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise TransientError(f"malformed completion from {self.base_url}") from None

    async def aclose(self) -> None:
        await self._transport.aclose()
