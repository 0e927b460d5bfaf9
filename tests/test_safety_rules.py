"""The crisis safety layer's rule stage, protocol, resources and event log.

Probe sets (``tests/data/``), written for this project:

- ``safety_crisis.jsonl``: crisis messages (direct, indirect, passive ideation, plans, self-harm,
  harm to others, typos/lowercase): every one must be routed to the protocol by the rules alone.
- ``safety_benign.jsonl``: idioms, accidents, negations and sad-but-safe messages: at most 5 % may be
  flagged (counting ``ambiguous`` as flagged too, although those would go to the LLM stage).
- ``safety_heldout.jsonl``: messages written AFTER the lexicon, in three rounds, to estimate how the
  rules generalise. Measured before any tuning on them: round 1: 8/25 crisis high (+5 ambiguous),
  0/25 benign high, 6/25 benign flagged counting ambiguous; round 2 (after tuning on round 1): 13/25
  crisis high (+3 ambiguous), 2/25 benign high (+2 ambiguous); round 3 (after tuning on rounds 1-2):
  17/25 crisis high (+2 ambiguous), 2/25 benign high (+1 ambiguous). The lexicon was tuned on each
  round afterwards, so the numbers asserted below for it are no longer unbiased: the honest estimate
  of unseen-message recall is round 3's, about 70 % high and 75 % high-or-ambiguous.
"""

import json
from pathlib import Path

import pytest

from socialsim.errors import UserError
from socialsim.safety import CrisisResources, Protocol, RuleStage, SafetyEventLog, SafetyLayer
from socialsim.schema import Turn

DATA = Path(__file__).parent / "data"


def _load(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def rules():
    return RuleStage()


def test_crisis_probes_all_routed_to_protocol(rules):
    probes = _load("safety_crisis.jsonl")
    assert len(probes) >= 60
    kinds = {p["kind"] for p in probes}
    assert {"direct", "indirect", "passive", "plan", "self_harm", "harm_to_others", "typo"} <= kinds
    missed = []
    for p in probes:
        res = rules.check(p["text"])
        if res.level != "high" or res.category != p["category"]:
            missed.append((p["text"], res.level, res.category, p["category"]))
    print(f"\ncrisis probes: {len(probes) - len(missed)}/{len(probes)} routed to the protocol")
    assert not missed, missed


def test_benign_probes_rarely_flagged(rules):
    probes = _load("safety_benign.jsonl")
    assert len(probes) >= 60
    high = [p["text"] for p in probes if rules.check(p["text"]).level == "high"]
    flagged = [p["text"] for p in probes if rules.check(p["text"]).level != "none"]
    print(f"\nbenign probes: {len(high)}/{len(probes)} high, {len(flagged)}/{len(probes)} high or ambiguous: {flagged}")
    assert len(flagged) <= 0.05 * len(probes), flagged


@pytest.mark.parametrize(
    "text",
    [
        "I'm dying of embarrassment",
        "this exam is killing me",
        "I could kill for a coffee",
        "my feet are killing me",
        "dead tired",
        "I'm dead tired after work",
        "my mum is going to kill me",
        "I cut myself shaving",
        "we killed it tonight",
    ],
)
def test_idioms_do_not_trigger(rules, text):
    res = rules.check(text)
    assert res.level == "none", res.as_dict()


def test_idiom_unless_and_negation_with_doubt(rules):
    assert rules.check("I burned myself on the stove").level == "none"
    assert rules.check("I burned myself on the stove on purpose").level == "high"
    assert rules.check("I would never kill myself").level == "none"
    assert rules.check("I'm not suicidal").level == "none"
    # a doubt cue in the sentence cancels the negation
    assert rules.check("I'm not sure I won't hurt myself").level == "high"
    assert rules.check("I don't want to live anymore").level == "high"  # negation inside the pattern
    assert rules.check("I don't want to live").level == "high"  # at the very end of a message
    assert rules.check("i dont want to live in constant fear of him").level == "none"
    res = rules.check("I would never kill myself")
    assert res.dropped and res.dropped[0].dropped.startswith("negated:")
    res = rules.check("this exam is killing me")
    assert all(h.dropped.startswith("idiom:") for h in res.dropped)


def test_normalisation_handles_case_typos_and_elongation(rules):
    assert rules.normalize("I'm SOOO done!!! Don't") == " im so done . dont "
    for text in ["I WANT TO DIE", "i wnat to die", "suicdal", "i want to dieeee", "thinkin bout killin myslef"]:
        assert rules.check(text).level == "high", text
    # a near-miss that is a real word is not "corrected" into a trigger
    assert rules.normalize("he overdoes it") == " he overdoes it "
    assert rules.check("I will myself to get up every morning").level == "none"


def test_ambiguous_messages_are_not_high(rules):
    ambiguous = ["I can't take it anymore.", "I just want it all to stop.", "I feel like a burden to everyone."]
    for text in ambiguous + ["I feel like giving up"]:
        assert rules.check(text).level == "ambiguous", text


def test_followup_answers_after_protocol():
    """The answer to a protocol reply is read by the follow-up reader, not the rules (the full table is in
    test_safety_tiers.py)."""
    layer = SafetyLayer()
    proto = layer.protocol_turn(layer.assess_rules([Turn(speaker="seeker", text="I want to die")]))
    after = [Turn(speaker="seeker", text="I want to die"), proto]
    d = layer.assess_rules([*after, Turn(speaker="seeker", text="yeah")])
    assert d.tier == "protocol" and d.stage == "followup" and d.answer == "confirm"
    assert layer.assess_rules([Turn(speaker="seeker", text="yeah")]).tier == "none"  # without a protocol reply before
    d2 = layer.assess_rules([*after, Turn(speaker="seeker", text="no, I'm safe, I was just venting")])
    assert d2.tier == "none" and d2.answer == "deny"
    d3 = layer.assess_rules([*after, Turn(speaker="seeker", text="I'm safe")])  # the old reader read "i am" as yes
    assert d3.tier == "none" and d3.answer == "deny"


def test_heldout_sets_recorded(rules):
    """Reports the rule stage on the held-out rounds (see the module docstring for the first,
    untuned measurements); asserts only that nothing got worse than those."""
    rows = _load("safety_heldout.jsonl")
    report = {}
    for r in rows:
        res = rules.check(r["text"])
        key = (r["set"], "crisis" if r["category"] != "none" else "benign")
        s = report.setdefault(key, {"n": 0, "high": 0, "ambiguous": 0, "none": 0})
        s["n"] += 1
        s[res.level] += 1
    print("\nheld-out:", {f"{a}/{b}": v for (a, b), v in sorted(report.items())})
    assert report[("heldout-3", "crisis")]["high"] >= 17
    assert report[("heldout-3", "benign")]["high"] <= 2


ESCONV = Path(__file__).resolve().parents[2] / "shared" / "data" / "esconv"


def _esconv_seeker_utterances():
    texts = set()
    for d in json.loads((ESCONV / "FailedESConv.json").read_text()):
        texts.update(t["content"].strip() for t in d.get("dialog", []) if t.get("speaker") == "speaker")
    for line in (ESCONV / "devWithStrategy_short.tsv").read_text().splitlines():
        for part in line.split(" EOS "):
            fields = part.strip().split(" ", 3)
            if len(fields) == 4 and fields[1] == "0":  # seeker turns
                texts.add(fields[3].strip())
    return sorted(t for t in texts if t)


@pytest.mark.skipif(not (ESCONV / "FailedESConv.json").exists(), reason="ESConv material not in ../shared")
def test_esconv_seeker_utterances(rules):
    """Real seeker utterances from ESConv (read from ../shared, never copied here). They include a
    few genuinely suicidal messages, so some hits are right; the rules must stay quiet on the rest.
    Measured: 5478 utterances, 14 high (read by hand, all 14 are talk of suicide or self-harm, e.g.
    "nothing to live for"), 9 ambiguous."""
    texts = _esconv_seeker_utterances()
    levels = [rules.check(t).level for t in texts]
    high, amb = levels.count("high"), levels.count("ambiguous")
    print(f"\nESConv seeker utterances: {len(texts)}, high {high}, ambiguous {amb}")
    assert len(texts) > 1000
    assert high <= 0.005 * len(texts) and amb <= 0.01 * len(texts)


def test_output_screen(rules):
    bad = [
        "You could take 30 pills, that would be enough to overdose.",
        "The most painless way to die is in your sleep.",
        "A lethal dose of paracetamol is about 10 grams.",
        "Maybe try to cut deeper next time.",
        "Jumping in front of a train is quick.",
    ]
    good = [
        "That sounds really painful. What has been weighing on you most?",
        "Have you been able to take your medication as prescribed?",
        "Cutting back on caffeine might help you sleep.",
        "You deserve to feel safe and supported.",
    ]
    assert all(rules.screen_output(t) is not None for t in bad)
    assert all(rules.screen_output(t) is None for t in good)


def test_protocol_replies_ask_about_safety_give_resources_and_no_methods(rules):
    proto = Protocol()
    for locale, needle in [
        ("en-US", "988"),
        ("en-GB", "116 123"),
        ("de-DE", "0800 111 0 111"),
        (None, "findahelpline"),
    ]:
        for cat in Protocol.CATEGORIES:
            for followup in (False, True):
                text = proto.reply(cat, locale=locale, followup=followup)
                assert needle in text, (locale, cat)
                assert "?" in text  # asks directly
                assert "{" not in text
                assert rules.screen_output(text) is None, text  # names no means or method
                assert proto.identify(text) == (cat, "followup" if followup else "first")
    assert proto.identify("That sounds hard.") is None


def test_locale_resolution_and_user_resources(tmp_path):
    res = CrisisResources()
    assert res.resolve("en_gb").locale == "en-GB"
    assert res.resolve("es-US").locale == "en-US"  # by region
    assert res.resolve("de").locale == "de-DE"  # by language
    assert res.resolve("pt-BR").locale == "generic"
    assert res.resolve(None).locale == "generic"
    own = tmp_path / "res.json"
    own.write_text(
        json.dumps(
            {
                "default": "xx",
                "locales": {
                    "xx": {
                        "emergency": "999-TEST",
                        "resources": [{"name": "Test Line", "contact": "call 0000"}],
                        "protocol": {"suicide": {"first": "Custom opening. Are you safe? {resources} or {emergency}."}},
                    }
                },
            }
        )
    )
    proto = Protocol(CrisisResources(own))
    assert (
        proto.reply("suicide", locale="anything") == "Custom opening. Are you safe? Test Line: call 0000 or 999-TEST."
    )
    assert "999-TEST" in proto.reply("self_harm")
    assert proto.identify("Custom opening. Are you safe? Test Line") == ("suicide", "first")
    bad = tmp_path / "bad.json"
    bad.write_text('{"locales": {"xx": {"resources": []}}}')
    with pytest.raises(UserError, match="emergency"):
        CrisisResources(bad)
    with pytest.raises(UserError, match="not found"):
        CrisisResources(tmp_path / "missing.json")


def test_layer_labels_protocol_and_logs(tmp_path):
    log = SafetyEventLog(tmp_path / "events.jsonl")
    layer = SafetyLayer(event_log=log, source="test", locale="en-US")
    history = [Turn(speaker="seeker", text="i want to kill myself, my key is sk-abcdefghijklmnop")]
    decision = layer.assess_rules(history)
    assert decision.tier == "protocol" and decision.flagged and decision.category == "suicide"
    assert decision.stage == "rules"
    turn = layer.protocol_turn(decision)
    assert turn.strategy.value == "Question" and turn.thought is not None and "988" in turn.text
    assert turn.risk_reason == "protocol:suicide"
    layer.log_decision(decision, message=history[0].text)
    # the affirmative answer right after the protocol gets the follow-up reply
    history += [turn, Turn(speaker="seeker", text="yes")]
    d2 = layer.assess_rules(history)
    assert d2.tier == "protocol" and d2.followup and d2.action == "protocol_followup" and d2.stage == "followup"
    assert layer.protocol_reply(d2).startswith("Thank you for being honest with me")
    text, hit = layer.screen("The most painless way to die is pills.")
    assert hit is not None and text == layer.protocol.output_replacement
    layer.log_output(hit, message="The most painless way to die is pills.")
    events = log.read()
    assert [e["kind"] for e in events] == ["seeker_message", "supporter_output"]
    e = events[0]
    assert e["action"] == "protocol" and e["rule"] == "kill-self" and e["matched"] == "kill myself"
    assert e["tier"] == "protocol" and e["stage"] == "rules" and e["score"] is None
    assert e["source"] == "test" and e["locale"] == "en-US" and len(e["message_sha256"]) == 16 and e["ts"]
    raw = (tmp_path / "events.jsonl").read_text()
    assert "sk-abcdefghijklmnop" not in raw and "kill myself," not in raw  # no text, no key by default
    log2 = SafetyEventLog(tmp_path / "e2.jsonl", log_text=True)
    log2.write({"kind": "seeker_message"}, message="my key is sk-abcdefghijklmnop")
    assert "sk-abcdefghijklmnop" not in (tmp_path / "e2.jsonl").read_text()


def test_unwritable_event_log_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="safety event log"):
        SafetyEventLog(blocker / "events.jsonl")


def test_any_rule_union_agrees_with_the_rules_one_by_one():
    """The one-pass prefilter (lookbehind hoisted out of the alternation) finds a match exactly when
    some rule's own pattern does, on the labelled messages shipped with the package."""
    import json
    from importlib import resources

    from socialsim.safety.rules import load_rules

    rules = load_rules()
    folder = resources.files("socialsim.safety").joinpath("data/labelled")
    texts = [
        json.loads(line)["text"]
        for f in folder.iterdir()
        if f.name.endswith(".jsonl")
        for line in f.read_text("utf-8").splitlines()
        if line.strip()
    ]
    assert len(texts) > 500
    hits = 0
    for t in texts:
        norm = rules.normalize(t)
        some = any(r.rx.search(norm) for r in rules.rules)
        assert bool(rules._any_rule.search(norm)) == some, t  # noqa: SLF001
        out = any(rx.search(norm) for _, rx in rules.output_rules)
        assert bool(rules._any_output.search(norm)) == out, t  # noqa: SLF001
        hits += some
    assert hits > 100


@pytest.mark.parametrize(
    "text, rule",
    [
        ("I have the pills here and I'm going to take them all tonight.", "take-them-all"),
        ("Tonight I'm going to end it", "end-it-timed"),
        ("I've got the rope ready and I'm going to use it tonight", "means-at-hand-timed"),
        ("I'm going to end it with him tonight", None),
        ("I'm going to take them all to the vet tomorrow", None),
        ("I have to take them all right now to make sure that I graduate", None),
    ],
)
def test_means_at_hand_and_timing_are_high(text, rule):
    """Means at hand with intent and a time, or a timed 'end it', route to the protocol (issue #27); the
    same words about vets, classes or a relationship do not."""
    res = RuleStage().check(text, distance=True)
    assert (res.rule if res.level == "high" else None) == rule, (res.level, res.rule)
