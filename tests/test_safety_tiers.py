"""The safety layer's three tiers (none, check_in, protocol) and the end of the follow-up loop.

The follow-up table: answers a seeker might give right after a protocol reply or a check-in question,
written for this test in chat style (lowercase, typos, emoji), at least 40 of each kind. Each goes through
`SafetyLayer.assess` (not only the answer reader) after a protocol reply and after a check-in, both
recognised from the supporter turn's ``risk_reason`` and from its text alone (a client that keeps no
socialsim fields). The combination of the stages is tested with stand-ins for the learned stage and the LLM
classifier (tier and fault injection); the real learned model's figures are measured elsewhere."""

import asyncio
from dataclasses import dataclass, field

import pytest

from socialsim.errors import StructuredOutputError
from socialsim.safety import (
    TIERS,
    FollowupReader,
    Protocol,
    RiskVerdict,
    SafetyEventLog,
    SafetyLayer,
    label_seeker_turn,
)
from socialsim.schema import Dialogue, Turn

CONFIRM = [
    "yes", "yeah", "yes I do", "I still want to", "I have the pills here", "kind of", "sometimes", "a little",
    "maybe", "idk, maybe", "I'm not safe", "I don't feel safe", "not really safe", "I can't promise that",
    "I think about it every day", "yeah... a lot lately", "yep", "honestly? yes", "kinda 😔",
    "sometimes, mostly at night", "ya", "i do", "i did, last night", "mhm", "yeah i still think about it",
    "i have a plan", "no, im not safe", "idk if im safe tbh", "not sure i can keep myself safe tonight",
    "i cant stop thinking about it", "more than i'd like to admit", "probably yeah", "i guess so",
    "yes. the pills are right next to me", "sort of? i dunno", "I don't know anymore", "not gonna lie, yeah",
    "every night tbh", "yes, i wish i could just not wake up", "i have been, yeah", "on and off for a few weeks",
    "i'm not okay", "honestly not great, and no im not safe", "yeahh", "yess i do", "lowkey yes",
    "I think about it all the time", "it wont stop", "i tried last week", "a bit... it comes and goes",
    "no... sometimes though", "not really okay tbh", "i cant promise i'll be safe", "YES",
    "i mean... kinda yeah", "i still do", "a lil 🥲", "dont think im safe rn", "i'm not sure",
    "honestly i dont want to be here anymore",
]  # fmt: skip
DENY = [
    "no", "nope", "I'm safe", "I'm fine, really", "no, I'm okay now", "I'm not suicidal, I was exaggerating",
    "not really, I just meant I'm tired", "I'd never do that", "no thoughts like that", "I'm safe, thanks for asking",
    "nah", "no no, nothing like that", "noo i'm ok lol", "no im not", "i'm good, promise", "not at all",
    "of course not!", "i would never hurt myself", "no, i was just venting", "i didnt mean it like that",
    "that came out wrong, im fine", "no i dont want to die, i just hate my job", "im safe, dont worry",
    "no, it was a figure of speech", "nope, just tired 😅", "im okay, just had a rough day", "i feel safe",
    "not suicidal, just stressed about exams", "nah i'm alright", "no way, i love my life too much",
    "definitely not", "no, i wasn't being serious", "i was joking lol", "im not going to do anything",
    "no plans like that at all", "never, i promise", "i'm doing better now, really",
    "No, I'm not thinking about that", "i dont", "nope nope. i'm fine", "honestly no, i'm safe",
    "no i'd never, i have my kids", "i'm okay. i wasn't being literal", "all good here, thanks",
    "haha no, it's just an expression", "no i promise", "im not, i was being dramatic",
    "i dont really think about it like that", "I'm not okay but I'm not suicidal", "Nooo 🙂 I'm fine",
    "i got rid of the pills last year", "yeah im safe, dont worry",
]  # fmt: skip
OTHER = [
    "I have an exam tomorrow", "can we talk about my job", "what do you mean", "my boss keeps giving me extra shifts",
    "do you think i should text my ex", "i had pasta for dinner", "my cat knocked over my plant lol", "ok",
    "thanks for listening", "i need help writing an email to my landlord", "why do you ask?",
    "how do i tell my parents i failed the class", "the weather is so gloomy today",
    "i just moved to a new city and dont know anyone", "can you help me plan my week",
    "my sister is getting married next month", "wdym", "huh?", "i started a new job on monday",
    "my roommate keeps eating my food", "what should i cook tonight", "i want to talk about my girlfriend",
    "the bus was late again", "i have a presentation on friday and im nervous", "lol ok",
    "can we change the subject", "my dog is sick and the vet is expensive",
    "i dunno what to get my mom for her birthday", "did you see the game last night", "my grades are slipping",
    "work was chaotic today", "i think i need a new hobby", "how long does it take to get over a breakup",
    "my therapist is on vacation", "who are you?", "i'm hungry", "tell me a joke", "i'm so bored at work",
    "whats a good book to read", "my mom called me today", "i have to finish my essay tonight",
    "where do you get your info from", "my friend forgot my birthday", "im at the library rn",
    "sometimes my manager is really rude to me", "i have a lot of homework", "lately work has been crazy",
]  # fmt: skip

CRISIS = "I want to kill myself"
AMBIGUOUS = "I feel like a burden to everyone."


def _run(coro):
    return asyncio.run(coro)


def _protocol_turn(layer: SafetyLayer, *, fields: bool) -> Turn:
    turn = layer.protocol_turn(layer.assess_rules([Turn(speaker="seeker", text=CRISIS)]))
    return turn if fields else Turn(speaker="supporter", text=turn.text)  # a client's history keeps the text only


def _check_in_turn(layer: SafetyLayer, *, fields: bool) -> Turn:
    decision = layer.assess_rules([Turn(speaker="seeker", text=AMBIGUOUS)])
    assert decision.tier == "check_in"
    text = layer.with_check_in("That sounds really heavy to carry.", decision)
    return Turn(speaker="supporter", text=text, risk_reason="check_in:suicide" if fields else None)


@pytest.fixture(scope="module")
def layer():
    return SafetyLayer(source="test")


def test_table_sizes_and_no_overlap():
    for answers in (CONFIRM, DENY, OTHER):
        assert len(answers) >= 40 and len(set(answers)) == len(answers)
    assert not (set(CONFIRM) & set(DENY)) and not (set(CONFIRM) & set(OTHER)) and not (set(DENY) & set(OTHER))


@pytest.mark.parametrize("after", ["protocol", "check_in"])
@pytest.mark.parametrize("fields", [True, False], ids=["risk_reason", "text_only"])
def test_followup_table_through_the_layer(layer, after, fields):
    """Every answer, after a protocol reply and after a check-in: confirm -> protocol (after a protocol
    reply its follow-up reply), deny -> none (a normal reply), other -> the stages as a new message."""
    reply = _protocol_turn(layer, fields=fields) if after == "protocol" else _check_in_turn(layer, fields=fields)
    first = [Turn(speaker="seeker", text=CRISIS if after == "protocol" else AMBIGUOUS), reply]
    wrong = []
    for want, answers in (("confirm", CONFIRM), ("deny", DENY), ("other", OTHER)):
        for text in answers:
            d = _run(layer.assess([*first, Turn(speaker="seeker", text=text)], log=False))
            ok = d.after == after and d.answer == want
            if want == "confirm":
                ok = ok and d.tier == "protocol" and d.followup == (after == "protocol") and d.category == "suicide"
                ok = ok and d.stage in ("followup", "rules")
            elif want == "deny":
                ok = ok and d.tier == "none" and d.stage == "followup" and d.action == "answer_denied"
            else:
                ok = ok and d.tier == "none" and d.stage == "none"
            if not ok:
                wrong.append((want, text, d.answer, d.tier, d.stage))
    n = len(CONFIRM) + len(DENY) + len(OTHER)
    print(f"\nafter {after} ({'risk_reason' if fields else 'text only'}): {n - len(wrong)}/{n} answers as expected")
    assert not wrong, wrong


def test_confirm_after_protocol_gets_the_followup_reply_and_after_check_in_the_first(layer):
    proto = [Turn(speaker="seeker", text=CRISIS), _protocol_turn(layer, fields=True)]
    d = _run(layer.assess([*proto, Turn(speaker="seeker", text="yeah i still want to")], log=False))
    assert layer.protocol_reply(d).startswith("Thank you for being honest with me")
    d2 = _run(layer.assess([*proto, Turn(speaker="seeker", text="no. but i will kill myself tonight")], log=False))
    assert d2.answer == "deny" and d2.tier == "protocol" and d2.stage == "rules" and d2.followup  # high hit wins
    check = [Turn(speaker="seeker", text=AMBIGUOUS), _check_in_turn(layer, fields=False)]
    d3 = _run(layer.assess([*check, Turn(speaker="seeker", text="kind of")], log=False))
    assert d3.tier == "protocol" and not d3.followup and d3.stage == "followup"
    assert layer.protocol_reply(d3).startswith("Thank you for telling me this")


def test_answer_reader_is_an_ordered_pattern_file():
    r = FollowupReader()
    assert r.explain("no, im not safe") == ("confirm", "negated_safety")
    assert r.explain("I'm not okay but I'm not suicidal") == ("deny", "denial")
    assert r.explain("i'm not okay") == ("confirm", "distress")
    assert r.explain("i dont think about it") == ("deny", "denial")  # negation cue: not the "think about it" yes
    assert r.explain("no one would miss me") == ("other", None)  # not a "no": goes through the stages
    assert r.explain("I have an exam tomorrow") == ("other", None)  # the old reader's "i have" was a yes


class FakeLearned:
    """A stand-in for `LearnedStage`: ``tier_of(message, context)`` decides; every call is recorded."""

    def __init__(self, tier_of, score=0.5, category="suicide", fail=False):
        self.tier_of, self.value, self.category, self.fail = tier_of, score, category, fail
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, message, context=()):
        self.calls.append((message, list(context)))
        if self.fail:
            raise RuntimeError("embedding model crashed")
        return Score(self.value, self.category, self.tier_of(message, list(context)))


@dataclass(frozen=True)
class Score:
    score: float
    category: str
    tier: str
    probs: dict = field(default_factory=dict)

    def as_dict(self):
        return {"score": self.score, "category": self.category, "tier": self.tier}


def _gives_things_away(message, context):
    return "protocol" if any("giving my things away" in t.lower() for t in [message, *context]) else "none"


def test_no_loop_after_protocol_even_when_the_context_is_risky(tmp_path):
    """'I'm safe', then 'I'm fine, really', then 'I have an exam tomorrow': never a protocol or check-in
    again. The stand-in learned stage says protocol whenever 'giving my things away' is in the message or its
    context (an indirect message the rules do not catch),
    so the test fails if the context before the denial were still scored."""
    log = SafetyEventLog(tmp_path / "events.jsonl")
    learned = FakeLearned(_gives_things_away, score=0.97)
    layer = SafetyLayer(learned=learned, event_log=log, source="test")
    hist = [Turn(speaker="seeker", text="I've been giving my things away to friends this week.")]
    d = _run(layer.assess(hist))
    assert d.tier == "protocol" and d.stage == "learned" and d.score == 0.97
    hist.append(layer.protocol_turn(d))
    for text in ("I'm safe", "I'm fine, really", "I have an exam tomorrow", "and my mom is visiting on sunday"):
        hist.append(Turn(speaker="seeker", text=text))
        d = _run(layer.assess(hist))
        assert d.tier == "none" and not d.followup, (text, d.as_dict())
        hist.append(Turn(speaker="supporter", text="That sounds like a lot. How are you feeling about it?"))
    assert learned.calls[1] == ("I'm safe", [])  # the denial is scored on its own
    assert learned.calls[2] == ("I'm fine, really", [])  # the context starts after the denial
    assert learned.calls[3][1] == ["I'm fine, really"]
    events = log.read()
    assert [e["action"] for e in events] == ["protocol", "answer_denied"]
    assert events[0]["tier"] == "protocol" and events[0]["stage"] == "learned" and events[0]["score"] == 0.97


def test_no_loop_after_check_in_rules_only(layer):
    hist = [Turn(speaker="seeker", text=AMBIGUOUS)]
    d = _run(layer.assess(hist, log=False))
    assert d.tier == "check_in" and d.stage == "rules" and d.category == "suicide"
    hist.append(Turn(speaker="supporter", text=layer.with_check_in("I hear you.", d), risk_reason="check_in:suicide"))
    for text in ("no, I'm okay now", "I'm fine, really", "I have an exam tomorrow"):
        hist.append(Turn(speaker="seeker", text=text))
        d = _run(layer.assess(hist, log=False))
        assert d.tier == "none", (text, d.as_dict())
        hist.append(Turn(speaker="supporter", text="Good luck with it. What's on your mind?"))


def test_denial_with_protocol_level_risk_still_gets_the_protocol():
    learned = FakeLearned(lambda m, c: "protocol" if "pills" in m else "none", score=0.99)
    layer = SafetyLayer(learned=learned)
    hist = [Turn(speaker="seeker", text=CRISIS), _protocol_turn(layer, fields=True)]
    d = _run(layer.assess([*hist, Turn(speaker="seeker", text="no, i'm fine. the pills are in the drawer")], log=False))
    assert d.answer == "deny" and d.tier == "protocol" and d.stage == "learned" and d.followup


@pytest.mark.parametrize(
    ("text", "learned_tier", "tier", "stage"),
    [
        ("My sister's wedding was lovely.", "none", "none", "none"),
        ("I gave my guitar away, I won't need it.", "check_in", "check_in", "learned"),
        ("I gave my guitar away, I won't need it.", "protocol", "protocol", "learned"),
        (AMBIGUOUS, "none", "none", "none"),  # an ambiguous hit the learned stage scores none: no check-in
        (AMBIGUOUS, "check_in", "check_in", "learned"),
        (CRISIS, "none", "protocol", "rules"),  # a high hit: the learned stage is not asked
    ],
)
def test_tiers_with_a_learned_stage(tmp_path, text, learned_tier, tier, stage):
    log = SafetyEventLog(tmp_path / "events.jsonl")
    learned = FakeLearned(lambda m, c: learned_tier, score=0.7, category="self_harm")
    layer = SafetyLayer(learned=learned, event_log=log, source="test")
    d = _run(layer.assess([Turn(speaker="seeker", text=text)]))
    assert (d.tier, d.stage) == (tier, stage)
    assert d.tier in TIERS and d.flagged == (tier == "protocol")
    if stage == "rules":
        assert learned.calls == [] and d.score is None and d.category == "suicide"
    else:
        assert d.score == 0.7 and d.learned.tier == learned_tier
        assert d.category == ("self_harm" if tier != "none" else "none")
    events = log.read()
    if tier != "none" or d.rules.level != "none":
        (e,) = events
        assert (e["tier"], e["stage"]) == (tier, stage)
        assert e["action"] == {"protocol": "protocol", "check_in": "check_in", "none": "cleared_by_learned"}[tier]
    else:
        assert events == []


def test_learned_stage_failure_checks_in_without_a_takeover(tmp_path):
    log = SafetyEventLog(tmp_path / "events.jsonl")
    layer = SafetyLayer(learned=FakeLearned(None, fail=True), event_log=log, source="test")
    d = _run(layer.assess([Turn(speaker="seeker", text="I had a nice walk in the park today.")]))
    assert d.tier == "check_in" and d.stage == "learned" and d.category == "suicide" and "crashed" in d.learned_error
    d2 = _run(layer.assess([Turn(speaker="seeker", text="I can't take it anymore.")]))
    assert d2.tier == "check_in" and d2.category == d2.rules.category
    # right after the seeker denied, a failing stage does not ask the question again
    hist = [
        Turn(speaker="seeker", text=AMBIGUOUS),
        _check_in_turn(layer, fields=True),
        Turn(speaker="seeker", text="no"),
    ]
    d3 = _run(layer.assess(hist))
    assert d3.tier == "none" and d3.learned_error
    events = log.read()
    assert [e["action"] for e in events] == ["check_in", "check_in", "answer_denied"]
    assert all(e["learned_error"] for e in events)


def test_without_a_learned_stage_an_ambiguous_hit_checks_in(layer):
    d = _run(layer.assess([Turn(speaker="seeker", text="I just want it all to stop.")], log=False))
    assert d.tier == "check_in" and d.stage == "rules" and d.score is None and not d.flagged
    assert layer.check_in_question(d) in layer.with_check_in("I'm here.", d)


class FakeClassifier:
    def __init__(self, verdict=None, fail=False):
        self.verdict, self.fail, self.calls = verdict, fail, 0

    async def classify(self, message, context=None):
        self.calls += 1
        if self.fail:
            raise StructuredOutputError("unparseable verdict")
        return self.verdict


@pytest.mark.parametrize(
    ("verdict", "text", "learned_tier", "tier", "stage"),
    [
        (("suicide", "high"), AMBIGUOUS, "none", "protocol", "classifier"),
        (("self_harm", "medium"), AMBIGUOUS, "none", "check_in", "classifier"),
        (("none", "high"), AMBIGUOUS, "check_in", "check_in", "learned"),  # the classifier never lowers
        (("suicide", "low"), AMBIGUOUS, "check_in", "check_in", "learned"),
        (None, AMBIGUOUS, "none", "check_in", "rules"),  # failure on an ambiguous message: check-in
        (None, "I had a nice walk today.", "none", "none", "none"),  # scope "all": failure on a plain one
    ],
)
def test_classifier_only_raises(verdict, text, learned_tier, tier, stage):
    clf = FakeClassifier(RiskVerdict(risk=verdict[0], confidence=verdict[1], reason="r") if verdict else None)
    clf.fail = verdict is None
    layer = SafetyLayer(learned=FakeLearned(lambda m, c: learned_tier), classifier=clf, classify="all")
    d = _run(layer.assess([Turn(speaker="seeker", text=text)], log=False))
    assert (d.tier, d.stage) == (tier, stage) and clf.calls == 1
    assert (d.classifier_error is not None) == (verdict is None)


def test_classifier_not_asked_about_answers():
    clf = FakeClassifier(RiskVerdict(risk="suicide", confidence="high", reason="r"))
    layer = SafetyLayer(classifier=clf, classify="all")
    hist = [Turn(speaker="seeker", text=AMBIGUOUS), _check_in_turn(layer, fields=True)]
    d = _run(layer.assess([*hist, Turn(speaker="seeker", text="no, i'm okay")], log=False))
    assert d.tier == "none" and clf.calls == 0


@pytest.mark.parametrize(
    ("locale", "start", "note"),
    [
        (None, "Can I ask you something directly", None),
        ("en-GB", "Can I ask you something directly", None),
        ("de-AT", "Darf ich dich etwas direkt fragen", None),
        ("fr-CA", "Est-ce que je peux te poser une question directe", None),
        ("es-ES", "Can I ask you something directly", "(es)"),
    ],
)
def test_check_in_question_by_locale(locale, start, note):
    proto = Protocol()
    for cat in Protocol.CATEGORIES:
        q = proto.check_in_question(locale, cat)
        assert q.startswith(start) and q.count("?") >= 1
        assert (note in q) if note else "(" not in q
        reply = proto.with_check_in("That sounds exhausting.", cat, locale=locale)
        assert reply == f"That sounds exhausting.\n\n{q}"  # its own paragraph
        assert proto.identify(reply) == (cat, "check_in")
    suicide = proto.check_in_question(locale, "suicide")
    assert len({proto.check_in_question(locale, c) for c in Protocol.CATEGORIES}) == 3
    if start.startswith("Can"):  # the Columbia screener's first two questions, in our words
        assert "wished you were dead" in suicide and "not wake up" in suicide and "thoughts of killing" in suicide


def test_check_in_question_of_a_custom_protocol_file_falls_back_to_the_built_in(tmp_path):
    import json

    from socialsim.safety.protocol import _data_path

    data = json.loads(_data_path("protocol.json").read_text())
    data.pop("check_in")
    for texts in data["languages"].values():
        texts.pop("check_in")
    own = tmp_path / "protocol.json"
    own.write_text(json.dumps(data))
    proto = Protocol(texts_path=own)
    assert proto.check_in_question("de-DE").startswith("Darf ich")
    assert proto.check_in_question(None).startswith("Can I ask")
    data["languages"] = {}  # a file with English only: English, with the note
    own.write_text(json.dumps(data))
    assert "(de)" in Protocol(texts_path=own).check_in_question("de-DE")


def test_simulation_label_records_tier_stage_score_and_old_json_loads():
    layer = SafetyLayer(learned=FakeLearned(lambda m, c: "check_in", score=0.66))
    turn = Turn(speaker="seeker", text="I gave my guitar away.")
    d = label_seeker_turn(turn, [turn], layer)
    assert d.tier == "check_in"
    assert (turn.safety_tier, turn.safety_stage, turn.safety_score) == ("check_in", "learned", 0.66)
    assert turn.risk == "none" and turn.risk_reason is None  # risk is set on the protocol tier only
    crisis = Turn(speaker="seeker", text=CRISIS)
    label_seeker_turn(crisis, [crisis], layer)
    assert (crisis.safety_tier, crisis.safety_stage, crisis.risk, crisis.risk_reason) == (
        "protocol",
        "rules",
        "suicide",
        "kill-self",
    )
    old = '{"id": "x", "persona_id": "p", "backend": "b", "model": "m", "seed": 1, "turns": [' \
          '{"speaker": "seeker", "text": "hi", "risk": "none"}]}'  # fmt: skip
    t = Dialogue.model_validate_json(old).turns[0]
    assert t.safety_tier is None and t.safety_stage is None and t.safety_score is None


class FakeLLM:
    """Enough of `LLM` for `SupporterPipeline` in plain mode: a fixed reply, complete or streamed."""

    def __init__(self, text="That sounds really hard, and I'm glad you told me."):
        from socialsim.llm.base import Completion

        self.text, self.completion = text, Completion

    async def complete(self, req):
        return self.completion(text=self.text)

    async def stream(self, req, info):
        for piece in self.text.split(" "):
            yield piece + " "
        info.text = self.text


def test_pipeline_check_in_reply_complete_and_streamed():
    from socialsim.serve.pipeline import SupporterPipeline

    pipeline = SupporterPipeline(FakeLLM(), SafetyLayer(locale="fr-FR"), mode="plain")
    question = Protocol().check_in_question("fr-FR", "suicide")

    async def go():
        hist = [Turn(speaker="seeker", text=AMBIGUOUS)]
        whole = await pipeline.respond(hist)
        prepared = await pipeline.prepare(hist)
        pieces = [p async for p in prepared.stream()]
        return whole, pieces, prepared.reply

    whole, pieces, streamed = _run(go())
    for reply in (whole, streamed):
        assert reply.text.startswith("That sounds really hard") and reply.text.endswith(question)
        assert reply.check_in and not reply.protocol and reply.turn().risk_reason == "check_in:suicide"
        extra = reply.extra()
        assert (extra["tier"], extra["stage"], extra["score"], extra["category"]) == (
            "check_in",
            "rules",
            None,
            "suicide",
        )
        assert extra["safety"]["tier"] == "check_in"
    assert " ".join("".join(pieces).split()) == " ".join(streamed.text.split())  # what was streamed is the reply
    # the answer "oui" is not read (French answers are not in the reader): a new message; "yes" confirms
    hist = [
        Turn(speaker="seeker", text=AMBIGUOUS),
        Turn(speaker="supporter", text=whole.text),
        Turn(speaker="seeker", text="yes"),
    ]

    async def answer():
        return await pipeline.prepare(hist)

    prepared = _run(answer())
    assert prepared.protocol_text is not None and prepared.protocol_text.startswith("Merci de me le dire")
    assert prepared.safety.after == "check_in" and prepared.safety.tier == "protocol"


def test_chat_status_line_and_saved_history(layer):
    from socialsim.cli.serve import _turn_of, safety_status

    hist = [Turn(speaker="seeker", text=AMBIGUOUS), _check_in_turn(layer, fields=True)]
    d = _run(layer.assess([*hist, Turn(speaker="seeker", text="kind of")], log=False))
    line = safety_status(d)
    assert line.startswith("safety: crisis protocol (tier protocol) · suicide · stage followup")
    assert "answer to the check-in: confirm" in line
    assert safety_status(layer.assess_rules([Turn(speaker="seeker", text=AMBIGUOUS)])).startswith(
        "safety: check-in question (tier check_in)"
    )
    saved = {"role": "assistant", "content": "Hi. " + Protocol().check_in_question(), "tier": "check_in"}
    assert _turn_of({**saved, "category": "self_harm"}, Turn).risk_reason == "check_in:self_harm"
    assert _turn_of({"role": "user", "content": "hi"}, Turn).speaker == "seeker"
    assert (
        _turn_of({"role": "assistant", "content": "Hi.", "tier": "none", "category": "none"}, Turn).risk_reason is None
    )
