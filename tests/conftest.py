from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ESCONV_DIR = SHARED / "data" / "esconv"


def persona_dict(**over):
    d = {
        "id": "t-maya",
        "name": "Maya",
        "age": 19,
        "gender": "woman",
        "occupation": "student",
        "problem_type": "academic pressure",
        "emotion_type": "anxiety",
        "initial_intensity": 4,
        "situation": "I have finals next week and I can't focus at all.",
        "disclosure": {
            "surface": "I'm just really stressed about school.",
            "context": "My finals start Monday and I failed a midterm, so I need an A to keep my scholarship.",
            "core": "I'm scared my parents will see I'm not as smart as they think.",
        },
    }
    d.update(over)
    return d


@pytest.fixture
def persona_data():
    return persona_dict()


@pytest.fixture
def persona_file(tmp_path):
    p = tmp_path / "personas.jsonl"
    rows = [
        persona_dict(),
        persona_dict(
            id="t-tom",
            name="Tom",
            age=45,
            gender="man",
            occupation="bus driver",
            problem_type="job crisis",
            emotion_type="fear",
        ),
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI nothing may be skipped: a skip there means a missing install step, not a pass."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (a missing install step?): {report.longrepr}"


def _user_models_dir() -> str:
    base = os.environ.get("SOCIALSIM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "socialsim"
    )
    return os.environ.get("SOCIALSIM_MODELS_DIR") or os.path.join(base, "models")


USER_MODELS_DIR = _user_models_dir()  # read before any test isolates the cache


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache; assembled model files (1.1 GB for qwen2.5-1.5b) stay shared in the
    user's models folder, so they are built once (by `socialsim demo` in CI) and not per test."""
    monkeypatch.setenv("SOCIALSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SOCIALSIM_MODELS_DIR", USER_MODELS_DIR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args, env=None, cwd=None, timeout=900, stdin=None):
    """`socialsim ARGS` in a subprocess (the installed CLI, as a user runs it)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "socialsim.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=e,
        cwd=cwd,
        timeout=timeout,
        input=stdin,
    )


def one_line_error(r, *needles):
    """Assert the CLI's bad-input contract: exit 2, one line 'error: ...' naming each needle, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def corpus_of(out):
    """A run's dialogues without what differs between two runs of one plan (timestamps, latencies)."""
    rows = []
    for line in (Path(out) / "dialogues.jsonl").read_text().splitlines():
        d = json.loads(line)
        d.pop("created_at")
        for t in d["turns"]:
            t.pop("latency_s", None)
        rows.append(d)
    return rows


class LoadTarget:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "socialsim.testing.load_target", "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def load_target():
    started: list[LoadTarget] = []

    def start(*args: str) -> LoadTarget:
        t = LoadTarget(*args)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server on 127.0.0.1, serving the embedded GGUF."""
    pytest.importorskip("llama_cpp.server")
    from socialsim.llm.local import default_model_path

    port = free_port()
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w+")  # a pipe would fill and block it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_model_path("smollm2-135m")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "2",
            "--model_alias",
            "smollm2",
            "--interrupt_requests",
            "False",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError("llama_cpp.server exited: " + log.read()[-2000:])
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("llama_cpp.server did not start in 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def local_backend():
    from socialsim.llm.local import LocalBackend

    return LocalBackend(model_name="smollm2-135m")
