"""OpenAI-compatible HTTP backend (vLLM, SGLang, Ollama, llama.cpp server, OpenAI, DeepSeek).

Two interchangeable transports (request processors) speak the same protocol:

- ``openai``: the official ``openai`` async client (the reference client);
- ``aiohttp``: a lean client on one kept-alive ``aiohttp`` session, for large runs where the
  client's own CPU per call becomes the ceiling (see ``bench/``).

Structured output: ``structured="auto"`` first asks for OpenAI's ``json_schema`` response format;
if the server rejects it (llama.cpp's server answers 500), it falls back to llama.cpp's
``json_object`` + ``schema`` form, then to prompt-only JSON. Output is always validated by the
caller with pydantic, so a server that ignores the format is still safe.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from socialsim.errors import BackendError, UserError
from socialsim.llm.base import ChatRequest, Completion, TransientError
from socialsim.schema import Usage

log = logging.getLogger(__name__)

StructuredMode = Literal["auto", "json_schema", "json_object", "off"]
Transport = Literal["openai", "aiohttp"]
_FALLBACK: dict[str, str] = {"json_schema": "json_object", "json_object": "off"}


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _short(text: str, n: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= n else line[: n - 1] + "…"


def _rejects_format(e: _HTTPStatus) -> bool:
    """Did the server refuse the response_format itself? 400/422 are about the request; a 5xx only
    when its message names the format (llama.cpp's server answers 500 with a validation error),
    so a transient 500 is retried, never taken as a reason to drop structured output."""
    if e.status in (400, 422):
        return True
    msg = e.message.lower()
    return e.status in (500, 501) and any(w in msg for w in ("response_format", "json_schema", "schema"))


class _HTTPStatus(Exception):
    def __init__(self, status: int, message: str, headers: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    @classmethod
    def of(cls, status: int, raw: bytes, headers: Any = None) -> _HTTPStatus:
        """From an error response's body: OpenAI's ``{"error": {"message"}}``, else its first bytes."""
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw[:200].decode("utf-8", "replace")
        return cls(status, str(message), headers)


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
        transport: Transport = "openai",
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
        self._key = os.environ.get(api_key_env) or "sk-no-key-needed"
        self._client: Any = None
        self._session: Any = None
        if transport == "aiohttp":
            import aiohttp  # noqa: F401 - imported now (~0.4 s), not inside the event loop at the first call

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url}

    # -- request ------------------------------------------------------------------------------
    def body(self, request: ChatRequest, level: str | None = None) -> dict[str, Any]:
        """The request body, asking for structured output at ``level`` (default: the level known to work)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.message_dicts(),
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            # llama.cpp-style servers read repeat_penalty; others ignore unknown body fields
            "repeat_penalty": request.repeat_penalty,
        }
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
                data = await (self._post_openai(body) if self.transport == "openai" else self._post_aiohttp(body))
            except _HTTPStatus as e:
                nxt = self._step_down(level, e) if "response_format" in body else None
                if nxt is None:
                    raise self._status_error(e) from None
                level = nxt
                continue
            return self._parse(data, time.perf_counter() - start)

    def _step_down(self, level: str, e: _HTTPStatus) -> str | None:
        """The next level for a request the server rejected at ``level`` (None: no fallback). The
        remembered level moves down only from the level this request was rejected at, so requests
        rejected together move it one level, never past a level no request has tried."""
        nxt = _FALLBACK.get(level) if self._auto and _rejects_format(e) else None
        if nxt is not None and self.structured_mode == level:
            log.warning("server rejected response_format %s (HTTP %s); falling back to %s", level, e.status, nxt)
            self.structured_mode = nxt
        return nxt

    def _status_error(self, e: _HTTPStatus) -> Exception:
        """A transient error (retried) for 408/409/429/5xx, a permanent `BackendError` otherwise."""
        if e.status in (408, 409, 429) or e.status >= 500:
            return TransientError(f"HTTP {e.status} from {self.base_url}", retry_after=_retry_after(e.headers))
        hint = " (check the API key variable, --api-key-env)" if e.status in (401, 403) else ""
        hint = hint or (" (check --model)" if e.status == 404 else "")
        return BackendError(f"{self.base_url} answered HTTP {e.status}: {_short(e.message)}{hint}")

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
        gen = self._stream_openai(body, info) if self.transport == "openai" else self._stream_aiohttp(body, info)
        pieces: list[str] = []
        try:
            async for piece in gen:
                pieces.append(piece)
                yield piece
        except _HTTPStatus as e:
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
            raise BackendError(f"{self.base_url} sent an error in the stream: {_short(str(message))}")
        usage = obj.get("usage")
        if isinstance(usage, dict):
            info.usage = Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        choices = obj.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            info.finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        return piece or None

    async def _stream_openai(self, body: dict[str, Any], info: Completion) -> AsyncIterator[str]:
        import openai

        client = self._openai_client()
        known = {k: v for k, v in body.items() if k not in ("repeat_penalty", "stream", "stream_options")}
        stream = None
        try:
            stream = await client.chat.completions.create(
                **known,
                stream=True,
                stream_options=body["stream_options"],
                extra_body={"repeat_penalty": body["repeat_penalty"]},
            )
            async for chunk in stream:
                piece = self._take_chunk(chunk.model_dump(), info)
                if piece:
                    yield piece
        except (openai.APIStatusError, openai.APIConnectionError) as e:
            raise self._openai_error(e) from None
        except openai.APIError as e:  # an error event inside the stream
            raise BackendError(f"{self.base_url} sent an error in the stream: {_short(e.message)}") from None
        finally:
            if stream is not None:
                await stream.close()

    async def _stream_aiohttp(self, body: dict[str, Any], info: Completion) -> AsyncIterator[str]:
        import aiohttp

        session = self._aiohttp_session()
        try:
            async with session.post(f"{self.base_url}/chat/completions", json=body) as resp:
                if resp.status >= 400:
                    raise _HTTPStatus.of(resp.status, await resp.read(), resp.headers)
                if resp.content_type == "application/json":  # the server ignored "stream": one piece
                    try:
                        whole = self._parse(json.loads(await resp.read()), 0.0)
                    except ValueError:
                        raise TransientError(f"malformed response from {self.base_url} (not JSON)") from None
                    info.usage, info.finish_reason = whole.usage, whole.finish_reason
                    if whole.text:
                        yield whole.text
                    return
                # Server-sent events: "data: <json>" lines, blank lines between events, comments
                # (":") and other fields ignored, "data: [DONE]" at the end.
                async for raw_line in resp.content:
                    line = raw_line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        raise TransientError(f"malformed stream chunk from {self.base_url} (not JSON)") from None
                    piece = self._take_chunk(obj, info)
                    if piece:
                        yield piece
        except (TimeoutError, aiohttp.ClientError) as e:
            raise self._aiohttp_error(e) from None

    def _openai_error(self, e: BaseException) -> Exception:
        """The SDK's status, timeout and connection errors as this backend's own (`_HTTPStatus` is
        mapped by `_status_error`; the others are retryable)."""
        import openai

        if isinstance(e, openai.APIStatusError):
            return _HTTPStatus(e.status_code, e.message, e.response.headers)
        if isinstance(e, openai.APITimeoutError):
            return TransientError(f"timed out after {self.timeout_s}s at {self.base_url}")
        return TransientError(f"cannot connect to {self.base_url} ({_short(str(e.__cause__ or e))})")

    def _aiohttp_error(self, e: BaseException) -> TransientError:
        """A timeout or aiohttp failure as the retryable error the `LLM` wrapper expects."""
        import aiohttp

        if isinstance(e, TimeoutError):
            return TransientError(f"timed out after {self.timeout_s}s at {self.base_url}")
        if isinstance(e, aiohttp.ClientConnectionError):
            return TransientError(f"cannot connect to {self.base_url} ({_short(str(e))})")
        return TransientError(f"HTTP error at {self.base_url} ({_short(str(e))})")

    def _parse(self, data: Any, latency: float) -> Completion:
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
            return Completion(
                text=text,
                usage=Usage(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                ),
                latency_s=latency,
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise TransientError(f"malformed completion from {self.base_url}") from None

    # -- transports ---------------------------------------------------------------------------
    def _openai_client(self) -> Any:
        import openai

        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._key, timeout=self.timeout_s, max_retries=0
            )
        return self._client

    def _aiohttp_session(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                headers={"Authorization": f"Bearer {self._key}"},
            )
        return self._session

    async def _post_openai(self, body: dict[str, Any]) -> Any:
        import openai

        client = self._openai_client()
        known = {k: v for k, v in body.items() if k != "repeat_penalty"}
        try:
            resp = await client.chat.completions.create(**known, extra_body={"repeat_penalty": body["repeat_penalty"]})
        except (openai.APIStatusError, openai.APIConnectionError) as e:
            raise self._openai_error(e) from None
        except (openai.APIResponseValidationError, ValueError) as e:
            raise TransientError(f"malformed response from {self.base_url} ({e.__class__.__name__})") from None
        return resp.model_dump()

    async def _post_aiohttp(self, body: dict[str, Any]) -> Any:
        import aiohttp

        self._aiohttp_session()
        try:
            async with self._session.post(f"{self.base_url}/chat/completions", json=body) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _HTTPStatus.of(resp.status, raw, resp.headers)
        except (TimeoutError, aiohttp.ClientError) as e:
            raise self._aiohttp_error(e) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise TransientError(f"malformed response from {self.base_url} (not JSON)") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None
