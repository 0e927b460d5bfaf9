"""One writer per run folder: an OS lock that dies with its process (issue 13, part 2)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import one_line_error, run_cli
from socialsim.simulate.run import LOCK_FILE, RunLock


def _cmd(*args):
    return [sys.executable, "-m", "socialsim.cli", "simulate", *map(str, args)]


def _common(t):
    return ["--backend", "openai", "--base-url", t.base_url, "--model", "m", "-q", "--concurrency", "4"]


def _wait_for(pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _rows(out):
    db = sqlite3.connect(out / "run.sqlite")
    try:
        return db.execute("SELECT count(*), count(DISTINCT idx) FROM dialogues").fetchone()
    finally:
        db.close()


def test_two_concurrent_resumes_one_runs_the_other_exits_2(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.3", "--capacity", "4")
    out = tmp_path / "run"
    r = run_cli("simulate", "--personas", persona_file, "--n", "2", "--max-turns", "2", "--out", out, *_common(t))
    assert r.returncode == 0, r.stderr
    grow = ["--n", "16", "--force"]  # both resumes have 14 dialogues (~8 s) left to do
    before = t.stats()["requests"]
    first = subprocess.Popen(_cmd("--resume", out, *grow, *_common(t)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: t.stats()["requests"] > before), "the first resume never called the server"
    second = run_cli("simulate", "--resume", out, *grow, *_common(t))
    assert first.poll() is None, "the first resume ended before the second started: the test proves nothing"
    line = one_line_error(second, "is writing this run", f"pid {first.pid}")
    assert str(out) in line
    assert first.wait(timeout=120) == 0, first.stderr.read()
    n, distinct = _rows(out)
    assert n == distinct == 16
    ds = [json.loads(x) for x in (out / "dialogues.jsonl").read_text().splitlines()]
    assert len({d["id"] for d in ds}) == 16


def test_kill_9_of_the_holder_frees_the_run_at_once(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.2", "--capacity", "4")
    out = tmp_path / "run"
    p = subprocess.Popen(_cmd("--personas", persona_file, "--n", "12", "--max-turns", "2", "--out", out, *_common(t)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: (out / LOCK_FILE).exists() and t.stats()["served"] > 2)
    assert (out / LOCK_FILE).read_text().strip() == str(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    t0 = time.monotonic()
    with RunLock.acquire(out):  # no stale lock: free the moment the holder died
        pass
    assert time.monotonic() - t0 < 1.0
    r = run_cli("simulate", "--resume", out, *_common(t))
    assert r.returncode == 0, r.stderr
    assert _rows(out) == (12, 12)


def test_readers_need_no_lock_and_do_not_block_the_writer(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.005")
    out = tmp_path / "run"
    assert run_cli("simulate", "--personas", persona_file, "--n", "3", "--max-turns", "1", "--out", out,
                   *_common(t)).returncode == 0
    with RunLock.acquire(out):  # a writer holds the run; a reader exports it all the same
        r = run_cli("export", out, "--format", "jsonl", "--out", tmp_path / "exp")
        assert r.returncode == 0, r.stderr
        refused = run_cli("simulate", "--resume", out, *_common(t))
        one_line_error(refused, f"pid {os.getpid()}")
