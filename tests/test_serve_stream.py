"""Streaming in the LLM layer: `LocalBackend.stream`, `OpenAIBackend.stream` (both transports, SSE)
against real backends, and `LLM.stream`'s retries and cache."""

import asyncio

import pytest

from socialsim.errors import RetriesExhausted
from socialsim.llm import LLM, CallCache, ChatRequest, Completion, make_backend
from socialsim.llm.base import StreamingBackend

REQ = ChatRequest.of(
    [{"role": "user", "content": "Say one kind sentence to a stressed student."}], seed=5, max_tokens=24
)


async def _collect(llm, req):
    info = Completion(text="")
    pieces = [p async for p in llm.stream(req, info)]
    return pieces, info


@pytest.mark.slow
def test_local_stream_matches_complete_and_can_stop_early(local_backend):
    assert isinstance(local_backend, StreamingBackend)
    llm = LLM(local_backend)

    async def go():
        pieces, info = await _collect(llm, REQ)
        whole = await llm.complete(REQ)
        stream = llm.stream(
            ChatRequest.of([{"role": "user", "content": "Tell me a long story."}], seed=1, max_tokens=64)
        )
        n = 0
        async for _ in stream:
            n += 1
            if n == 3:
                break
        await stream.aclose()
        after = await llm.complete(ChatRequest.of([{"role": "user", "content": "Hi"}], seed=2, max_tokens=8))
        return pieces, info, whole, after

    pieces, info, whole, after = asyncio.run(go())
    assert len(pieces) > 3  # token by token, not one block
    assert "".join(pieces) == info.text == whole.text  # same seed, same text
    assert info.usage.completion_tokens == len(pieces) and info.finish_reason in ("stop", "length")
    assert after.text.strip()  # the model is free again after an early stop
    assert llm.stats.calls == 3  # the stream stopped early is not counted as a finished call


@pytest.mark.slow
@pytest.mark.parametrize("client", ["openai", "aiohttp"])
def test_http_stream_against_llama_cpp_server(llama_server, client):
    backend = make_backend("openai", base_url=llama_server, model="smollm2", http_client=client)
    llm = LLM(backend)

    async def go():
        try:
            pieces, info = await _collect(llm, REQ)
            whole = await llm.complete(REQ)
            return pieces, info, whole
        finally:
            await llm.aclose()

    pieces, info, whole = asyncio.run(go())
    assert len(pieces) > 3 and "".join(pieces) == info.text
    assert info.text.strip() == whole.text.strip()
    assert info.finish_reason in ("stop", "length")


def test_stream_retries_before_first_piece_and_caches(load_target, tmp_path):
    """Faults (429, 500, timeouts, malformed bodies) before any text are retried; a finished stream
    is cached as its joined text, so the same request is then answered from the cache."""
    target = load_target("--latency", "0.01", "--fault-rate", "0.5", "--slow-s", "2", "--seed", "3")
    backend = make_backend("openai", base_url=target.base_url, model="lt", timeout_s=1.0)
    llm = LLM(backend, cache=CallCache(tmp_path / "c.sqlite"), max_attempts=10, backoff_base_s=0.05, backoff_max_s=0.2)

    async def go():
        try:
            results = []
            for i in range(6):
                req = ChatRequest.of([{"role": "user", "content": f"hello {i}"}], seed=i, max_tokens=16)
                results.append(await _collect(llm, req))
            again = await _collect(llm, ChatRequest.of([{"role": "user", "content": "hello 0"}], seed=0, max_tokens=16))
            completed = await llm.complete(
                ChatRequest.of([{"role": "user", "content": "hello 1"}], seed=1, max_tokens=16)
            )
            return results, again, completed
        finally:
            await llm.aclose()

    results, again, completed = asyncio.run(go())
    assert all("".join(p) for p, _ in results)
    assert llm.stats.retries > 0
    assert again[0] == ["".join(results[0][0])] and again[1].cached
    assert completed.cached and completed.text == results[1][1].text
    assert llm.stats.cached == 2


def test_stream_gives_up_on_unreachable_server():
    from conftest import free_port

    llm = LLM(make_backend("openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="x"), max_attempts=2)

    async def go():
        try:
            return await _collect(llm, REQ)
        finally:
            await llm.aclose()

    with pytest.raises(RetriesExhausted, match="cannot connect"):
        asyncio.run(go())
