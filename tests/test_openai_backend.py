"""`OpenAIBackend`'s structured-output fallback under concurrency, against a fault-injecting server.

The fault is the one llama.cpp's server really has (HTTP 500 naming the format when asked for OpenAI's
``json_schema``; see ../shared/NOTES.md); the fallback working against the real server is tested in
test_real_backends.py. Here a tiny in-process aiohttp server injects that rejection while several
requests are in flight, which a real server serving one request at a time cannot arrange."""

import asyncio
import json

import pytest
from aiohttp import web

from socialsim.llm import LLM, ChatRequest, make_backend

SCHEMA = {"title": "Thought", "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}


class RejectsJsonSchema:
    """Answers 500 to ``json_schema`` (once ``hold`` such requests are in flight, so they are all
    rejected together), a valid JSON completion to ``json_object``, plain text otherwise; records the
    format each request asked for."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.formats: list[str] = []
        self._arrived = 0
        self._all_in = asyncio.Event()

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        fmt = (body.get("response_format") or {}).get("type", "none")
        self.formats.append(fmt)
        if fmt == "json_schema":
            self._arrived += 1
            if self._arrived >= self.hold:
                self._all_in.set()
            await asyncio.wait_for(self._all_in.wait(), 10)
            return web.json_response({"error": {"message": "response_format json_schema is not supported"}}, status=500)
        content = json.dumps({"x": 1}) if fmt == "json_object" else "plain text"
        message = {"role": "assistant", "content": content}
        return web.json_response(
            {
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            }
        )


async def _serve(app_handler):
    app = web.Application()
    app.router.add_post("/v1/chat/completions", app_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("client", ["aiohttp", "openai"])
def test_concurrent_rejections_each_step_down_one_level(client):
    """Every request rejected at json_schema tries json_object next (none skips to prompt-only JSON),
    and the remembered level is json_object, so later requests start there."""
    n = 4
    server = RejectsJsonSchema(hold=n)

    async def go():
        runner, url = await _serve(server.chat)
        backend = make_backend("openai", base_url=url, model="m", http_client=client)
        llm = LLM(backend, concurrency=n)
        try:
            reqs = [
                ChatRequest.of([{"role": "user", "content": f"q{i}"}], seed=i, json_schema=SCHEMA) for i in range(n)
            ]
            results = await asyncio.gather(*(llm.complete(r) for r in reqs))
            later = await llm.complete(ChatRequest.of([{"role": "user", "content": "later"}], json_schema=SCHEMA))
            return backend, results, later
        finally:
            await llm.aclose()
            await runner.cleanup()

    backend, results, later = asyncio.run(go())
    assert [json.loads(r.text) for r in results] == [{"x": 1}] * n  # each got constrained JSON
    assert json.loads(later.text) == {"x": 1}
    assert server.formats.count("json_schema") == n  # each rejected once, none retried at that level
    assert server.formats.count("json_object") == n + 1
    assert "none" not in server.formats  # no request skipped json_object
    assert backend.structured_mode == "json_object"


@pytest.mark.parametrize("client", ["aiohttp", "openai"])
def test_stream_without_a_reply_is_a_retried_error_not_empty_text(client):
    """A server that ignores ``stream`` and answers one JSON object without usable ``choices``: the stream
    fails as malformed (retried, then given up), it does not end quietly with empty text."""
    calls = []

    async def no_choices(request: web.Request) -> web.Response:
        calls.append(await request.json())
        return web.json_response({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}})

    async def go():
        runner, url = await _serve(no_choices)
        backend = make_backend("openai", base_url=url, model="m", http_client=client)
        llm = LLM(backend, concurrency=1, max_attempts=2)
        try:
            with pytest.raises(Exception, match="ended without a reply"):
                async for _ in llm.stream(ChatRequest.of([{"role": "user", "content": "hi"}])):
                    pass
        finally:
            await llm.aclose()
            await runner.cleanup()

    asyncio.run(go())
    assert len(calls) == 2 and all(c.get("stream") for c in calls)
