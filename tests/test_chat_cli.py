"""`socialsim chat` as a subprocess fed stdin lines: the real embedded model (slow), and the history,
EOF/Ctrl-C and error handling with the load target as a quick upstream stand-in."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import free_port
from serve_helpers import one_line_error, run_serve_cli
from socialsim.schema import Strategy

LABELS = {s.value for s in Strategy}


def _history(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_chat_with_embedded_model(tmp_path):
    hist = tmp_path / "chat.jsonl"
    log = tmp_path / "events.jsonl"
    r = run_serve_cli(
        "chat",
        "--backend",
        "local",
        "--model",
        "smollm2-135m",
        "--show-thoughts",
        "--history",
        hist,
        "--locale",
        "en-US",
        "--reply-max-tokens",
        "32",
        "--safety-log",
        log,
        stdin="I've been feeling anxious about my exams all week.\nI want to kill myself\n",
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.count("supporter>") == 2 and "thought:" in out and "strategy:" in out
    assert "safety: crisis protocol" in out and "988" in out
    assert f"history saved to {hist} (4 messages)" in " ".join(out.split())
    msgs = _history(hist)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    normal, crisis = msgs[1], msgs[3]
    assert len(normal["content"].strip()) >= 2
    assert " ".join(normal["content"].split()) in " ".join(out.split())  # what was streamed is what is saved
    assert normal["strategy"] in LABELS and normal["thought"]["strategy"] == normal["strategy"]
    assert normal["protocol"] is False and normal["tier"] != "protocol"
    assert crisis["protocol"] is True and crisis["tier"] == "protocol" and crisis["category"] == "suicide"
    assert "988" in crisis["content"]
    events = _history(log)
    assert len(events) == 1 and events[0]["source"] == "chat" and events[0]["action"] == "protocol"


def _chat_args(target, hist, tmp_path, *extra):
    return (
        "chat",
        "--backend",
        "openai",
        "--base-url",
        target.base_url,
        "--model",
        "lt",
        "--history",
        hist,
        "--safety-log",
        tmp_path / "events.jsonl",
        *extra,
    )


def test_chat_continues_history_and_saves_on_eof(load_target, tmp_path):
    target = load_target("--latency", "0.01")
    hist = tmp_path / "h.jsonl"
    hist.write_text(
        json.dumps({"role": "user", "content": "Hi, I had a rough week."})
        + "\n"
        + json.dumps({"role": "assistant", "content": "I'm sorry to hear that. What happened?"})
        + "\n"
    )
    r = run_serve_cli(*_chat_args(target, hist, tmp_path, "--no-stream"), stdin="My boss yelled at me.\n\n")
    assert r.returncode == 0, r.stderr
    msgs = _history(hist)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[2]["content"] == "My boss yelled at me." and msgs[3]["strategy"] in LABELS
    assert "2 earlier messages" in r.stdout
    r = run_serve_cli(*_chat_args(target, hist, tmp_path), stdin="i want to die\n/quit\nnever read\n")
    assert r.returncode == 0, r.stderr
    msgs = _history(hist)
    assert len(msgs) == 6 and msgs[5]["protocol"] is True and "findahelpline" in msgs[5]["content"]


def test_chat_ctrl_c_saves_history(load_target, tmp_path):
    target = load_target("--latency", "0.01")
    hist = tmp_path / "h.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "socialsim.cli", *map(str, _chat_args(target, hist, tmp_path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        # Ctrl-C as in a terminal: a suite started in the background by a shell without job control (`cmd &`)
        # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler (the chat saw EOF, exit 0)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    said: list[str] = []  # stdout as it comes: the test waits for the prompt, not for a guessed time
    reader = threading.Thread(target=lambda: said.extend(iter(lambda: proc.stdout.read(1), "")), daemon=True)
    reader.start()
    proc.stdin.write("I feel lonely since I moved.\n")
    proc.stdin.flush()
    deadline = time.time() + 60
    def back_at_the_prompt() -> bool:
        return hist.exists() and len(_history(hist)) == 2 and "".join(said).count("you>") >= 2

    while time.time() < deadline and not back_at_the_prompt():
        time.sleep(0.05)
    assert len(_history(hist)) == 2, "".join(said)
    time.sleep(0.2)  # the prompt is printed just before input() blocks
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    out, err = "".join(said), proc.stderr.read()
    assert proc.returncode == 3, (out, err)  # stopped but resumable: the history is saved
    assert "history saved to" in out and "Traceback" not in err
    assert [m["role"] for m in _history(hist)] == ["user", "assistant"]


def test_chat_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"role": "user", "content": "hi"}\n{oops\n')
    one_line_error(run_serve_cli("chat", "--history", bad), f"{bad}:2")
    url = f"http://127.0.0.1:{free_port()}/v1"
    one_line_error(
        run_serve_cli("chat", "--backend", "openai", "--base-url", url, "--model", "m", "--history", tmp_path / "h"),
        "cannot reach",
    )
    one_line_error(
        run_serve_cli("chat", "--backend", "openai", "--model", "m", "--history", tmp_path / "h"), "--base-url"
    )
    one_line_error(run_serve_cli("chat", "--history", tmp_path / "no" / "dir" / "h.jsonl"), "cannot write")
    one_line_error(run_serve_cli("chat", "--temperature", "9", "--history", tmp_path / "h"), "--temperature")
    one_line_error(run_serve_cli("chat", "--backend", "hf", "--history", tmp_path / "h"), "--model-path")
    one_line_error(run_serve_cli("chat", "--mode", "wise", "--history", tmp_path / "h"), "--mode")
    one_line_error(run_serve_cli("chat", "--temperature", "abc", "--history", tmp_path / "h"), "--temperature")
    assert not (tmp_path / "h").exists()  # nothing was written by a call that failed on its options
