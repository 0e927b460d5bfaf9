"""Faults injected with the load target (a stand-in for faults only)."""

import json

from conftest import run_cli


def test_unparseable_output_gives_failed_dialogue_not_dropped(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.01", "--unparseable")
    out = tmp_path / "run"
    r = run_cli(
        "simulate",
        "--personas",
        persona_file,
        "--n",
        "3",
        "--backend",
        "openai",
        "--base-url",
        t.base_url,
        "--model",
        "m",
        "--out",
        out,
        "-q",
        "--no-cache",
    )
    assert r.returncode == 0, r.stderr
    ds = [json.loads(x) for x in (out / "dialogues.jsonl").read_text().splitlines()]
    assert len(ds) == 3
    for d in ds:
        assert d["status"] == "failed" and d["end_reason"] == "failure"
        assert "SupporterThought output unparseable after 3 attempts" in d["failure_reason"]
        assert d["turns"][0]["speaker"] == "seeker"  # what was said before the failure is kept
    assert json.loads((out / "summary.json").read_text())["dialogues_failed"] == 3
