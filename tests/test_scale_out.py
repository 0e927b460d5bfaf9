"""Several endpoints, shards and merge (issue 13, parts 3 and 4)."""

import json
import subprocess
import sys
import time

from conftest import corpus_of, one_line_error, run_cli


def _sim_args(persona_file, *urls, extra=()):
    args = ["simulate", "--personas", persona_file, "--backend", "openai", "--model", "m", "-q", "--no-cache"]
    for u in urls:
        args += ["--base-url", u]
    return [*args, *map(str, extra)]


def test_two_replicas_one_failing_mid_run_all_dialogues_complete(tmp_path, persona_file, load_target):
    a = load_target("--latency", "0.05", "--capacity", "8")
    b = load_target("--latency", "0.05", "--capacity", "8")
    ref = tmp_path / "ref"
    r = run_cli(*_sim_args(persona_file, a.base_url, extra=["--n", "16", "--max-turns", "3", "--out", ref]))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "socialsim.cli",
           *map(str, _sim_args(persona_file, a.base_url, b.base_url,
                               extra=["--n", "16", "--max-turns", "3", "--out", out, "--concurrency", "8"]))]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while b.stats()["served"] < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    served_b = b.stats()["served"]
    assert served_b >= 10 and p.poll() is None, "replica B never took calls while the run was going"
    b.close()  # replica B fails mid-run: refused connections from now on
    served_a = a.stats()["served"]
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    ds = corpus_of(out)
    assert len(ds) == 16 and len({d["id"].split("-")[-1] for d in ds}) == 16
    assert all(d["status"] == "ok" for d in ds)
    # the same dialogues as one endpoint gives: which replica answered changes nothing
    assert ds == corpus_of(ref)
    assert a.stats()["served"] > served_a  # A took over B's share


def test_shards_merged_equal_the_unsharded_run(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.005")
    common = ["--n", "7", "--max-turns", "2", "--seed", "3"]
    whole = tmp_path / "whole"
    assert run_cli(*_sim_args(persona_file, t.base_url, extra=[*common, "--out", whole])).returncode == 0
    shards = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        r = run_cli(*_sim_args(persona_file, t.base_url, extra=[*common, "--shard", f"{k}/2", "--out", out]))
        assert r.returncode == 0, r.stderr
        assert json.loads((out / "summary.json").read_text())["dialogues_ok"] == (4 if k == 1 else 3)
        shards.append(out)
    merged = tmp_path / "merged"
    r = run_cli("merge", shards[1], shards[0], shards[0], "--out", merged)  # shard 1 twice: kept once
    assert r.returncode == 0, r.stderr
    assert corpus_of(merged) == corpus_of(whole)
    assert len(json.loads((merged / "esconv.json").read_text())) == 7
    # the merged run is a run: resuming it finds nothing left to do
    r = run_cli(*_sim_args(persona_file, t.base_url, extra=["--resume", merged]))
    assert r.returncode == 0, r.stderr
    assert len(corpus_of(merged)) == 7


def test_merge_refuses_runs_of_different_configs(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.005")
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(*_sim_args(persona_file, t.base_url,
                              extra=["--n", "2", "--max-turns", "1", "--out", a])).returncode == 0
    assert run_cli(*_sim_args(persona_file, t.base_url,
                              extra=["--n", "2", "--max-turns", "1", "--seed", "9", "--out", b])).returncode == 0
    one_line_error(run_cli("merge", a, b, "--out", tmp_path / "m"), "differs", "one config")
    assert not (tmp_path / "m" / "manifest.json").exists()
    one_line_error(run_cli(*_sim_args(persona_file, t.base_url, extra=["--n", "2", "--shard", "3/2",
                                                                       "--out", tmp_path / "s"])), "--shard")


def test_replica_pool_spreads_by_least_in_flight_and_rests_a_failing_replica():
    import asyncio

    from socialsim.llm.base import ChatRequest, Completion, TransientError
    from socialsim.llm.replicas import ReplicaPool

    class Slow:  # answers after a delay; counts what it was given (load only)
        kind, model = "openai", "m"

        def __init__(self, name, delay, fail=False):
            self.name, self.delay, self.fail, self.got = name, delay, fail, 0

        def identity(self):
            return {"kind": "openai", "model": "m", "base_url": self.name}

        async def complete(self, req):
            self.got += 1
            await asyncio.sleep(self.delay)
            if self.fail:
                raise TransientError(f"refused by {self.name}")
            return Completion(text=self.name)

        async def aclose(self):
            pass

    fast, slow, bad = Slow("fast", 0.01), Slow("slow", 0.2), Slow("bad", 0.0, fail=True)
    pool = ReplicaPool([fast, slow, bad], cooldown_s=60)
    req = ChatRequest.of([{"role": "user", "content": "hi"}])

    async def go():
        return await asyncio.gather(*(pool.complete(req) for _ in range(30)))

    answers = asyncio.run(go())
    assert all(a.text in ("fast", "slow") for a in answers)  # the failing replica's calls went elsewhere
    assert bad.got == 10  # 30 at once, least in flight first: a third each before anyone failed
    assert fast.got >= 10 and slow.got >= 10
    answers = asyncio.run(go())
    assert all(a.text in ("fast", "slow") for a in answers)
    assert bad.got == 10  # resting now: no new calls
    assert pool.identity()["base_url"] == "fast"  # the first replica's identity, whoever answered
