"""An OpenAI-compatible HTTP server around `SupporterPipeline` (FastAPI + uvicorn).

Endpoints
---------
- ``POST /v1/chat/completions``: OpenAI's chat-completions request. ``messages`` is the conversation
  (``user`` = the seeker, ``assistant`` = the supporter's earlier replies; ``system`` messages are
  ignored). Honoured: ``stream``, ``stream_options.include_usage``, ``temperature`` (0–2),
  ``max_tokens``/``max_completion_tokens`` (the reply's cap), ``seed``, and an extra ``locale``
  (crisis resources, e.g. ``en-GB``). ``n`` must be 1. Plain responses are a ``chat.completion``;
  streamed ones are server-sent events of ``chat.completion.chunk`` objects ending with
  ``data: [DONE]``.
- ``GET /v1/models``: the one model served (``--served-model-name``).
- ``GET /health``: ``{"status": "ok"}`` (no key needed).

The ``socialsim`` extra field
-----------------------------
Every response carries a top-level ``socialsim`` object next to OpenAI's fields:
``{"strategy": "Question", "thought": {emotion, intensity, cause, need, strategy, rationale},
"protocol": false, "tier": "none" | "check_in" | "protocol", "stage": "rules" | "learned" | "classifier" |
"followup" | "none", "score": <learned score or null>, "category": "none" | "suicide" | "self_harm" |
"harm_to_others", "safety": {the whole decision: "tier", "category", "stage", "score", "action",
"rule_level", "rule", "matched", "after", "answer", "learned", "verdict", ...}, "output_screen": "<rule>"
(only when a reply was replaced)}``; ``thought`` is left out with ``--hide-thoughts``. On ``check_in`` the
reply is the model's with the fixed check-in question appended; on ``protocol`` it is the fixed protocol.
When streaming, the first chunk carries it with the thought and
safety decision (known before the reply starts) and the last chunk (the one with ``finish_reason``)
carries it complete. OpenAI's client keeps unknown fields: ``completion.model_extra["socialsim"]``.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 400 for malformed
requests, 401 for a missing or wrong API key (when the server has one), 404/405 for unknown routes,
413 for oversized bodies, 502 when the upstream model fails or its thought stays unparseable, 503
when it cannot be reached. Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from socialsim.errors import BackendError, RetriesExhausted, StructuredOutputError, UserError
from socialsim.llm.client import BudgetExceeded
from socialsim.serve.pipeline import (
    BadRequest,
    PreparedReply,
    ReplyOptions,
    SupporterPipeline,
    messages_to_turns,
    safety_fields,
)

log = logging.getLogger("socialsim.serve")

MAX_BODY_BYTES = 1 << 20
MAX_REPLY_TOKENS = 2048


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _number(body: dict[str, Any], name: str, lo: float, hi: float, *, integer: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        raise BadRequest(f"'{name}' must be {'an integer' if integer else 'a number'}, got {value!r}", name)
    if not lo <= value <= hi:
        raise BadRequest(f"'{name}' must be between {lo:g} and {hi:g}, got {value!r}", name)
    return value


def parse_request(body: Any) -> tuple[list[Any], ReplyOptions, bool, bool]:
    """(turns, options, stream, include_usage) from a chat-completions body; `BadRequest` if malformed."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if "messages" not in body:
        raise BadRequest("'messages' is required", "messages")
    turns = messages_to_turns(body["messages"])
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", "stream")
    if body.get("n", 1) != 1 or isinstance(body.get("n"), bool):
        raise BadRequest("only n=1 is supported (one reply per request)", "n")
    temperature = _number(body, "temperature", 0, 2)
    max_tokens = _number(body, "max_completion_tokens", 1, MAX_REPLY_TOKENS, integer=True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 1, MAX_REPLY_TOKENS, integer=True)
    seed = _number(body, "seed", -(2**63), 2**63 - 1, integer=True)
    locale = body.get("locale")
    if locale is not None and (not isinstance(locale, str) or len(locale) > 35):
        raise BadRequest("'locale' must be a short string such as 'en-GB'", "locale")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    include_usage = bool(so and so.get("include_usage"))
    opts = ReplyOptions(
        temperature=None if temperature is None else float(temperature),
        max_tokens=max_tokens,
        seed=None if seed is None else seed % (2**31),
        locale=locale,
    )
    return turns, opts, stream, include_usage


def _err(status: int, message: str, type_: str, **kw: Any) -> JSONResponse:
    return JSONResponse(error_body(message, type_, **kw), status_code=status)


def _usage(reply: Any) -> dict[str, int]:
    u = reply.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def upstream_error(e: Exception) -> JSONResponse:
    """The OpenAI-shaped response for a failure of the upstream model (502/503/429)."""
    if isinstance(e, StructuredOutputError):
        message = f"the model's thought could not be parsed: {e}"
        return _err(502, message, "upstream_error", code="unparseable_output")
    if isinstance(e, RetriesExhausted):
        return _err(503, f"the upstream model is unavailable: {e}", "upstream_error", code="upstream_unavailable")
    if isinstance(e, BudgetExceeded):
        return _err(429, str(e), "insufficient_quota", code="budget_exceeded")
    return _err(502, f"the upstream model failed: {e}", "upstream_error", code="upstream_error")


@dataclass
class ServeState:
    """What the routes share: the pipeline, the served model's name and creation time, the API key."""

    pipeline: SupporterPipeline
    model_name: str = "socialsim-supporter"
    api_key: str | None = None
    expose_thoughts: bool = True
    created: int = field(default_factory=lambda: int(time.time()))
    key_bytes: bytes | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key_bytes = self.api_key.encode("utf-8") if self.api_key else None

    def check_key(self, request: Request) -> JSONResponse | None:
        """None when the request may pass, else the 401 response (keys compared in constant time)."""
        key_bytes = self.key_bytes
        if key_bytes is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            return _err(
                401,
                "You didn't provide an API key: send it as 'Authorization: Bearer <key>'.",
                "invalid_request_error",
                code="missing_api_key",
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), key_bytes):
            return _err(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
        return None

    def chunk(self, cid: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        """One server-sent event carrying a ``chat.completion.chunk``."""
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        obj.update(extra)
        return "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n"


def get_state(request: Request) -> ServeState:
    """The app's `ServeState` (a FastAPI dependency)."""
    return request.app.state.serve


StateDep = Annotated[ServeState, Depends(get_state)]
router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/models")
async def models(request: Request, state: StateDep) -> Any:
    denied = state.check_key(request)
    if denied is not None:
        return denied
    return {
        "object": "list",
        "data": [{"id": state.model_name, "object": "model", "created": state.created, "owned_by": "socialsim"}],
    }


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, state: StateDep) -> Any:
    denied = state.check_key(request)
    if denied is not None:
        return denied
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _err(413, f"request body larger than {MAX_BODY_BYTES} bytes", "invalid_request_error")
    try:
        body = json.loads(raw)
    except ValueError as e:
        return _err(400, f"the request body is not valid JSON ({e})", "invalid_request_error")
    try:
        turns, opts, stream, include_usage = parse_request(body)
        prepared = await state.pipeline.prepare(turns, opts)
    except BadRequest as e:
        return _err(400, str(e), "invalid_request_error", param=e.param)
    except (StructuredOutputError, UserError, BudgetExceeded) as e:
        return upstream_error(e)
    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    if not stream:
        return await _complete(state, prepared, cid)
    return StreamingResponse(
        _events(state, prepared, cid, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _complete(state: ServeState, prepared: PreparedReply, cid: str) -> Any:
    """The plain (non-streamed) ``chat.completion`` response."""
    try:
        reply = await prepared.complete()
    except (StructuredOutputError, UserError, BudgetExceeded) as e:
        return upstream_error(e)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": state.model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": _usage(reply),
        "socialsim": reply.extra(thoughts=state.expose_thoughts),
    }


async def _events(state: ServeState, prepared: PreparedReply, cid: str, include_usage: bool) -> AsyncIterator[str]:
    """The server-sent events of a streamed reply: a head chunk with the thought and the safety decision,
    the pieces, a last chunk with ``finish_reason`` and the complete ``socialsim`` field, then usage."""
    head: dict[str, Any] = {
        "strategy": prepared.strategy.value if prepared.strategy else None,
        "protocol": prepared.protocol_text is not None,
        **safety_fields(prepared.safety),
    }
    if state.expose_thoughts:
        head["thought"] = prepared.thought.model_dump(mode="json") if prepared.thought else None
    yield state.chunk(cid, {"role": "assistant", "content": ""}, socialsim=head)
    try:
        async with aclosing(prepared.stream()) as pieces:  # a client that leaves stops generation
            async for piece in pieces:
                yield state.chunk(cid, {"content": piece})
    except Exception as e:  # the status line is sent: report in the stream, then end it
        if not isinstance(e, StructuredOutputError | UserError | BudgetExceeded):
            log.error("stream failed: %s", e.__class__.__name__)
        message = str(e) if isinstance(e, UserError | BackendError) else "the reply stream failed"
        yield "data: " + json.dumps(error_body(message, "upstream_error")) + "\n\n"
        yield "data: [DONE]\n\n"
        return
    reply = prepared.reply
    assert reply is not None
    yield state.chunk(cid, {}, reply.finish_reason, socialsim=reply.extra(thoughts=state.expose_thoughts))
    if include_usage:
        obj = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": state.model_name,
            "choices": [],
            "usage": _usage(reply),
        }
        yield "data: " + json.dumps(obj) + "\n\n"
    yield "data: [DONE]\n\n"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.status_code, "invalid_request_error")
    message = {404: f"no route {request.url.path}", 405: f"method {request.method} not allowed here"}.get(
        exc.status_code, str(exc.detail)
    )
    return _err(exc.status_code, message, kind)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _err(400, f"invalid request: {exc.errors()[0].get('msg', 'bad value')}", "invalid_request_error")


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return _err(500, "internal server error", "server_error")


def create_app(
    pipeline: SupporterPipeline,
    *,
    model_name: str = "socialsim-supporter",
    api_key: str | None = None,
    expose_thoughts: bool = True,
) -> FastAPI:
    """The FastAPI app. ``api_key``: clients must send ``Authorization: Bearer <key>`` (None: open)."""
    app = FastAPI(title="socialsim supporter", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serve = ServeState(pipeline, model_name=model_name, api_key=api_key, expose_thoughts=expose_thoughts)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(router)
    return app


async def serve_app(
    app: Any,
    host: str,
    port: int,
    *,
    on_ready: Any = None,
    access_log: bool = False,
    log_level: str = "warning",
) -> None:
    """Run the app with uvicorn until SIGINT/SIGTERM. Binds the socket first, so a busy port or a bad
    host is a `UserError`; ``on_ready(port)`` is called once the server accepts connections."""
    import asyncio
    import socket

    import uvicorn

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise UserError(f"--host {host!r}: cannot resolve it ({e.strerror or e})") from None
    family = infos[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port") from None
    sock.listen(2048)
    sock.setblocking(False)
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise UserError(f"the server on {host}:{port} stopped while starting")
        await asyncio.sleep(0.02)
    if on_ready is not None:
        on_ready(sock.getsockname()[1])
    try:
        await task
    finally:
        sock.close()
