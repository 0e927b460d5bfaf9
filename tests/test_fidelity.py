"""Seeker fidelity on real all-MiniLM-L6-v2 embeddings: a line quoting the core worry at turn 1 is a leak, a
paraphrase of the surface layer is not; a line from another story drifts."""

import pytest

from conftest import persona_dict
from socialsim.agents.fidelity import FidelityCheck
from socialsim.schema import Persona

pytest.importorskip("sentence_transformers")

P = Persona.model_validate(
    persona_dict(
        situation="My exams are in three weeks and I can't concentrate on studying at all.",
        disclosure={
            "surface": "I've been really stressed about my exams lately.",
            "context": "My parents paid for extra tutoring and my last two mock results were the worst in my class.",
            "core": "I'm terrified that if I fail, my parents will see me as a waste of their money and sacrifice.",
        },
    )
)


@pytest.fixture(scope="module")
def check() -> FidelityCheck:
    return FidelityCheck(P)


def test_core_quote_at_turn_one_is_a_leak(check):
    got = check.check("Honestly I'm terrified that if I fail my parents will see me as a waste of their money.", 0)
    assert got["leak"], got
    assert got["leak_sim"] >= 0.6


def test_surface_paraphrase_is_not_a_leak(check):
    got = check.check("Exams have been stressing me out a lot recently.", 0)
    assert not got["leak"] and not got["drift"], got


def test_opened_layer_is_not_a_leak(check):
    got = check.check("I'm terrified my parents will think I'm a waste of their money if I fail.", 2)
    assert not got["leak"], got


def test_other_story_drifts(check):
    got = check.check("My landlord raised the rent again and the kitchen tap keeps dripping all night.", 1)
    assert got["drift"] and not got["leak"], got
    assert not check.check("Bye, thanks for listening.", 1, goodbye=True)["drift"]


def test_simulate_with_fidelity_records_every_seeker_turn(tmp_path, persona_file, load_target):
    """`simulate --fidelity` end to end (the load target answers): every seeker turn carries its check and
    the summary counts them; without the flag (the default) nothing is embedded or recorded."""
    import json

    from conftest import run_cli

    t = load_target("--latency", "0.01")
    runs = {}
    for name, flag in (("on", ["--fidelity"]), ("off", [])):
        out = tmp_path / name
        r = run_cli("simulate", "--personas", persona_file, "--n", "3", "--max-turns", "3", "--backend", "openai",
                    "--base-url", t.base_url, "--model", "m", "--no-cache", "-q", "--out", out, *flag)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "Loading weights" not in r.stderr
        ds = [json.loads(line) for line in (out / "dialogues.jsonl").read_text().splitlines()]
        seeker = [t for d in ds for t in d["turns"] if t["speaker"] == "seeker"]
        runs[name] = (seeker, json.loads((out / "summary.json").read_text()))
    seeker_on, summary_on = runs["on"]
    assert seeker_on and all(isinstance(t["fidelity"], dict) and "drift" in t["fidelity"] for t in seeker_on)
    assert summary_on["seeker_turns"] == summary_on["seeker_fidelity_checked"] == len(seeker_on)
    assert isinstance(summary_on["leak_rate"], float) and isinstance(summary_on["drift_rate"], float)
    seeker_off, summary_off = runs["off"]
    assert seeker_off and all(t.get("fidelity") is None for t in seeker_off)
    # nothing was measured: no rate of 0 that reads as "no leaks"
    assert summary_off["seeker_fidelity_checked"] == 0 and summary_off["leak_rate"] is summary_off["drift_rate"] is None
