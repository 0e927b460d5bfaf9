"""The LLM judge: rubric models, prompts, order-swap combination, and end to end on the embedded model."""

import json

import pytest

from socialsim.evaluate.judge import (
    Judge,
    JudgePrompts,
    PairwiseResult,
    PointwiseResult,
    combine,
    make_pairs,
    pairwise_summary,
    pointwise_summary,
    run_judge,
    transcript,
)
from socialsim.evaluate.rubrics import ESCEvalRubric, ESConvRubric, dimensions, pairwise_model
from socialsim.llm import LLM, CallCache
from socialsim.llm.structured import grammar_schema, parse_model
from socialsim.schema import Dialogue, Strategy, Turn
from test_evaluate_metrics import dlg


@pytest.mark.parametrize(
    "first,second,outcome,consistent",
    [
        ("A", "B", "win", True),  # a preferred in both orders
        ("B", "A", "loss", True),
        ("tie", "tie", "tie", True),
        ("A", "A", "tie", False),  # the judge always picks position A: position bias, no winner
        ("B", "B", "tie", False),
        ("A", "tie", "tie", False),
        ("tie", "B", "tie", False),
        ("B", "tie", "tie", False),
        ("tie", "A", "tie", False),
    ],
)
def test_combine_orders(first, second, outcome, consistent):
    assert combine(first, second) == (outcome, consistent)


def test_rubric_text_is_the_field_descriptions():
    dims = dimensions(ESConvRubric)
    assert [d["name"] for d in dims] == ["fluency", "identification", "comforting", "suggestion", "overall"]
    assert (
        dims[1]["description"]
        == ESConvRubric.model_fields["identification"].annotation.model_fields["score"].description
    )
    assert [d["name"] for d in dimensions(ESCEvalRubric)] == [
        "fluency",
        "diversity",
        "empathy",
        "suggestion_effectiveness",
        "humanoid",
        "emotional_knowledge",
        "overall_preference",
    ]
    judge = Judge(llm=None, rubric="esc-eval")
    d = dlg("x", [("seeker", "I can't sleep.", None, 0), ("supporter", "How long?", Strategy.QUESTION, None)])
    prompt = judge.pointwise_messages(d)[1]["content"]
    for dim in dimensions(ESCEvalRubric):
        assert dim["description"] in prompt
    assert "Seeker: I can't sleep.\nSupporter: How long?" in prompt
    pair = judge.pairwise_messages(d, d)[1]["content"]
    assert "Conversation A:" in pair and "Conversation B:" in pair and '"winner"' in pair


def test_rubric_models_parse_and_constrain():
    schema = grammar_schema(ESConvRubric, max_string=50)
    assert schema["properties"]["overall"]["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    assert schema["properties"]["overall"]["required"] == ["reason", "score"]
    good = {k: {"reason": "ok", "score": 4} for k in ("fluency", "identification", "comforting", "suggestion")}
    good["overall"] = {"reason": "fine", "score": 2}
    v = parse_model(ESConvRubric, "```json\n" + json.dumps(good) + "\n```")
    assert v.overall.score == 2
    with pytest.raises(ValueError, match="overall.score"):
        parse_model(ESConvRubric, json.dumps({**good, "overall": {"reason": "x", "score": 9}}))
    pm = pairwise_model(ESConvRubric)
    pschema = grammar_schema(pm)
    assert pschema["properties"]["comforting"]["properties"]["winner"]["enum"] == ["A", "B", "tie"]
    verdict = parse_model(pm, json.dumps({k: {"reason": "r", "winner": "tie"} for k in good}))
    assert verdict.model_dump()["fluency"]["winner"] == "tie"


def test_transcript_cut_in_the_middle():
    turns = [
        Turn(speaker="seeker" if i % 2 == 0 else "supporter", text=f"utterance {i} " + "x" * 80) for i in range(40)
    ]
    d = Dialogue(id="long", persona_id="p", backend="b", model="m", seed=0, turns=turns)
    t = transcript(d, 1000)
    assert len(t) <= 1000
    assert t.startswith("Seeker: utterance 0 ") and "utterance 39" in t
    assert "utterances omitted ...]" in t
    assert transcript(d, 100_000).count("\n") == 39


def test_templates_can_be_overridden(tmp_path):
    (tmp_path / "judge_system.j2").write_text("Be brief.")
    assert JudgePrompts(tmp_path).render("judge_system.j2") == "Be brief."
    assert "Rate the supporter" in JudgePrompts(tmp_path).render("judge_pointwise.j2", transcript="t", dimensions=[])


def test_make_pairs_prefers_same_problem():
    a = [(None, "grief"), (None, "job crisis")]
    b = [(None, "job crisis"), (None, "grief"), (None, None)]
    pairs = dict(make_pairs(a, b, 5, seed=1))
    assert pairs == {0: 1, 1: 0}


def test_summaries():
    pts = [
        PointwiseResult("c", "1", "esconv", scores={"overall": 4, "fluency": 5}),
        PointwiseResult("c", "2", "esconv", scores={"overall": 2, "fluency": 5}),
        PointwiseResult("c", "3", "esconv", error="unparseable", raw="{"),
    ]
    s = pointwise_summary(pts)["c"]
    assert s["judged"] == 3 and s["failed"] == 1
    assert s["dimensions"]["overall"] == {"counts": [0, 1, 0, 1, 0], "mean": 3.0, "n": 2}
    prs = [
        PairwiseResult("esconv", "a", "1", "b", "1", outcome={"overall": "win"}, consistent={"overall": True}),
        PairwiseResult("esconv", "a", "2", "b", "2", outcome={"overall": "tie"}, consistent={"overall": False}),
        PairwiseResult("esconv", "a", "3", "b", "3", error="order ba: unparseable"),
    ]
    p = pairwise_summary(prs)
    assert p["pairs"] == 3 and p["failed"] == 1 and p["label"] == "a vs b"
    assert p["dimensions"]["overall"] == {"win": 1, "tie": 1, "loss": 0, "inconsistent": 1}


@pytest.mark.slow
def test_judge_end_to_end_on_the_embedded_model(local_backend, tmp_path):
    """Two short dialogues scored pointwise, one pair judged in both orders, on SmolLM2-135M; then
    the same run again from the cache; then an impossible token budget to show unparseable verdicts
    are retried and reported."""
    good = dlg(
        "good",
        [
            ("seeker", "I lost my job last week and I feel useless.", None, 0),
            ("supporter", "I'm so sorry. Losing a job hurts. What happened?", Strategy.QUESTION, None),
        ],
    )
    poor = dlg(
        "poor",
        [
            ("seeker", "My sister stopped talking to me.", None, 0),
            ("supporter", "Whatever. Move on.", Strategy.SUGGESTION, None),
        ],
        problem="problems with friends",
    )
    llm = LLM(local_backend, cache=CallCache(tmp_path / "calls.sqlite"), concurrency=1)
    judge = Judge(llm, "esconv", reason_chars=60, max_tokens=400, transcript_chars=600)
    items = [("sim", good), ("ref", poor)]
    pairs = [(("sim", good), ("ref", poor))]
    res = run_judge(judge, items, pairs, progress=True)
    names = [d["name"] for d in dimensions(ESConvRubric)]
    assert len(res.pointwise) == 2 and len(res.pairwise) == 1
    for r in res.pointwise:
        assert r.error is None, (r.error, r.raw)
        assert list(r.scores) == names and all(1 <= v <= 5 for v in r.scores.values())
        assert all(isinstance(x, str) for x in r.reasons.values())
    p = res.pairwise[0]
    assert p.error is None, (p.error, p.raw)
    assert set(p.first) == set(p.second) == set(names)
    assert all(v in ("A", "B", "tie") for v in [*p.first.values(), *p.second.values()])
    for n in names:  # the outcome is exactly the order-swap combination of the two real verdicts
        assert (p.outcome[n], p.consistent[n]) == combine(p.first[n], p.second[n])
    assert res.stats["calls"] >= 4 and res.stats["cached_calls"] == 0

    again = run_judge(judge, items, pairs, progress=False)
    assert [r.scores for r in again.pointwise] == [r.scores for r in res.pointwise]
    assert again.pairwise[0].outcome == p.outcome
    assert llm.stats.cached >= 4  # every call of the second run came from the cache

    starved = Judge(llm, "esconv", max_tokens=6, attempts=2, transcript_chars=300)
    bad = run_judge(starved, [("sim", good)], progress=False)
    r = bad.pointwise[0]
    assert r.scores is None and r.calls == 2
    assert "unparseable after 2 attempts" in r.error and r.raw  # reported with the raw output, not dropped
    llm.close()
