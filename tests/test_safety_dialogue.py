"""Safety as a label in simulation: seeker turns carry the safety layer's tier (``safety_tier``,
``safety_stage``, ``safety_score``) and ``risk``; a protocol-tier seeker turn gets the fixed protocol reply,
a check_in-tier one a normal reply with the check-in question. The LLM here is the load target (a stand-in
that answers any request quickly), told to give the seeker one line: a crisis message. The labels come from the
real rule stage (and the real learned stage where the simulation's default layer has it)."""

import asyncio

from conftest import persona_dict
from socialsim.llm import LLM, make_backend
from socialsim.safety import Protocol, SafetyLayer
from socialsim.schema import Dialogue, Persona, Strategy
from socialsim.simulate import DialogueConfig, simulate_dialogue


# the seeker lines the load target is told to give are not on the persona's card: a line that copies the card is
# rejected as a recitation and never kept (the turn would get the fixed line instead)
def _persona(surface="Everything feels dark since the divorce.", locale="en-GB"):
    return Persona.model_validate(
        persona_dict(
            id="t-crisis",
            name="Ruth",
            locale=locale,
            problem_type="divorce",
            emotion_type="hopelessness",
            situation="My marriage ended in March and the house is empty.",
            disclosure={
                "surface": surface,
                "context": "My husband left in March and I had to sell the house.",
                "core": "I believe nobody would care if I was gone.",
            },
        )
    )


def _run(target, persona=None, layer=None, **cfg):
    async def go():
        llm = LLM(make_backend("openai", base_url=target.base_url, model="lt"), concurrency=4)
        try:
            return await simulate_dialogue(
                llm,
                persona or _persona(),
                seed=1,
                dialogue_id="safe",
                config=DialogueConfig(max_turns=3, **cfg),
                safety=layer,
            )
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_flagged_seeker_turn_gets_protocol(load_target):
    d = _run(load_target("--latency", "0.01", "--seeker-line", "I don't want to be alive anymore."))
    assert d.status == "ok", d.failure_reason
    first, reply = d.turns[0], d.turns[1]
    assert first.speaker == "seeker" and first.text == "I don't want to be alive anymore."
    assert first.risk == "suicide" and first.risk_reason == "dont-want-to-live"
    assert first.safety_tier == "protocol" and first.safety_stage == "rules"
    assert reply.risk_reason == "protocol:suicide"
    assert reply.strategy is Strategy.QUESTION and reply.thought is not None
    assert "Samaritans" in reply.text and "116 123" in reply.text and "999" in reply.text  # persona locale en-GB
    assert reply.usage.completion_tokens == 0  # fixed text, not model output
    for t in d.turns:
        if t.speaker == "seeker":
            assert t.risk is not None and t.safety_tier is not None and t.safety_stage is not None
            assert (t.risk != "none") == (t.safety_tier == "protocol")
            if t.risk == "none":
                assert t.risk_reason is None
        else:
            assert t.strategy is not None and t.thought is not None
    back = Dialogue.model_validate_json(d.model_dump_json())
    assert back.turns[0].risk == "suicide" and back.turns[1].risk_reason == "protocol:suicide"


def test_safety_off_leaves_turns_unlabelled(load_target):
    d = _run(load_target("--latency", "0.01"), safety=False)
    assert d.turns[0].risk is None
    assert d.turns[1].risk_reason is None and "Samaritans" not in d.turns[1].text


def test_check_in_tier_gets_a_normal_reply_with_the_question(load_target):
    """An ambiguous message, rules-only layer (so the tier does not depend on the learned model): the model's
    reply is kept and the check-in question, in the persona's language, follows it."""
    persona = _persona(locale="de-DE")
    line = "Honestly I feel like a burden to everyone."
    d = _run(load_target("--latency", "0.01", "--seeker-line", line), persona=persona,
             layer=SafetyLayer(source="simulate"))
    assert d.status == "ok", d.failure_reason
    question = Protocol().check_in_question("de-DE", "suicide")
    checked = 0
    for seeker, reply in zip(d.turns[::2], d.turns[1::2], strict=False):
        assert seeker.speaker == "seeker" and reply.speaker == "supporter"
        if seeker.safety_tier != "check_in":
            assert seeker.safety_tier == "none" and question not in reply.text and reply.risk_reason is None
            continue
        checked += 1
        assert (seeker.safety_stage, seeker.risk, seeker.risk_reason) == ("rules", "none", None)
        assert reply.risk_reason == "check_in:suicide" and reply.text.endswith(question)
        assert len(reply.text) > len(question) + 2 and reply.usage.completion_tokens > 0  # the model's reply first
        assert reply.realized_strategy is not None  # read from the model's reply (before the question was added)
    assert checked >= 1  # the seeker's line is ambiguous


def test_simulation_falls_back_to_the_rules_without_the_eval_extra(monkeypatch, capsys):
    import socialsim.safety.build as build
    from socialsim.simulate.dialogue import default_safety

    monkeypatch.setattr(build, "learned_unavailable", lambda path=None: "the [eval] extra is not installed")
    default_safety.cache_clear()
    try:
        layer = default_safety()
        again = default_safety()
    finally:
        default_safety.cache_clear()
    assert layer.learned is None and again is layer
    err = capsys.readouterr().err
    assert err.count("the [eval] extra is not installed") == 1  # said once per process
