"""The strategy check (``simulate --strategy-check N``, on in ``demo``): a reply whose declared strategy the
recognizer finds improbable is rewritten, bounded; every try is kept on the turn and the run summary gives
first-try and final agreement and words per turn next to ESConv's. The calibration itself is reproduced in
``test_recognize.py`` (it shares that file's scoring of ESConv valid). The dialogue test uses the load target's
in-process answers with the supporter's replies fixed (a stand-in for the model, to make the off-strategy draft
certain); the real recognizer and check judge them."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import ESCONV_DIR, persona_dict
from socialsim.errors import ParamError
from socialsim.llm import LLM
from socialsim.llm.base import Completion
from socialsim.recognize.strategy_check import StrategyCheck, default_check, default_check_path, threshold_for
from socialsim.schema import BackendConfig, Persona, SimulationConfig, Strategy, Usage
from socialsim.simulate.dialogue import DialogueConfig, simulate_dialogue
from socialsim.simulate.engine import turn_quality
from socialsim.testing.load_target import InstantBackend

ADVICE = "Have you tried going to the gym? Exercise helps a lot with stress."
REFLECTION = "It sounds like you feel really lonely and hurt since she left."
THOUGHT = {"emotion": "sad", "intensity": 3, "cause": "Her partner left her.", "need": "To feel heard.",
           "strategy": "Reflection of feelings", "rationale": "She needs her feelings named."}  # fmt: skip


class FixedReplies(InstantBackend):
    """The load target's answers, except the supporter's: every thought declares Reflection of feelings, a first
    draft is advice (``rewrites_fix`` False: every draft is), a rewrite the check asked for reflects."""

    def __init__(self, rewrites_fix: bool = True) -> None:
        super().__init__()
        self.rewrites_fix = rewrites_fix

    async def complete(self, req):
        last = req.messages[-1][1]
        usage = Usage(prompt_tokens=100, completion_tokens=20)
        if req.json_schema and "strategy" in json.dumps(req.json_schema) and "rationale" in json.dumps(req.json_schema):
            return Completion(text=json.dumps(THOUGHT), usage=usage)
        if last.startswith("Your private notes"):
            rewrite = "Your last draft read as" in last
            return Completion(text=REFLECTION if rewrite and self.rewrites_fix else ADVICE, usage=usage)
        return await super().complete(req)


def _dialogue(check: int, rewrites_fix: bool = True):
    llm = LLM(FixedReplies(rewrites_fix), concurrency=1)
    cfg = DialogueConfig(max_turns=1, strategy_check=check, safety=False)
    d = asyncio.run(simulate_dialogue(llm, Persona.model_validate(persona_dict()), seed=3, dialogue_id="x", config=cfg))
    return d, llm


def test_threshold_keeps_at_most_the_share_below_it():
    probs = [i / 100 for i in range(100)]
    t = threshold_for(probs, 0.10)
    assert t == 0.10 and sum(p < t for p in probs) == 10
    assert threshold_for([0.5] * 7, 0.10) == 0.5  # ties pass
    with pytest.raises(ValueError):
        threshold_for([])


def test_shipped_check_file_is_calibrated_on_valid_per_strategy():
    meta = json.loads(default_check_path().read_text())
    check = default_check()
    assert set(check.thresholds) == {s.value for s in Strategy}
    assert meta["calibrated_on"]["file"] == "valid.jsonl" and "CC BY-NC 4.0" in meta["calibrated_on"]["data"]
    assert all(0 < t < 1 for t in check.thresholds.values())
    assert all(row["fail_rate"] <= 0.10 for row in meta["per_strategy"].values())
    assert meta["human_fail_rate"] <= 0.10 and meta["n"] == 2722
    assert (ESCONV_DIR / "splits" / "valid.jsonl").is_file()
    assert 15 < meta["esconv_words"]["supporter"]["utterance"]["mean"] < 22


def test_passes_reads_the_declared_strategy_against_its_own_threshold():
    check = StrategyCheck({s.value: 0.2 for s in Strategy}, {})
    probs = {s.value: 0.0 for s in Strategy} | {"Question": 0.7, "Reflection of feelings": 0.19}
    assert check.passes(Strategy("Question"), probs)
    assert not check.passes(Strategy("Reflection of feelings"), probs)


def test_an_off_strategy_reply_is_rewritten_and_every_try_kept():
    d, llm = _dialogue(check=2)
    sup = next(t for t in d.turns if t.speaker == "supporter")
    assert sup.strategy == Strategy("Reflection of feelings")
    tries = sup.strategy_attempts
    assert [a.text for a in tries] == [ADVICE, REFLECTION]
    assert not tries[0].passed and tries[0].realized_strategy == Strategy("Providing Suggestions")
    assert tries[1].passed and tries[1].declared_prob > tries[0].declared_prob
    assert sup.text == REFLECTION and sup.realized_strategy == Strategy("Reflection of feelings")
    assert sum(t.calls for t in d.turns) == llm.stats.calls  # the rewrite's call is counted on the turn
    q = turn_quality(d)
    assert (q["realized_agree_first_try"], q["realized_agree"], q["strategy_rewrites"]) == (0, 1, 1)


def test_rewrites_are_bounded_and_the_likeliest_try_is_kept():
    d, _ = _dialogue(check=2, rewrites_fix=False)
    sup = next(t for t in d.turns if t.speaker == "supporter")
    assert len(sup.strategy_attempts) == 3 and not any(a.passed for a in sup.strategy_attempts)
    assert sup.text == ADVICE and turn_quality(d)["strategy_rewrites"] == 2


def test_off_by_default_and_then_no_tries_are_stored():
    d, _ = _dialogue(check=0)
    sup = next(t for t in d.turns if t.speaker == "supporter")
    assert sup.text == ADVICE and sup.strategy_attempts == [] and sup.realized_strategy is not None
    q = turn_quality(d)
    assert q["realized_agree_first_try"] == q["realized_agree"] == 0 and q["strategy_rewrites"] == 0


def test_the_check_needs_the_recognizer():
    with pytest.raises(ValueError, match="recognizer"):
        DialogueConfig(strategy_check=1, realized_strategy="llm")
    from socialsim.simulate.run import start_run

    with pytest.raises(ParamError, match="strategy_check"):
        start_run(BackendConfig(kind="local", model="smollm2-135m"), None, out="/nonexistent/x",  # type: ignore[arg-type]
                  options={"n": 1, "strategy_check": 1, "realized_strategy": "off"})


def test_off_keeps_old_run_hashes():
    base = dict(personas="default", personas_sha256="x", n=1)
    assert SimulationConfig(**base).config_hash() == SimulationConfig(**base, strategy_check=0).config_hash()
    assert SimulationConfig(**base).config_hash() != SimulationConfig(**base, strategy_check=2).config_hash()


def test_replies_are_cut_to_esconv_length_by_strategy():
    from socialsim.agents.supporter import shorten

    long = "I'm so sorry for your loss. That is a lot to carry. It's okay to feel numb. How are you coping?"
    assert shorten(long, Strategy("Reflection of feelings")) == "I'm so sorry for your loss. That is a lot to carry."
    assert shorten(long, Strategy("Providing Suggestions")).endswith("It's okay to feel numb.")  # one more
    assert shorten(long, Strategy("Question")) == "I'm so sorry for your loss. How are you coping?"  # the question
    assert shorten("Short. Reply?", Strategy("Question")) == "Short. Reply?"


def test_the_cut_is_recorded_on_the_turn():
    class Long(FixedReplies):
        async def complete(self, req):
            c = await super().complete(req)
            if req.messages[-1][1].startswith("Your private notes"):
                return Completion(text=REFLECTION + " I am here for you. Take your time.", usage=c.usage)
            return c

    llm = LLM(Long(), concurrency=1)
    cfg = DialogueConfig(max_turns=1, safety=False)
    d = asyncio.run(simulate_dialogue(llm, Persona.model_validate(persona_dict()), seed=3, dialogue_id="x", config=cfg))
    sup = next(t for t in d.turns if t.speaker == "supporter")
    assert sup.text == REFLECTION + " I am here for you." and sup.cut_words == 3
