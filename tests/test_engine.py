"""The corpus engine against the load target: concurrency, faults, budget, cache, resume,
reproducibility. The load target stands in for load and faults; real servers are tested in
test_real_backends.py."""

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import run_cli
from socialsim.llm import LLM, ChatRequest, TransientError
from socialsim.llm.client import RateLimiter


def _sim(target, persona_file, out, *extra):
    return run_cli(
        "simulate",
        "--personas",
        persona_file,
        "--backend",
        "openai",
        "--base-url",
        target.base_url,
        "--model",
        "m",
        "--out",
        out,
        "-q",
        *map(str, extra),
    )


def _dialogues(out):
    return [json.loads(x) for x in (out / "dialogues.jsonl").read_text().splitlines()]


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _check_valid(ds):
    for d in ds:
        speakers = [t["speaker"] for t in d["turns"]]
        assert speakers[0] == "seeker" and all(a != b for a, b in zip(speakers, speakers[1:], strict=False))
        for t in d["turns"]:
            if t["speaker"] == "supporter":
                assert t["thought"] and t["strategy"] == t["thought"]["strategy"]


@pytest.mark.parametrize("client", ["aiohttp", "openai"])
def test_concurrency_limit_is_reached_and_never_passed(tmp_path, persona_file, load_target, client):
    t = load_target("--latency", "0.05", "--capacity", "64")
    out = tmp_path / "run"
    r = _sim(t, persona_file, out, "--n", "12", "--max-turns", "2", "--concurrency", "4", "--http-client", client)
    assert r.returncode == 0, r.stderr
    ds = _dialogues(out)
    assert len(ds) == 12 and all(d["status"] == "ok" for d in ds)
    _check_valid(ds)
    assert t.stats()["max_active"] == 4


@pytest.mark.parametrize("client", ["aiohttp", "openai"])
def test_faults_are_retried_within_bounds_and_budget_holds(tmp_path, persona_file, load_target, client):
    t = load_target("--latency", "0.01", "--fault-rate", "0.2", "--slow-s", "3", "--seed", "1")
    out = tmp_path / "run"
    r = _sim(
        t,
        persona_file,
        out,
        "--n",
        "20",
        "--max-turns",
        "2",
        "--timeout",
        "1",
        "--max-attempts",
        "8",
        "--concurrency",
        "8",
        "--no-cache",
        "--http-client",
        client,
    )
    assert r.returncode == 0, r.stderr
    ds = _dialogues(out)
    assert len(ds) == 20 and all(d["status"] == "ok" for d in ds)
    _check_valid(ds)
    s, ts = _summary(out), t.stats()
    assert all(ts[f"fault_{f}"] > 0 for f in ("429", "500", "slow", "malformed")), ts
    faults = sum(ts[f"fault_{f}"] for f in ("429", "500", "slow", "malformed"))
    assert s["retries"] == faults  # every fault retried once more, none lost, none extra
    assert s["calls"] == ts["served"] and s["retries"] <= s["calls"] * 7

    # a token budget stops the run cleanly, never exceeded, and the run resumes past it
    budget = (s["prompt_tokens"] + s["completion_tokens"]) // 3
    out2 = tmp_path / "budget"
    r = _sim(
        t,
        persona_file,
        out2,
        "--n",
        "20",
        "--max-turns",
        "2",
        "--timeout",
        "1",
        "--max-attempts",
        "8",
        "--no-cache",
        "--max-tokens",
        budget,
        "--concurrency",
        "2",
        "--dialogues-in-flight",
        "2",
        "--http-client",
        client,
    )
    assert r.returncode == 3, r.stderr  # stopped but resumable
    assert f"stopped: token budget {budget} reached" in r.stderr and "--resume" in r.stderr
    s = _summary(out2)
    assert s["prompt_tokens"] + s["completion_tokens"] <= budget
    assert 0 < s["dialogues_ok"] < 20 and s["dialogues_pending"] == 20 - s["dialogues_ok"]
    r = run_cli(
        "simulate",
        "--resume",
        out2,
        "-q",
        "--backend",
        "openai",
        "--base-url",
        t.base_url,
        "--model",
        "m",
        "--max-tokens",
        budget * 2,
        "--concurrency",
        "2",
        "--dialogues-in-flight",
        "2",
        "--timeout",
        "1",
        "--max-attempts",
        "8",
        "--no-cache",
    )
    s2 = _summary(out2)
    assert r.returncode == (3 if s2["dialogues_pending"] else 0), r.stderr  # 3 while still resumable
    assert s2["prompt_tokens"] + s2["completion_tokens"] <= budget * 2
    assert s2["dialogues_ok"] > s["dialogues_ok"]


def test_retry_after_is_honoured_and_backoff_is_bounded():
    llm = LLM.__new__(LLM)
    llm.backoff_base_s, llm.backoff_max_s = 0.5, 4.0
    assert llm._backoff(1, TransientError("429", retry_after=2.5)) >= 2.5
    waits = [llm._backoff(10, TransientError("500")) for _ in range(200)]
    assert max(waits) <= 4.0 and min(waits) >= 0 and len(set(waits)) > 100  # jittered, capped


def test_rate_limiter_spaces_requests():
    async def go():
        lim = RateLimiter(rpm=5, window_s=0.4)
        t0 = time.monotonic()
        for _ in range(11):
            await lim.acquire(10)
        return time.monotonic() - t0

    assert asyncio.run(go()) >= 0.8  # 11 requests at 5 per 0.4 s need two full windows


def test_cache_key_changes_with_everything_that_changes_output():
    base = ChatRequest.of([{"role": "user", "content": "hi"}], seed=1)
    ident = {"kind": "openai", "model": "m", "base_url": "u"}
    k = base.cache_key(ident)
    variants = [
        ChatRequest.of([{"role": "user", "content": "hi!"}], seed=1),
        ChatRequest.of([{"role": "system", "content": "hi"}], seed=1),
        ChatRequest.of([{"role": "user", "content": "hi"}], seed=2),
        ChatRequest.of([{"role": "user", "content": "hi"}], seed=1, temperature=0.1),
        ChatRequest.of([{"role": "user", "content": "hi"}], seed=1, max_tokens=9),
        ChatRequest.of([{"role": "user", "content": "hi"}], seed=1, top_p=0.5),
        ChatRequest.of([{"role": "user", "content": "hi"}], seed=1, repeat_penalty=1.0),
        ChatRequest.of([{"role": "user", "content": "hi"}], seed=1, json_schema={"type": "object"}),
        ChatRequest.of([{"role": "user", "content": "hi"}], seed=1, stop=("\n",)),
    ]
    keys = {v.cache_key(ident) for v in variants}
    assert len(keys) == len(variants) and k not in keys
    assert base.cache_key({**ident, "model": "m2"}) != k
    assert base.cache_key({**ident, "base_url": "u2"}) != k
    assert ChatRequest.of([{"role": "user", "content": "hi"}], seed=1).cache_key(ident) == k


def test_cache_repays_only_changed_calls(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.01")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _sim(t, persona_file, a, "--n", "4", "--max-turns", "2").returncode == 0
    assert _sim(t, persona_file, b, "--n", "4", "--max-turns", "3").returncode == 0
    sa, sb = _summary(a), _summary(b)
    assert sa["cached_calls"] == 0
    assert sb["cached_calls"] == sa["calls"]  # the first two turns of every dialogue came from the cache
    assert sb["calls"] > sb["cached_calls"]
    served = t.stats()["served"]
    assert served == sa["calls"] + sb["calls"] - sb["cached_calls"]
    assert _sim(t, persona_file, c, "--n", "4", "--max-turns", "3", "--no-cache").returncode == 0
    assert _summary(c)["cached_calls"] == 0


def test_same_config_and_seed_gives_same_corpus(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.005")
    runs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / name
        assert (
            _sim(
                t, persona_file, out, "--n", "6", "--max-turns", "2", "--seed", seed, "--no-cache", "--concurrency", "3"
            ).returncode
            == 0
        )
        runs.append([(d["id"], d["persona_id"], d["seed"], [x["text"] for x in d["turns"]]) for d in _dialogues(out)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_crash_safety_sigkill_and_resume(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.01", "--capacity", "64")
    out = tmp_path / "run"
    base = [sys.executable, "-m", "socialsim.cli", "simulate"]
    common = [
        "--backend",
        "openai",
        "--base-url",
        t.base_url,
        "--model",
        "m",
        "-q",
        "--concurrency",
        "16",
        "--http-client",
        "aiohttp",
    ]
    rng = random.Random(42)
    env = dict(os.environ)
    new = [*base, "--personas", str(persona_file), "--n", "200", "--max-turns", "3", "--out", str(out), *common]
    cmd = new
    kills = 0
    for _ in range(5):
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # start-up (imports) can take seconds on a loaded machine: kill only once the run exists
        deadline = time.monotonic() + 60
        while not (out / "run.sqlite").exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.8, 2.5))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        # killed before it had created the run (a slow start on a busy machine): start it again
        cmd = [*base, "--resume", str(out), *common] if (out / "manifest.json").exists() else new
    assert kills >= 3  # most attempts were really killed mid-run
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(out / "run.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute("SELECT idx, id FROM dialogues").fetchall()
    assert len(rows) == 200 and len({i for i, _ in rows}) == 200 and len({d for _, d in rows}) == 200
    ds = _dialogues(out)
    assert len(ds) == 200 and len({d["id"] for d in ds}) == 200
    _check_valid(ds)
    assert json.loads((out / "esconv.json").read_text()).__len__() == 200


def _one_line(r, *needles):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_run_inputs(tmp_path, persona_file):
    notrun = tmp_path / "notrun"
    notrun.mkdir()
    (notrun / "keep.txt").write_text("mine")
    _one_line(run_cli("simulate", "--resume", notrun), "not a socialsim run")
    assert [p.name for p in notrun.iterdir()] == ["keep.txt"]

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_text('{"format": "socialsim-run", "config": ')
    (corrupt / "run.sqlite").write_bytes(b"")
    _one_line(run_cli("simulate", "--resume", corrupt), "corrupt manifest")
    assert (corrupt / "manifest.json").read_text() == '{"format": "socialsim-run", "config": '

    _one_line(run_cli("simulate", "--resume", tmp_path / "missing"), "no such run directory")
    new = tmp_path / "new"
    _one_line(
        run_cli("simulate", "--personas", persona_file, "--n", "2", "--out", new, "--max-cost", "-1"), "--max-cost"
    )
    _one_line(
        run_cli("simulate", "--personas", persona_file, "--n", "2", "--out", new, "--max-tokens", "-5"), "--max-tokens"
    )
    _one_line(
        run_cli("simulate", "--personas", persona_file, "--n", "2", "--out", new, "--concurrency", "0"), "--concurrency"
    )
    _one_line(run_cli("simulate", "--personas", persona_file, "--n", "0", "--out", new), "--n")
    assert not new.exists()


def test_resume_with_other_config_is_refused_unless_forced(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.005")
    out = tmp_path / "run"
    assert _sim(t, persona_file, out, "--n", "3", "--max-turns", "2").returncode == 0
    manifest = (out / "manifest.json").read_text()
    common = ["--backend", "openai", "--base-url", t.base_url, "--model", "m", "-q"]
    _one_line(run_cli("simulate", "--resume", out, "--max-turns", "3", *common), "different config", "--force")
    _one_line(
        run_cli("simulate", "--resume", out, "--backend", "openai", "--base-url", t.base_url, "--model", "other", "-q"),
        "different config",
    )
    assert (out / "manifest.json").read_text() == manifest
    r = run_cli("simulate", "--resume", out, *common)
    assert r.returncode == 0, r.stderr  # same config: nothing left to do, nothing duplicated
    assert len(_dialogues(out)) == 3
    r = run_cli("simulate", "--resume", out, "--n", "5", "--force", *common)
    assert r.returncode == 0, r.stderr
    assert len(_dialogues(out)) == 5
