"""How `OpenAIBackend`'s request bodies reach the server: two interchangeable transports.

Each one has the same narrow seam, ``post(body)`` (one JSON request, its JSON response as a dict) and
``stream(body)`` (a streamed request, its chunks as dicts), plus ``aclose``. A transport only moves
bytes: an HTTP error status comes back as `HTTPStatusError` (mapped by the backend), a timeout, a lost
connection or a body that is not JSON as `TransientError`. The protocol work (request body, usage,
status mapping, structured-output fallback) is the backend's, done once for both.

- `AiohttpTransport`: one kept-alive ``aiohttp`` session, for large runs where the client's own CPU
  per call becomes the ceiling (3-8x cheaper per call than the SDK, see ``bench/``);
- `OpenAISDKTransport`: the official ``openai`` async client (httpx underneath), the reference client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, Protocol

# the aiohttp transport's JSON codec: on a request and a reply body, encode 9.1 -> 2.2 us and
# decode 3.1 -> 1.1 us against the json module
from pydantic_core import from_json, to_json

from socialsim.llm.base import TransientError


def short(text: str, n: int = 160) -> str:
    """``text`` on one line, at most ``n`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= n else line[: n - 1] + "…"


class HTTPStatusError(Exception):
    """The server answered with an error status (>= 400)."""

    def __init__(self, status: int, message: str, headers: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    @classmethod
    def of(cls, status: int, raw: bytes, headers: Any = None) -> HTTPStatusError:
        """From an error response's body: OpenAI's ``{"error": {"message"}}``, else its first bytes."""
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw[:200].decode("utf-8", "replace")
        return cls(status, str(message), headers)


class Transport(Protocol):
    """The seam between the OpenAI-compatible protocol and the HTTP client that carries it."""

    async def post(self, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``/chat/completions`` (to ``/completions`` when it holds a text ``prompt``); the decoded
        JSON response."""
        ...

    def stream(self, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        """POST a streamed ``body``; each chunk decoded (a server's error event as ``{"error": ...}``)."""
        ...

    async def aclose(self) -> None: ...


def _timed_out(base_url: str, timeout_s: float) -> TransientError:
    return TransientError(f"timed out after {timeout_s}s at {base_url}")


def _cannot_connect(base_url: str, why: object) -> TransientError:
    return TransientError(f"cannot connect to {base_url} ({short(str(why))})")


_JSON = {"Content-Type": "application/json"}  # the header aiohttp's json= would set


class AiohttpTransport:
    """One kept-alive ``aiohttp`` session (made in the event loop of the first call, closed by `aclose`)."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        import aiohttp  # imported now (~0.4 s), not inside the event loop at the first call

        self.base_url, self.timeout_s = base_url, timeout_s
        self._url = f"{base_url}/chat/completions"
        self._text_url = f"{base_url}/completions"
        self._key = api_key
        self._failures = (TimeoutError, aiohttp.ClientError)
        self._session: Any = None

    def _url_for(self, body: dict[str, Any]) -> str:
        """``/completions`` for a text ``prompt``, else ``/chat/completions``."""
        return self._text_url if "prompt" in body else self._url

    def _open(self) -> Any:
        import aiohttp

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            headers={"Authorization": f"Bearer {self._key}"},
        )
        return self._session

    def _error(self, e: BaseException) -> TransientError:
        import aiohttp

        if isinstance(e, TimeoutError):
            return _timed_out(self.base_url, self.timeout_s)
        if isinstance(e, aiohttp.ClientConnectionError):
            return _cannot_connect(self.base_url, e)
        return TransientError(f"HTTP error at {self.base_url} ({short(str(e))})")

    async def post(self, body: dict[str, Any]) -> Any:
        session = self._session or self._open()
        try:
            async with session.post(self._url_for(body), data=to_json(body), headers=_JSON) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise HTTPStatusError.of(resp.status, raw, resp.headers)
        except self._failures as e:
            raise self._error(e) from None
        try:
            return from_json(raw)
        except ValueError:
            raise TransientError(f"malformed response from {self.base_url} (not JSON)") from None

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        session = self._session or self._open()
        try:
            async with session.post(self._url_for(body), data=to_json(body), headers=_JSON) as resp:
                if resp.status >= 400:
                    raise HTTPStatusError.of(resp.status, await resp.read(), resp.headers)
                if resp.content_type == "application/json":  # the server ignored "stream": one whole reply
                    try:
                        yield from_json(await resp.read())
                    except ValueError:
                        raise TransientError(f"malformed response from {self.base_url} (not JSON)") from None
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
                        obj = from_json(data)
                    except ValueError:
                        raise TransientError(f"malformed stream chunk from {self.base_url} (not JSON)") from None
                    yield obj
        except self._failures as e:
            raise self._error(e) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class OpenAISDKTransport:
    """The official ``openai`` async client (no retries of its own: `LLM` retries)."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self.base_url, self.timeout_s = base_url, timeout_s
        self._key = api_key
        self._client: Any = None

    def _open(self) -> Any:
        import openai

        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self._key, timeout=self.timeout_s, max_retries=0
        )
        return self._client

    def _error(self, e: BaseException) -> Exception:
        import openai

        if isinstance(e, openai.APIStatusError):
            return HTTPStatusError(e.status_code, e.message, e.response.headers)
        if isinstance(e, openai.APITimeoutError):
            return _timed_out(self.base_url, self.timeout_s)
        return _cannot_connect(self.base_url, e.__cause__ or e)

    @staticmethod
    def _api(client: Any, body: dict[str, Any]) -> Any:
        """The SDK's ``completions`` for a text ``prompt``, else its ``chat.completions``."""
        return client.completions if "prompt" in body else client.chat.completions

    @staticmethod
    def _args(body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as the SDK's arguments: fields it does not know go in ``extra_body``."""
        args = {k: v for k, v in body.items() if k != "repeat_penalty"}
        args["extra_body"] = {"repeat_penalty": body["repeat_penalty"]}
        return args

    async def post(self, body: dict[str, Any]) -> Any:
        import openai

        client = self._client or self._open()
        try:
            resp = await self._api(client, body).create(**self._args(body))
        except (openai.APIStatusError, openai.APIConnectionError) as e:
            raise self._error(e) from None
        except (openai.APIResponseValidationError, ValueError) as e:
            raise TransientError(f"malformed response from {self.base_url} ({e.__class__.__name__})") from None
        return resp.model_dump()

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[Any, None]:
        import openai

        client = self._client or self._open()
        stream = None
        try:
            stream = await self._api(client, body).create(**self._args(body))
            async for chunk in stream:
                yield chunk.model_dump()
        except (openai.APIStatusError, openai.APIConnectionError) as e:
            raise self._error(e) from None
        except openai.APIError as e:  # an error event inside the stream, handed on as the server sent it
            yield {"error": {"message": e.message}}
        finally:
            if stream is not None:
                await stream.close()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
