"""Role-specific models: backends per role in the config and its hash, a budget shared by every role, and a
real run with the seeker on the embedded model in process and the supporter on a real llama.cpp server."""

import json

import pytest

from conftest import run_cli
from socialsim.llm import LLM, BudgetExceeded, make_backend
from socialsim.llm.base import ChatRequest
from socialsim.schema import BackendConfig, SimulationConfig
from socialsim.simulate.roles import role_backends


def test_role_backends_default_to_the_main_backend():
    main = BackendConfig(kind="openai", base_url="http://h:8000/v1", model="big")
    roles = role_backends(main, {"seeker": {"model": "strong"}, "supporter": {}, "classifier": {"kind": "local"}})
    assert set(roles) == {"seeker", "classifier"}  # a role given no option uses the main backend
    assert roles["seeker"].base_url == "http://h:8000/v1" and roles["seeker"].model == "strong"
    assert roles["classifier"].kind == "local" and roles["classifier"].base_url is None


def test_roles_are_in_the_config_hash():
    base = SimulationConfig(personas="default", personas_sha256="x", n=1)
    other = base.model_copy(update={"roles": {"supporter": BackendConfig(kind="openai", base_url="http://s/v1")}})
    assert base.config_hash() != other.config_hash()


def test_budget_counts_every_role():
    a = LLM(make_backend("openai", base_url="http://127.0.0.1:9/v1", model="a"), max_tokens=1000)
    b = LLM(make_backend("openai", base_url="http://127.0.0.1:9/v1", model="b"))
    req = ChatRequest.of([{"role": "user", "content": "hi"}], max_tokens=100)
    a._release(*a._reserve(req))  # fits alone
    b.stats.completion_tokens = 950  # the other role spent most of the budget
    a.budget_peers = [b]
    with pytest.raises(BudgetExceeded):
        a._reserve(req)
    assert a.name != b.name  # and the cache keys differ by backend identity
    assert req.cache_key(a._identity) != req.cache_key(b._identity)


@pytest.mark.slow
def test_seeker_in_process_and_supporter_on_a_real_server(tmp_path, llama_server):
    out = tmp_path / "run"
    r = run_cli(
        "simulate", "--model", "smollm2-135m", "--n", "1", "--max-turns", "1", "--no-cache", "--out", out, "-q",
        "--supporter-backend", "openai", "--supporter-base-url", llama_server, "--supporter-model", "smollm2",
        "--disclosure", "strategy-rule", "--realized-strategy", "off", "--no-fidelity",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    cfg = manifest["config"]
    assert cfg["backend"]["kind"] == "local" and cfg["roles"]["supporter"]["kind"] == "openai"
    assert cfg["roles"]["supporter"]["base_url"] == llama_server
    assert "supporter_backend" in manifest["environment"]
    d = json.loads((out / "dialogues.jsonl").read_text().splitlines()[0])
    assert (d["backend"], d["model"]) == ("openai", "smollm2")  # the supporter's backend answered its turns
    sup = [t for t in d["turns"] if t["speaker"] == "supporter"]
    seek = [t for t in d["turns"] if t["speaker"] == "seeker"]
    assert sup and sup[0]["thought"] and sup[0]["calls"] >= 2 and sup[0]["usage"]["prompt_tokens"] > 0
    assert len(seek) == 2 and all(t["calls"] >= 1 for t in seek)  # the in-process model made the seeker's
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calls"] == sum(t["calls"] for t in d["turns"])  # usage summed over both backends
