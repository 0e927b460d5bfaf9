"""Safety as a label in simulation: seeker turns carry ``risk``; a flagged seeker turn gets the fixed
protocol reply. The LLM here is the load target (a stand-in that answers any request quickly): the
seeker's replies never match this persona's story, so the seeker falls back to the persona's own
words, whose surface layer is a crisis message. The labels come from the real rule stage."""

import asyncio

from conftest import persona_dict
from socialsim.llm import LLM, make_backend
from socialsim.schema import Dialogue, Persona, Strategy
from socialsim.simulate import DialogueConfig, simulate_dialogue


def _persona():
    return Persona.model_validate(
        persona_dict(
            id="t-crisis",
            name="Ruth",
            locale="en-GB",
            problem_type="divorce",
            emotion_type="hopelessness",
            situation="My marriage ended in March and the house is empty.",
            disclosure={
                "surface": "I don't want to be alive anymore.",
                "context": "My husband left in March and I had to sell the house.",
                "core": "I believe nobody would care if I was gone.",
            },
        )
    )


def _run(target, **cfg):
    async def go():
        llm = LLM(make_backend("openai", base_url=target.base_url, model="lt"), concurrency=4)
        try:
            return await simulate_dialogue(
                llm, _persona(), seed=1, dialogue_id="safe", config=DialogueConfig(max_turns=3, **cfg)
            )
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_flagged_seeker_turn_gets_protocol(load_target):
    d = _run(load_target("--latency", "0.01"))
    assert d.status == "ok", d.failure_reason
    first, reply = d.turns[0], d.turns[1]
    assert first.speaker == "seeker" and first.text == "I don't want to be alive anymore."
    assert first.risk == "suicide" and first.risk_reason == "dont-want-to-live"
    assert reply.risk_reason == "protocol:suicide"
    assert reply.strategy is Strategy.QUESTION and reply.thought is not None
    assert "Samaritans" in reply.text and "116 123" in reply.text and "999" in reply.text  # persona locale en-GB
    assert reply.usage.completion_tokens == 0  # fixed text, not model output
    for t in d.turns:
        if t.speaker == "seeker":
            assert t.risk is not None
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
