"""Issue #26 item 5, disclosure follows behaviour: two scripted supporters (`socialsim.agents.scripted`), one that
reflects, validates and asks open questions and one that advises and informs from the first reply. Driven through
the default policy with the real strategy recognizer and answered signal (no LLM: the seeker speaks its persona's
layer text), the first opens the core within 6 replies and the second never does. The script
(`scripts/scripted_supporters.py`) runs them against real seekers on an embedded model; here on SmolLM2, as a
wiring check."""

import importlib.util
from pathlib import Path

import pytest

from socialsim.agents.disclosure import Evidence, answered_score, make_policy
from socialsim.agents.scripted import ADVISING_REPLIES, LISTENING_REPLIES
from socialsim.personas.bank import default_personas, sample_personas
from socialsim.recognize.strategy import default_recognizer
from socialsim.schema import Persona

ROOT = Path(__file__).resolve().parents[1]


def core_reply(persona: Persona, replies, by: int = 6) -> int | None:
    """Reply (1-based) at which the default policy opens the core, the seeker saying its current layer's text."""
    policy = make_policy("observed")
    rec = default_recognizer()
    context = [("seeker", persona.disclosure.layer(0))]
    for k, (text, strategy) in enumerate(replies[:by], 1):
        pred = rec.predict_one(text, context)
        seeker_line = context[-1][1]
        layer = policy.observe(Evidence(probs=pred.as_json(), declared=strategy, layer=policy.layer,
                                        answered=answered_score(text, seeker_line)))  # fmt: skip
        if layer == 2:
            return k
        if policy.leaving() == "dismissed":
            return None
        context += [("supporter", text), ("seeker", persona.disclosure.layer(layer))]
    return None


def test_both_lists_are_long_enough_and_say_what_they_are_for():
    assert len(LISTENING_REPLIES) >= 6 and len(ADVISING_REPLIES) >= 6
    rec = default_recognizer()
    listen = {"Question", "Restatement or Paraphrasing", "Reflection of feelings", "Affirmation and Reassurance"}
    direct = {"Providing Suggestions", "Information"}
    got_l = [rec.predict_one(t).strategy.value for t, _ in LISTENING_REPLIES]
    got_a = [rec.predict_one(t).strategy.value for t, _ in ADVISING_REPLIES]
    assert all(s in listen for s in got_l), got_l
    assert sum(s in direct for s in got_a) >= len(got_a) - 1, got_a  # the greeting + advice may read as Others


def test_the_listening_list_opens_the_core_within_six_replies_and_the_advising_list_does_not():
    personas = sample_personas(default_personas(), 10, seed=31)
    listening = [core_reply(p, LISTENING_REPLIES) for p in personas]
    advising = [core_reply(p, ADVISING_REPLIES) for p in personas]
    assert all(k is not None and k <= 6 for k in listening), listening
    assert all(k is None for k in advising), advising


def _script():
    spec = importlib.util.spec_from_file_location("scripted_supporters", ROOT / "scripts" / "scripted_supporters.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_script_runs_on_smollm2(tmp_path, capsys):
    """The script end to end on the small embedded model (2 seekers, 4 replies): both supporters play every
    seeker and the summary is printed and written. SmolLM2 is too small to judge the contrast by; the advising
    list is dismissed whatever the seeker says, the listening list gets the core at least once."""
    out = tmp_path / "s.json"
    result = _script().main(["--model", "smollm2-135m", "--n", "2", "--max-turns", "4", "--json", str(out), "-q"])
    printed = capsys.readouterr().out
    assert "listening: core by reply 6 in" in printed and "advising: core by reply 6 in" in printed
    s = result["summary"]
    assert s["listening"]["dialogues"] == s["advising"]["dialogues"] == 2
    assert s["listening"]["failed"] == s["advising"]["failed"] == 0
    assert s["advising"]["core_by_reply_6"] == 0 and s["advising"]["end_reasons"] == {"seeker_dismissed": 2}
    assert s["listening"]["core_by_reply_6"] >= 1
    assert out.is_file() and len(result["dialogues"]["listening"]) == 2
