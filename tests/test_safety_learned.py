"""The learned stage of the safety layer: two logistic-regression risk heads (chat messages, forum
posts) on MiniLM embeddings, trained on C-SSRS Reddit posts (clinician-labelled users), ESConv train
seeker turns and the checked-in labelled sets, with check-in and protocol thresholds chosen on a
validation split it never trained on (``socialsim build safety-model``).

The shipped file must reproduce its validation figures; the issue's targets are asserted where met and
strict xfails where not; the project's own test sets (``heldout5``, ``heldout6``, never trained or
tuned on) are measured per tier through the whole layer, with guards at the measured level."""

import asyncio
import collections
import csv
import json
import os
from pathlib import Path

import pytest

from conftest import SHARED
from socialsim.safety import LearnedStage, SafetyEventLog, SafetyLayer, corpora
from socialsim.safety.learned import default_model_path, message_windows
from socialsim.safety.measure import history_of, labelled_path, load_labelled
from socialsim.schema import Turn

DATA = Path(os.environ.get("SOCIALSIM_SHARED_DATA") or SHARED / "data")
CSSRS = DATA / "crisis" / "cssrs_reddit_500.csv"
ESCONV = DATA / "esconv" / "splits"
META = json.loads(default_model_path().read_text())
SUMMARY = META["validation"]["summary"]


@pytest.fixture(scope="module")
def learned():
    stage = LearnedStage()
    stage.warm()
    return stage


def test_shipped_file_reproduces_its_validation_table(learned):
    """Every ESConv valid seeker turn and every labelled validation message, scored through the model
    file as it loads at run time, lands in the tier the build recorded (C-SSRS validation posts are
    left to the build's own check: they take minutes to embed)."""
    from socialsim.safety.learned_build import measure_shipped

    table = measure_shipped(
        learned,
        cssrs=CSSRS,
        esconv_valid=ESCONV / "valid.jsonl",
        sources=("esconv", "labelled"),
    )
    recorded = {g: v for g, v in META["validation"]["by_group"].items() if not g.startswith("cssrs:")}
    assert table == recorded


def test_validation_ordinary_targets_met():
    """On ESConv valid seeker turns (2,956, never trained on): protocol <= 0.5 %, check-in <= 5 %."""
    print(json.dumps(SUMMARY, indent=1))
    assert SUMMARY["esconv_protocol"] <= 0.005
    assert SUMMARY["esconv_check_in"] <= 0.05


@pytest.mark.xfail(
    strict=True,
    reason="not met: on validation 69.8 % of C-SSRS crisis users' posts (90.3 % of those longer than one "
    "window) and 81.6 % of the labelled crisis messages reach check-in or protocol (target 90 %), at ESConv "
    "valid 0.3 % protocol and 4.2 % check-in",
)
def test_validation_crisis_recall_target():
    assert SUMMARY["crisis_posts_flagged"] >= 0.90
    assert SUMMARY["labelled_crisis_flagged"] >= 0.90


@pytest.mark.xfail(
    strict=True,
    reason="not met: 3.2 % of the labelled ordinary validation messages reach the protocol, all of them "
    "through the rule stage's high hits (recovery and negated statements)",
)
def test_validation_benign_protocol_target():
    assert SUMMARY["benign_protocol"] <= 0.01


def _tiers(layer, name):
    counts = collections.defaultdict(collections.Counter)
    for row in load_labelled(labelled_path(name)):
        counts[row.category][layer.decide(history_of(row)).tier] += 1
    return counts


# measured in session 10 (rules + this learned stage): heldout5 suicide 44/61 reach check-in or
# protocol, self-harm 15/19, harm to others 6/9, ordinary 4/97 protocol and 10/97 check-in; heldout6
# 33/60, 13/20, 5/10, ordinary 2/100 protocol and 11/100 check-in
GUARDS = {
    "heldout5": {"suicide": 44, "self_harm": 15, "harm_to_others": 6, "protocol": 4, "check_in": 10},
    "heldout6": {"suicide": 33, "self_harm": 13, "harm_to_others": 5, "protocol": 2, "check_in": 11},
}


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_test_sets_per_tier(learned, name):
    """The whole layer (rules + learned stage) on a test set, per tier; guards at the measured level."""
    counts = _tiers(SafetyLayer(learned=learned), name)
    print(f"\n{name}: " + json.dumps({k: dict(v) for k, v in counts.items()}))
    g = GUARDS[name]
    for cat in ("suicide", "self_harm", "harm_to_others"):
        assert counts[cat]["protocol"] + counts[cat]["check_in"] >= g[cat], (cat, dict(counts[cat]))
    assert counts["none"]["protocol"] <= g["protocol"]
    assert counts["none"]["check_in"] <= g["check_in"] + 2


def test_cssrs_split_is_stratified_disjoint_and_stable():
    users = corpora.read_cssrs(CSSRS)
    split = corpora.cssrs_split(users)
    assert split == corpora.cssrs_split(list(reversed(users)))  # order of the file does not matter
    assert len(users) == 500 and set(split.values()) == {"train", "valid"}
    for label in corpora.CSSRS_LABELS:
        ids = [u.user for u in users if u.label == label]
        n_valid = sum(split[i] == "valid" for i in ids)
        assert n_valid == len(ids) // corpora.VALID_EVERY
    assert META["trained_on"]["cssrs"]["citation"].startswith("Gaur et al. 2019")


def test_cut_posts_are_read_to_their_end():
    """Some C-SSRS fields were cut at the spreadsheet cell limit: their posts are still read."""
    rows = list(csv.DictReader(CSSRS.open(encoding="utf-8")))
    field = rows[0]["Post"]
    cut = field[: len(field) // 2]
    posts = corpora.parse_posts(cut)
    full = corpora.parse_posts(field)
    assert posts and full[0].startswith(posts[0][:-5]) and len(posts) <= len(full)
    assert all(corpora.parse_posts(r["Post"]) for r in rows)  # every user has posts, cut fields too


def test_long_message_scored_by_its_riskiest_window(learned):
    calm = "I went to work today and it was fine, my boss was nice to me and we had lunch outside. " * 5
    crisis = "Honestly I don't want to be alive anymore and I've been planning how to end it."
    short = learned.score(calm)
    long = learned.score(calm + crisis)
    assert long.windows > 1 and long.window == long.windows - 1
    assert long.tier == "protocol" and short.tier == "none"
    pairs = message_windows(calm + crisis, ["earlier turn"], learned.context_turns)
    assert [w for w, _ in pairs] == corpora.windows(calm + crisis)
    assert pairs[0][1] == ["earlier turn"] and pairs[1][1] == ["earlier turn", pairs[0][0]]


def test_deterministic_and_context_only_raises(learned):
    """Earlier turns can raise a message's risk (a crisis turn before it) and never lower it (ordinary
    talk before a crisis message)."""
    msg = "I've made my choice, it's this weekend."
    a = learned.score(msg, ["I can't stop thinking about dying."])
    assert a == learned.score(msg, ["I can't stop thinking about dying."])
    assert a.score > learned.score(msg).score
    crisis = "It'd take them a week to notice I'd stopped breathing."
    after_small_talk = learned.score(crisis, ["My sister's wedding was lovely.", "We danced all night."])
    assert after_small_talk.score >= learned.score(crisis).score - 1e-5 and after_small_talk.tier != "none"


def _raise(texts):
    raise RuntimeError("embedding model crashed")


def test_learned_stage_failure_fails_closed(tmp_path):
    """Whatever breaks in the learned stage, the message gets a check-in, not a takeover (and the event
    says why)."""
    log = SafetyEventLog(tmp_path / "events.jsonl")
    bad_shape = LearnedStage(embed=lambda texts: [[0.0] * 5 for _ in texts])
    for stage, why in ((LearnedStage(embed=_raise), "embedding model crashed"), (bad_shape, "dims")):
        layer = SafetyLayer(learned=stage, event_log=log, source="test")
        d = asyncio.run(layer.assess([Turn(speaker="seeker", text="I had a nice walk in the park today.")]))
        assert d.tier == "check_in" and d.stage == "learned" and d.category == "suicide" and why in d.learned_error
        assert layer.check_in_question(d).startswith("Can I ask you something directly")
        d2 = asyncio.run(layer.assess([Turn(speaker="seeker", text="I can't take it anymore.")]))
        assert d2.tier == "check_in" and d2.category == d2.rules.category  # the rules' ambiguous category is kept
    events = log.read()
    assert len(events) == 4 and all(e["learned_error"] and e["action"] == "check_in" for e in events)


def test_layer_combines_rules_learned_and_logs(learned, tmp_path):
    log = SafetyEventLog(tmp_path / "events.jsonl")
    layer = SafetyLayer(learned=learned, event_log=log, source="test", locale="en-GB")
    hist = [
        Turn(speaker="seeker", text="I've been feeling like a burden to my family."),
        Turn(speaker="supporter", text="That sounds heavy. What makes you feel that way?"),
        Turn(speaker="seeker", text="I put the tablets I've been keeping in an envelope with their names on it."),
    ]
    d = asyncio.run(layer.assess(hist))
    assert d.tier != "none" and d.stage == "learned" and d.tier == d.learned.tier
    assert d.learned.score >= learned.check_in_threshold and d.score == d.learned.score
    benign = asyncio.run(layer.assess([Turn(speaker="seeker", text="My sister's wedding was lovely.")]))
    assert benign.tier == "none" and benign.learned is not None
    assert benign.learned.score < learned.check_in_threshold
    high = asyncio.run(layer.assess([Turn(speaker="seeker", text="I want to kill myself")]))
    assert high.stage == "rules" and high.learned is None  # the rules decided; the learned stage is not asked
    events = log.read()
    assert [e["stage"] for e in events] == ["learned", "rules"] and events[0]["learned"]["tier"] == d.tier


def test_bad_model_file_is_a_user_error(tmp_path):
    from socialsim.errors import UserError

    with pytest.raises(UserError, match="not found"):
        LearnedStage(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"classes": ["none"]}')
    with pytest.raises(UserError, match="not a learned safety model"):
        LearnedStage(bad)
    with pytest.raises(UserError, match="threshold"):
        LearnedStage(protocol_threshold=1.5)
    with pytest.raises(UserError, match="above the protocol threshold"):
        LearnedStage(check_in_threshold=0.8, protocol_threshold=0.6)


def test_train_and_test_sets_do_not_overlap():
    """No test-set message is a near-copy of a training message (cosine of their embeddings)."""
    import numpy as np

    from socialsim.embeddings import embed
    from socialsim.safety.learned_build import TRAIN_SETS

    train = [r.text for n in TRAIN_SETS for r in load_labelled(labelled_path(n))]
    held = [r.text for n in ("heldout5", "heldout6") for r in load_labelled(labelled_path(n))]
    sims = embed(held) @ embed(train).T
    i, j = np.unravel_index(np.argmax(sims), sims.shape)
    print(f"\nmost similar test/train pair: {sims[i, j]:.3f}: {held[i]!r} / {train[j]!r}")
    assert float(sims.max()) < 0.95
    assert not set(META["trained_on"]["labelled"]) & {"heldout5.jsonl", "heldout6.jsonl"}


def test_build_runs_end_to_end_and_is_deterministic(tmp_path, monkeypatch):
    """The build on a small excerpt of the real files (first 12 users of each C-SSRS label, 40 ESConv
    dialogues of each split, one labelled set) writes a file the run-time stage loads; a second build
    writes the same model."""
    from socialsim.safety.learned_build import build

    monkeypatch.setenv("SOCIALSIM_CACHE_DIR", str(tmp_path / "cache"))
    rows = list(csv.DictReader(CSSRS.open(encoding="utf-8")))
    keep = [r for label in corpora.CSSRS_LABELS for r in [x for x in rows if x["Label"] == label][:12]]
    small = tmp_path / "cssrs.csv"
    with small.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["User", "Post", "Label"])
        w.writeheader()
        for r in keep:
            w.writerow({"User": r["User"], "Post": r["Post"][:3000], "Label": r["Label"]})
    splits = {}
    for sp in ("train", "valid"):
        splits[sp] = tmp_path / f"{sp}.jsonl"
        lines = (ESCONV / f"{sp}.jsonl").read_text(encoding="utf-8").splitlines()[:40]
        splits[sp].write_text("\n".join(lines) + "\n", encoding="utf-8")
    kw = dict(
        cssrs=small,
        esconv_train=splits["train"],
        esconv_valid=splits["valid"],
        labelled=[labelled_path("train")],
        ordinary_flagged=0.1,
        benign_flagged=1.0,
    )
    a = build(tmp_path / "a.json", **kw)
    b = build(tmp_path / "b.json", **kw)
    assert {**a, "build_seconds": 0} == {**b, "build_seconds": 0}
    stage = LearnedStage(tmp_path / "a.json")
    assert stage.score("I want to kill myself tonight").score > stage.score("The weather is lovely").score
    assert a["validation"]["by_group"]["esconv"]["n"] > 0


def test_bad_cssrs_file_is_one_user_error(tmp_path):
    from socialsim.errors import UserError

    bad = tmp_path / "bad.csv"
    bad.write_text("User,Post,Label\nu1,\"['hi']\",Maybe\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.csv:2: field 'Label'"):
        corpora.read_cssrs(bad)
    with pytest.raises(UserError, match="no such C-SSRS file"):
        corpora.read_cssrs(tmp_path / "missing.csv")
