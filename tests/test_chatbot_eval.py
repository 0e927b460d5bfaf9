"""Chatbot evaluation on the real embedded model: replies to ESConv contexts scored against the
references, and an interactive dialogue with a simulated seeker scored by the judge."""

import json

import pytest

from conftest import ESCONV_DIR, run_cli

pytestmark = pytest.mark.slow


def test_responses_to_esconv_contexts_are_scored(tmp_path):
    out = tmp_path / "hyp.jsonl"
    r = run_cli(
        "chatbot-eval",
        "responses",
        "--contender",
        "base=local:smollm2-135m:plain",
        "--contexts",
        ESCONV_DIR / "devWithStrategy_short.tsv",
        "--limit",
        "2",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["line"] for x in rows] == [1, 2] and all(x["response"].strip() for x in rows)
    m = json.loads((tmp_path / "hyp.jsonl.metrics.json").read_text())
    assert m["n"] == 2 and 0 <= m["bleu 2"] <= 100 and 0 <= m["rouge_l"] <= 100


def test_interactive_eval_with_judge(tmp_path):
    out = tmp_path / "cmp.json"
    r = run_cli(
        "chatbot-eval",
        "interactive",
        "--contender",
        "base=local:smollm2-135m:plain",
        "--seeker",
        "local:smollm2-135m",
        "--judge",
        "local:smollm2-135m",
        "--n",
        "1",
        "--max-turns",
        "1",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    model = res["models"]["base"]
    assert model["dialogues"] == 1 and model["mode"] == "plain"
    d = res["dialogues"]["base"][0]
    assert [t["speaker"] for t in d["turns"]][:2] == ["seeker", "supporter"]
    assert len(res["judgements"]) == 1
    j = res["judgements"][0]
    assert j["scores"] is not None or j["error"]  # a verdict, or a reported failure, never silence
    assert "Interactive evaluation" in r.stdout
