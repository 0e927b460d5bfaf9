"""Filter: thresholds, reasons for every reject, judgements, and the command."""

import json
import os
import subprocess
import sys

import pytest

from socialsim.errors import UserError
from socialsim.evaluate.filter import (
    Thresholds,
    filter_corpus,
    load_judgements,
    parse_min_scores,
    reject_reasons,
    write_filtered,
)
from socialsim.schema import Strategy, read_dialogues, write_jsonl
from test_evaluate_metrics import corpus_of, dlg, tiny


def test_reject_reasons_per_threshold():
    d1, d2 = tiny().dialogues  # d1: 3 supporter turns, 3 strategies, layer 1; d2: failed, 1 turn
    assert reject_reasons(d1, Thresholds()) == []
    assert reject_reasons(d2, Thresholds()) == ["status failed (x)"]
    assert reject_reasons(d2, Thresholds(drop_failed=False)) == []
    assert reject_reasons(d1, Thresholds(min_turns=4)) == ["3 supporter turns < --min-turns 4"]
    assert reject_reasons(d1, Thresholds(max_turns=2)) == ["3 supporter turns > --max-turns 2"]
    assert reject_reasons(d1, Thresholds(min_strategies=4)) == ["3 distinct strategies < --min-strategies 4"]
    assert reject_reasons(d1, Thresholds(min_disclosure=2)) == ["disclosure layer 1 < --min-disclosure 2"]
    assert reject_reasons(d1, Thresholds(min_disclosure=1)) == []
    human = dlg("h", [("seeker", "hi", None, None), ("supporter", "hello", Strategy.OTHERS, None)])
    assert "no disclosure layers recorded" in reject_reasons(human, Thresholds(min_disclosure=1))[0]
    many = reject_reasons(d2, Thresholds(min_turns=2, min_strategies=2))
    assert len(many) == 3  # every failed check is reported, not just the first


def test_judge_score_thresholds():
    d1, _ = tiny().dialogues
    th = Thresholds(min_scores=parse_min_scores(["overall=4", "Emotional-Knowledge=3", "mean=3"]))
    assert th.min_scores == {"overall": 4.0, "emotional_knowledge": 3.0, "mean": 3.0}
    ok = {"scores": {"overall": 4, "emotional_knowledge": 5}}
    assert reject_reasons(d1, th, ok) == []
    low = {"scores": {"overall": 2, "emotional_knowledge": 3}}
    assert reject_reasons(d1, th, low) == [
        "judge overall 2 < --min-score overall=4",
        "judge mean 2.5 < --min-score mean=3",
    ]
    assert reject_reasons(d1, th, {"scores": None, "error": "unparseable"}) == ["no judge scores (unparseable)"]
    assert reject_reasons(d1, th, None) == ["no judge scores (not judged)"]
    for bad in ("overall", "overall=9", "warmth=3", "overall=high"):
        with pytest.raises(UserError, match="--min-score"):
            parse_min_scores([bad])


def test_filter_and_write(tmp_path):
    c = tiny()
    with pytest.raises(UserError, match="--judgements"):
        filter_corpus(c, Thresholds(min_scores={"overall": 3}))
    res = filter_corpus(c, Thresholds(min_turns=2))
    assert [d.id for d in res.kept] == ["d1"]
    assert res.rejects[0]["id"] == "d2" and res.rejects[0]["index"] == 1
    assert res.rejects[0]["reasons"] == ["status failed (x)", "1 supporter turns < --min-turns 2"]
    kept, rej = write_filtered(res, tmp_path / "kept.jsonl")
    assert [d.id for d in read_dialogues(kept)] == ["d1"]
    assert rej.name == "kept.rejects.jsonl"
    assert json.loads(rej.read_text())["reasons"][1].startswith("1 supporter turns")


def test_judgements_file(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text(
        json.dumps({"kind": "pointwise", "dialogue_id": "d1", "scores": {"overall": 5}})
        + "\n"
        + json.dumps({"kind": "pairwise", "a_id": "d1"})
        + "\n"
    )
    assert load_judgements(p) == {"d1": {"kind": "pointwise", "dialogue_id": "d1", "scores": {"overall": 5}}}
    p.write_text('{"kind": "pointwise", "scores": {}}\n')
    with pytest.raises(UserError, match="j.jsonl:1: field 'dialogue_id'"):
        load_judgements(p)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "socialsim.cli.evaluate", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "160"},
        timeout=300,
    )


def test_filter_command(tmp_path):
    src = tmp_path / "in.jsonl"
    c = corpus_of([*tiny().dialogues, dlg("d3", [("seeker", "a", None, 0), ("supporter", "b", None, None)])])
    write_jsonl(c.dialogues, src)
    judgements = tmp_path / "judgements.jsonl"
    judgements.write_text(
        json.dumps({"kind": "pointwise", "dialogue_id": "d1", "scores": {"overall": 5, "fluency": 4}})
        + "\n"
        + json.dumps({"kind": "pointwise", "dialogue_id": "d3", "scores": {"overall": 2, "fluency": 4}})
        + "\n"
    )
    out = tmp_path / "kept.jsonl"
    r = _cli("filter", src, "--out", out, "--judgements", judgements, "--min-score", "overall=4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [d.id for d in read_dialogues(out)] == ["d1"]
    rejects = [json.loads(x) for x in (tmp_path / "kept.rejects.jsonl").read_text().splitlines()]
    assert {x["id"]: x["reasons"] for x in rejects} == {
        "d2": ["status failed (x)", "no judge scores (not judged)"],
        "d3": ["judge overall 2 < --min-score overall=4"],
    }
    assert "kept" in r.stdout and "dropped" in r.stdout


def test_strategy_agreement_drops_dialogues_or_turns():
    q, r = Strategy.QUESTION, Strategy.REFLECTION
    agree = dlg("a", [("seeker", "hi", None, 0), ("supporter", "What happened?", q, None), ("seeker", "x", None, 1)])
    split = dlg("b", [("seeker", "hi", None, 0), ("supporter", "What happened?", q, None), ("seeker", "x", None, 1),
                      ("supporter", "You feel hurt.", r, None)])
    agree.turns[1].realized_strategy = q
    split.turns[1].realized_strategy = q
    split.turns[3].realized_strategy = Strategy.SUGGESTION
    c = corpus_of([agree, split])
    res = filter_corpus(c, Thresholds(strategy_agreement="dialogues"))
    assert [d.id for d in res.kept] == ["a"]
    assert "1 supporter turns with a realized strategy other" in res.rejects[0]["reasons"][0]
    assert res.reason_counts() == {"--strategy-agreement": 1}
    res = filter_corpus(c, Thresholds(strategy_agreement="turns"))
    assert [len(d.turns) for d in res.kept] == [3, 3]
    unlabelled = dlg("u", [("seeker", "hi", None, 0), ("supporter", "Hello", q, None)])
    assert "no realized strategies" in reject_reasons(unlabelled, Thresholds(strategy_agreement="dialogues"))[0]
    with pytest.raises(UserError, match="'turns' or 'dialogues'"):
        filter_corpus(c, Thresholds(strategy_agreement="some"))
