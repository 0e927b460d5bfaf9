"""`socialsim serve` under load: 50 concurrent clients (the real ``openai`` async client, no retries)
on 127.0.0.1 must see 0 errors.

The server's upstream LLM here is the load target (`socialsim.testing.load_target`), a stand-in that
answers each call after a fixed latency with valid thought JSON or a short reply: it measures the
server (routing, safety layer, pipeline, SSE) under concurrency, not a model. Real-model behaviour
is tested in test_serve_app.py. The figures are printed and written to the test's tmp folder.
"""

import asyncio
import json
import statistics
import time

import openai
import pytest

from serve_helpers import ServeProcess, check_chunks, parse_sse
from socialsim.llm import LLM, ChatRequest, Completion, make_backend

CLIENTS = 50
REQUESTS_PER_CLIENT = 4
MODEL = "socialsim-supporter"
MESSAGES = [
    "I feel stuck at work and nobody notices.",
    "My sister and I had a huge fight last night.",
    "I can't focus on my studies lately.",
    "I'm nervous about moving to a new city.",
]
CRISIS = "i want to kill myself"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    d = tmp_path_factory.mktemp("load")
    from conftest import LoadTarget

    target = LoadTarget("--latency", "0.05", "--capacity", "64")
    server = ServeProcess(
        "--backend",
        "openai",
        "--base-url",
        target.base_url,
        "--model",
        "load-target",
        "--concurrency",
        "128",
        "--locale",
        "en-GB",
        "--safety-log",
        str(d / "events.jsonl"),
        log_dir=d,
        env={"SOCIALSIM_CACHE_DIR": str(d)},
    )
    yield server, target, d
    server.close()
    target.close()


def _pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def test_fifty_concurrent_clients_no_errors(loaded):
    server, target, folder = loaded

    async def one_client(i: int, results: list, errors: list) -> None:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)
        try:
            for j in range(REQUESTS_PER_CLIENT):
                crisis = (i * REQUESTS_PER_CLIENT + j) % 10 == 0
                history = [{"role": "user", "content": CRISIS if crisis else MESSAGES[(i + j) % len(MESSAGES)]}]
                stream = j % 2 == 1
                start = time.perf_counter()
                try:
                    if stream:
                        chunks = [
                            c
                            async for c in await client.chat.completions.create(
                                model=MODEL, messages=history, stream=True, seed=i * 100 + j
                            )
                        ]
                        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                        extra = chunks[0].model_extra["socialsim"]
                    else:
                        r = await client.chat.completions.create(model=MODEL, messages=history, seed=i * 100 + j)
                        text = r.choices[0].message.content
                        extra = r.model_extra["socialsim"]
                except Exception as e:  # any failure counts as an error
                    errors.append(f"{type(e).__name__}: {e}")
                    continue
                latency = time.perf_counter() - start
                ok = bool(text and text.strip()) and extra["protocol"] == crisis
                if crisis:
                    ok = ok and "Samaritans" in text
                if not ok:
                    errors.append(f"bad reply: {text!r} {extra}")
                results.append((latency, stream, crisis))
        finally:
            await client.close()

    async def run():
        results, errors = [], []
        start = time.perf_counter()
        await asyncio.gather(*(one_client(i, results, errors) for i in range(CLIENTS)))
        return results, errors, time.perf_counter() - start

    results, errors, wall = asyncio.run(run())
    latencies = [r[0] for r in results]
    figures = {
        "clients": CLIENTS,
        "requests": CLIENTS * REQUESTS_PER_CLIENT,
        "ok": len(results),
        "errors": len(errors),
        "streamed": sum(1 for r in results if r[1]),
        "crisis": sum(1 for r in results if r[2]),
        "p50_s": round(statistics.median(latencies), 4) if latencies else None,
        "p95_s": round(_pct(latencies, 0.95), 4) if latencies else None,
        "max_s": round(max(latencies), 4) if latencies else None,
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(results) / wall, 1),
        "upstream": target.stats(),
    }
    (folder / "load.json").write_text(json.dumps(figures, indent=2))
    print("\nload test:", json.dumps(figures))
    assert not errors, errors[:5]
    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
    assert figures["upstream"]["max_active"] > 1  # requests really overlapped upstream
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert sum(e["action"] == "protocol" for e in events) == figures["crisis"]


def test_raw_sse_and_aiohttp_stream_parser(loaded):
    """The model path's SSE framing, read raw; and `OpenAIBackend.stream` (aiohttp transport, SSE
    parsing) reading this server as its upstream."""
    server, _, _ = loaded
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": MESSAGES[0]}]}
    status, headers, raw = server.post("/v1/chat/completions", json.dumps(body).encode())
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    text, chunks = check_chunks(parse_sse(raw), MODEL)
    assert text.strip() and chunks[-1]["socialsim"]["strategy"]

    backend = make_backend("openai", base_url=server.base_url, model=MODEL, http_client="aiohttp")
    llm = LLM(backend)

    async def go():
        info = Completion(text="")
        try:
            pieces = [p async for p in llm.stream(ChatRequest.of([{"role": "user", "content": MESSAGES[1]}]), info)]
        finally:
            await llm.aclose()
        return pieces, info

    pieces, info = asyncio.run(go())
    assert "".join(pieces).strip() and info.finish_reason == "stop"


def test_upstream_failures_are_clear_errors(tmp_path):
    """An upstream whose thought never parses answers 502; an upstream that went away answers 503;
    both in OpenAI's error shape, for plain and streamed requests (nothing was streamed yet)."""
    from conftest import LoadTarget

    target = LoadTarget("--latency", "0.01", "--unparseable")
    server = ServeProcess(
        "--backend",
        "openai",
        "--base-url",
        target.base_url,
        "--model",
        "lt",
        "--max-attempts",
        "1",
        "--timeout",
        "5",
        log_dir=tmp_path,
        env={"SOCIALSIM_CACHE_DIR": str(tmp_path)},
    )
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=stream)
            assert e.value.status_code == 502 and e.value.body["code"] == "unparseable_output"
        # the crisis protocol needs no upstream at all
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": CRISIS}])
        assert r.model_extra["socialsim"]["protocol"] is True
        target.close()
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == 503 and e.value.body["code"] == "upstream_unavailable"
    finally:
        server.close()
        if target.proc.poll() is None:
            target.close()
