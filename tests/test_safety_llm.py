"""The LLM stage of the safety layer: the classifier on the real embedded model for a few ambiguous
messages (slow), and how its verdicts and failures combine with the rules (it only raises a tier)."""

import asyncio

import pytest

from conftest import free_port
from socialsim.llm import LLM, make_backend
from socialsim.safety import LLMClassifier, RiskVerdict, SafetyEventLog, SafetyLayer
from socialsim.schema import Turn

AMBIGUOUS = ["I can't take it anymore.", "I just want it all to stop."]


@pytest.mark.slow
def test_classifier_on_embedded_model(local_backend, tmp_path):
    """Real verdicts from SmolLM2-135M: they parse, and the layer combines them as documented
    (a 135M model's judgement is not trusted for accuracy, only for the wiring)."""
    llm = LLM(local_backend)
    log = SafetyEventLog(tmp_path / "events.jsonl")
    layer = SafetyLayer(classifier=LLMClassifier(llm, max_tokens=80), event_log=log, source="test")

    async def go():
        out = []
        for text in AMBIGUOUS:
            out.append(await layer.assess([Turn(speaker="seeker", text=text)]))
        return out

    decisions = asyncio.run(go())
    events = log.read()
    assert len(events) == len(AMBIGUOUS)
    for d, e in zip(decisions, events, strict=True):
        assert d.rules.level == "ambiguous"
        if d.classifier_error is None:
            assert isinstance(d.verdict, RiskVerdict)
            # no learned stage: the ambiguous hit checks in; only a confident risk verdict raises it
            expected = "protocol" if d.verdict.risk != "none" and d.verdict.confidence == "high" else "check_in"
            assert d.tier == expected
            assert e["verdict"]["risk"] == d.verdict.risk
        else:
            assert d.tier == "check_in"  # fail closed, without a takeover
        assert e["action"] in ("protocol", "check_in") and e["tier"] == d.tier
        assert e["rule_level"] == "ambiguous" and e["rule"] == d.rule
        print(f"\n{AMBIGUOUS[decisions.index(d)]!r}: {d.as_dict()}")
    assert llm.stats.calls >= len(AMBIGUOUS)


def test_high_rule_hit_never_asks_the_classifier(load_target, tmp_path):
    """The classifier is not even called for a high hit, so it can never lower it."""
    target = load_target("--latency", "0.01")
    llm = LLM(make_backend("openai", base_url=target.base_url, model="lt"))
    layer = SafetyLayer(classifier=LLMClassifier(llm), classify="all")

    async def go():
        try:
            return await layer.assess([Turn(speaker="seeker", text="I want to kill myself")])
        finally:
            await llm.aclose()

    d = asyncio.run(go())
    assert d.tier == "protocol" and d.stage == "rules" and d.verdict is None
    assert target.stats()["requests"] == 0


def test_unusable_classifier_fails_closed(load_target, tmp_path):
    """A classifier whose output never parses (the load target answers structured requests with a
    SupporterThought, not a RiskVerdict), or whose server is down: the ambiguous message gets a check-in."""
    target = load_target("--latency", "0.01")
    log = SafetyEventLog(tmp_path / "events.jsonl")
    wrong = LLM(make_backend("openai", base_url=target.base_url, model="lt"))
    down = LLM(make_backend("openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="x"), max_attempts=1)

    async def go():
        out = []
        for llm in (wrong, down):
            layer = SafetyLayer(classifier=LLMClassifier(llm, attempts=2), event_log=log, source="test")
            out.append(await layer.assess([Turn(speaker="seeker", text=AMBIGUOUS[0])]))
            out.append(await layer.assess([Turn(speaker="seeker", text="I had a nice walk today.")]))
            await llm.aclose()
        return out

    bad_parse, benign1, bad_server, benign2 = asyncio.run(go())
    for d in (bad_parse, bad_server):
        assert d.tier == "check_in" and d.category == "suicide" and d.classifier_error and d.action == "check_in"
    assert "unparseable" in bad_parse.classifier_error
    assert benign1.tier == benign2.tier == "none"  # rules found nothing: the classifier is not asked
    events = log.read()
    assert len(events) == 2 and all(e["classifier_error"] for e in events)
    assert target.stats()["requests"] == 2
