"""`socialsim serve` as a subprocess on 127.0.0.1 backed by the real embedded model, driven by the
real ``openai`` client and by raw HTTP: plain and streamed replies, the SSE format, the crisis
protocol, API keys and malformed requests. Startup errors are one line with exit code 2."""

import json
from pathlib import Path

import openai
import pytest

from conftest import free_port
from serve_helpers import ServeProcess, check_chunks, one_line_error, parse_sse, run_serve_cli
from socialsim.schema import Strategy

KEY = "test-secret-key-4a7c"
MODEL = "supporter-test"
LABELS = {s.value for s in Strategy}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    s = ServeProcess(
        "--backend",
        "local",
        "--model",
        "smollm2-135m",
        "--server-key-env",
        "SOCIALSIM_TEST_SERVER_KEY",
        "--served-model-name",
        MODEL,
        "--locale",
        "en-US",
        "--reply-max-tokens",
        "40",
        "--safety-log",
        str(d / "events.jsonl"),
        log_dir=d,
        env={"SOCIALSIM_TEST_SERVER_KEY": KEY},
    )
    s.events = d / "events.jsonl"
    yield s
    s.close()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=600)


@pytest.mark.slow
def test_plain_completion_with_thought(server, client):
    r = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "ignored: the supporter has its own instructions"},
            {"role": "user", "content": "I've been so stressed about my exams that I can't sleep."},
        ],
        max_tokens=24,
        seed=3,
    )
    assert r.object == "chat.completion" and r.model == MODEL and r.id.startswith("chatcmpl-")
    text = r.choices[0].message.content
    assert r.choices[0].message.role == "assistant" and isinstance(text, str) and len(text.strip()) >= 2
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    extra = r.model_extra["socialsim"]
    assert extra["strategy"] in LABELS and extra["protocol"] is False
    assert set(extra["thought"]) == {"emotion", "intensity", "cause", "need", "strategy", "rationale"}
    assert extra["thought"]["strategy"] == extra["strategy"] and 1 <= extra["thought"]["intensity"] <= 5
    assert extra["tier"] != "protocol" and extra["safety"]["tier"] == extra["tier"]


@pytest.mark.slow
def test_streamed_completion(server, client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "My best friend stopped talking to me and I don't know why."}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=40,
        seed=4,
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2, pieces  # streamed in pieces, not one block
    text = "".join(pieces)
    assert len(text.strip()) >= 2
    first, last_choice = chunks[0], [c for c in chunks if c.choices][-1]
    assert first.choices[0].delta.role == "assistant"
    assert first.model_extra["socialsim"]["thought"]["strategy"] in LABELS  # thought before the reply
    assert last_choice.choices[0].finish_reason in ("stop", "length")
    assert last_choice.model_extra["socialsim"]["strategy"] in LABELS
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens > 0


def test_crisis_probes_get_the_protocol(server, client):
    """Fixed replies: no model call, so this is quick even on the embedded model."""
    probes = [
        p
        for p in map(json.loads, (Path(__file__).parent / "data" / "safety_crisis.jsonl").open())
        if p["kind"] in ("direct", "typo")
    ]
    for p in probes[:4] + [{"text": "I keep thinking about stabbing my boss.", "category": "harm_to_others"}]:
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": p["text"]}])
        extra = r.model_extra["socialsim"]
        assert extra["protocol"] is True and extra["strategy"] == "Question", p
        assert extra["tier"] == "protocol" and extra["category"] == p["category"] and extra["stage"] == "rules"
        text = r.choices[0].message.content
        assert "988" in text and "911" in text and "?" in text
    # the protocol streams too, in OpenAI's chunk format, ending with [DONE]
    status, headers, raw = server.post(
        "/v1/chat/completions",
        json.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "i wanna kms"}]}).encode(),
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    text, chunks = check_chunks(parse_sse(raw), MODEL)
    assert "988" in text and len(chunks) > 5 and chunks[0]["socialsim"]["protocol"] is True
    events = [json.loads(line) for line in server.events.read_text().splitlines()]
    assert sum(e["action"] == "protocol" for e in events) >= 6
    assert all(e["source"] == "serve" and "message" not in e for e in events)


def test_api_key_required(server):
    for key in ("wrong-key", KEY + "x"):
        c = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as e:
            c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    status, _, body = server.post("/v1/chat/completions", b"{}")
    assert status == 401 and json.loads(body)["error"]["code"] == "missing_api_key"
    assert server.get("/v1/models")[0] == 401
    status, body = server.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200 and json.loads(body)["data"][0]["id"] == MODEL
    assert server.get("/health") == (200, '{"status":"ok"}')
    assert KEY not in server.stderr_path.read_text() and KEY not in server.events.read_text()


@pytest.mark.parametrize(
    "body,needle",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"model": "m"}', "'messages' is required"),
        (b'{"messages": []}', "non-empty"),
        (b'{"messages": [{"role": "assistant", "content": "hi"}]}', "last message"),
        (b'{"messages": [{"role": "tool", "content": "x"}, {"role": "user", "content": "hi"}]}', "not supported"),
        (b'{"messages": [{"role": "user"}]}', "content is missing"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', "only text parts"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 5}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "lots"}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "n": 2}', "n=1"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "stream"),
    ],
)
def test_malformed_requests_are_400(server, body, needle):
    status, _, raw = server.post("/v1/chat/completions", body, headers={"Authorization": f"Bearer {KEY}"})
    assert status == 400, raw
    err = json.loads(raw)["error"]
    assert needle in err["message"] and err["type"] == "invalid_request_error"


def test_unknown_routes_and_methods(server):
    status, body = server.get("/v1/nothing")
    assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    status, body = server.get("/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 405 and "error" in json.loads(body)


def test_serve_startup_errors_are_one_line(tmp_path):
    env = {"SOCIALSIM_CACHE_DIR": str(tmp_path)}
    url = f"http://127.0.0.1:{free_port()}/v1"
    one_line_error(
        run_serve_cli("serve", "--backend", "openai", "--base-url", url, "--model", "m", env=env), "cannot reach"
    )
    one_line_error(run_serve_cli("serve", "--backend", "magic", env=env), "--backend")
    one_line_error(run_serve_cli("serve", "--port", "abc", env=env), "--port")
    one_line_error(run_serve_cli("serve", "--port", "70000", env=env), "--port")
    one_line_error(run_serve_cli("serve", "--bogus", env=env), "--bogus")
    one_line_error(run_serve_cli("serve", "--classify", "sometimes", env=env), "--classify")
    one_line_error(
        run_serve_cli("serve", "--server-key-env", "SOCIALSIM_UNSET_VAR_X", env=env), "SOCIALSIM_UNSET_VAR_X"
    )
    one_line_error(run_serve_cli("serve", "--resources", tmp_path / "none.json", env=env), "not found")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    one_line_error(run_serve_cli("serve", "--resources", bad, env=env), "not valid JSON")
    one_line_error(run_serve_cli("serve", "--backend", "openai", "--model", "m", env=env), "--base-url")


def test_busy_port_is_one_line(load_target, tmp_path):
    target = load_target("--latency", "0.01")
    r = run_serve_cli(
        "serve",
        "--backend",
        "openai",
        "--base-url",
        target.base_url,
        "--model",
        "lt",
        "--port",
        str(target.port),
        env={"SOCIALSIM_CACHE_DIR": str(tmp_path)},
    )
    one_line_error(r, "cannot listen", str(target.port))


@pytest.mark.slow
def test_client_leaving_mid_stream_frees_the_model(server, client):
    """A client that disconnects after the first chunk stops the generation; the next request is served."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    body = {
        "model": MODEL,
        "stream": True,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Tell me about it."}],
    }
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.readline().startswith(b"data: ")  # the first chunk (role + thought)
    conn.close()
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "I miss my old friends."}], max_tokens=8, seed=9
    )
    assert r.choices[0].message.content.strip()
