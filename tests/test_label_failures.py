"""No silent label failures: a realized strategy or an appraisal that could not be made is recorded on the
turn (`Turn.label_failures`), its calls' tokens are counted, the run summary counts it per kind, and a
relabel never replaces a label with nothing. Faults are injected by the load target's answers (in process
or over HTTP): a stand-in for faults only."""

import asyncio
import json
import re

from conftest import persona_dict, run_cli
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import Seeker
from socialsim.agents.strategy_classifier import StrategyClassifier
from socialsim.llm import LLM
from socialsim.schema import LABEL_FAILURES, Dialogue, Persona, Strategy, Turn
from socialsim.simulate.dialogue import DialogueConfig, simulate_dialogue
from socialsim.testing.load_target import InstantBackend

NO_LABELS = ("RealizedStrategy", "SeekerAppraisal")


def _llm(unparseable_for=NO_LABELS) -> LLM:
    return LLM(InstantBackend(unparseable_for=unparseable_for), concurrency=1)


def test_failed_label_calls_are_returned_for_counting():
    llm = _llm()
    got, done = asyncio.run(StrategyClassifier(llm, attempts=2).classify("How are you?"))
    assert got is None and len(done) == 2 and all(c.usage.prompt_tokens == 100 for c in done)
    seeker = Seeker(llm, Persona.model_validate(persona_dict()), Prompts(), seed=0)
    hist = [Turn(speaker="seeker", text="I feel stuck."), Turn(speaker="supporter", text="What happened?")]
    appraisal, spent = asyncio.run(seeker.appraise(hist, turn_index=1))
    assert appraisal is None and len(spent) == 2


def test_dialogue_records_label_failures_and_counts_every_call():
    llm = _llm()
    p = Persona.model_validate(persona_dict())
    cfg = DialogueConfig(max_turns=2, realized_strategy="llm", disclosure="appraisal")  # appraisals, the LLM classifier
    d = asyncio.run(simulate_dialogue(llm, p, seed=3, dialogue_id="x", config=cfg))
    assert d.status == "ok"
    sup = [t for t in d.turns if t.speaker == "supporter"]
    answers = [t for t in d.turns[1:] if t.speaker == "seeker"]  # each seeker turn after a supporter reply
    assert sup and all(t.realized_strategy is None and t.label_failures == ["realized_strategy"] for t in sup)
    assert answers and all(t.appraisal is None and t.label_failures == ["appraisal"] for t in answers)
    assert d.turns[0].label_failures == []  # the opening has no appraisal to make
    # every call the backend answered, the failed label calls included, is on some turn
    assert sum(t.calls for t in d.turns) == llm.stats.calls
    assert d.usage.prompt_tokens == llm.stats.prompt_tokens == 100 * llm.stats.calls
    assert d.usage.completion_tokens == llm.stats.completion_tokens
    # the classifier's two attempts count on the supporter turn: compare with the same dialogue without it
    off = DialogueConfig(max_turns=2, realized_strategy="off", disclosure="appraisal")
    plain = asyncio.run(simulate_dialogue(_llm(), p, seed=3, dialogue_id="x", config=off))
    assert [t.text for t in plain.turns] == [t.text for t in d.turns]
    assert [t.calls + 2 * (t.speaker == "supporter") for t in plain.turns] == [t.calls for t in d.turns]
    assert all(t.label_failures == [] for t in plain.turns if t.speaker == "supporter")


def test_labels_that_validate_record_no_failure():
    d = asyncio.run(
        simulate_dialogue(_llm(()), Persona.model_validate(persona_dict()), seed=3, dialogue_id="x",
                          config=DialogueConfig(max_turns=2, realized_strategy="llm"))
    )
    assert d.status == "ok" and all(t.label_failures == [] for t in d.turns)
    assert all(t.realized_strategy is not None for t in d.turns if t.speaker == "supporter")


def test_label_failures_round_trip_and_reject_unknown_kinds():
    import pytest
    from pydantic import ValidationError

    t = Turn(speaker="supporter", text="Hi.", label_failures=["realized_strategy"])
    assert Turn.model_validate_json(t.model_dump_json()) == t
    assert Turn.model_validate({"speaker": "seeker", "text": "x"}).label_failures == []  # older corpora read
    with pytest.raises(ValidationError):
        Turn(speaker="seeker", text="x", label_failures=["mood"])
    assert LABEL_FAILURES == ("realized_strategy", "appraisal")


def test_run_summary_counts_label_failures_per_kind(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.01", *(x for name in NO_LABELS for x in ("--unparseable-for", name)))
    out = tmp_path / "run"
    r = run_cli(
        "simulate", "--personas", persona_file, "--n", "2", "--max-turns", "2", "--backend", "openai",
        "--base-url", t.base_url, "--model", "m", "--out", out, "-q", "--no-cache", "--realized-strategy", "llm",
        "--disclosure", "appraisal",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    ds = [Dialogue.model_validate_json(x) for x in (out / "dialogues.jsonl").read_text().splitlines()]
    turns = [x for d in ds for x in d.turns]
    want = {k: sum(k in x.label_failures for x in turns) for k in LABEL_FAILURES}
    assert want["realized_strategy"] == sum(x.speaker == "supporter" for x in turns) > 0
    assert want["appraisal"] == sum(x.speaker == "seeker" for x in turns) - len(ds) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["label_failures"] == want
    assert summary["calls"] == sum(x.calls for x in turns) == t.stats()["served"]
    assert summary["prompt_tokens"] == sum(x.usage.prompt_tokens for x in turns)
    shown = dict(re.findall(r"label_failures\.(\w+)\s*│\s*(\d+)", r.stdout))  # the summary table, a row per kind
    assert shown == {k: str(n) for k, n in want.items()}


def test_summary_counts_zero_label_failures(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.01")
    out = tmp_path / "run"
    r = run_cli(
        "simulate", "--personas", persona_file, "--n", "1", "--max-turns", "1", "--backend", "openai",
        "--base-url", t.base_url, "--model", "m", "--out", out, "-q", "--no-cache", "--realized-strategy", "llm",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["label_failures"] == {"realized_strategy": 0, "appraisal": 0}


def test_relabel_keeps_the_old_label_when_the_classifier_fails():
    from socialsim.evaluate.strategy_agreement import relabel_realized

    p = Persona.model_validate(persona_dict())
    turns = [
        Turn(speaker="seeker", text="I feel stuck."),
        Turn(speaker="supporter", text="What happened?", strategy=Strategy.QUESTION,
             realized_strategy=Strategy.QUESTION),
        Turn(speaker="seeker", text="Work.", label_failures=["appraisal"]),
        Turn(speaker="supporter", text="That sounds hard.", label_failures=["realized_strategy"]),
    ]
    d = Dialogue(id="d", persona_id=p.id, persona=p, backend="openai", model="m", seed=0, turns=turns)
    (got,), stats = relabel_realized(_llm(), [d])
    assert stats == {"labelled": 0, "unlabelled": 2, "kept": 1, "changed": 0}
    assert got.turns[1].realized_strategy is Strategy.QUESTION  # kept, never replaced with nothing
    assert got.turns[1].label_failures == ["realized_strategy"] and got.turns[3].label_failures == ["realized_strategy"]
    assert got.turns[2].label_failures == ["appraisal"]  # other kinds untouched
    # a classifier that works labels the replies and clears their failure
    (ok,), stats = relabel_realized(_llm(()), [got])
    assert stats["labelled"] == 2 and stats["unlabelled"] == 0
    assert all(t.realized_strategy is not None and t.label_failures == [] for t in ok.turns[1::2])
    assert ok.turns[2].label_failures == ["appraisal"]
