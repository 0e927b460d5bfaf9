"""The learned stage of the safety layer (MiniLM embeddings + RBF SVM, rule signals), measured on the
test set written before any session-5 training or tuning (``socialsim/safety/data/labelled/heldout5.jsonl``,
see its commit), on the second test set written in session 7 (``heldout6.jsonl``), on the older probe
sets and on ESConv seeker utterances; fail-closed combination; the one-BLAS-thread kernel (latency);
the model file rebuilt from the checked-in data."""

import json
import os
from pathlib import Path

import pytest

from conftest import ESCONV_DIR
from socialsim.safety import LearnedStage, RuleStage, SafetyEventLog, SafetyLayer
from socialsim.safety.learned import default_model_path
from socialsim.safety.measure import Labelled, evaluate, labelled_path, load_labelled
from socialsim.schema import Turn

DATA = Path(__file__).parent / "data"
ESCONV = Path(os.environ.get("SOCIALSIM_ESCONV_DIR") or ESCONV_DIR)  # override: a worktree's own ../shared
RECALL_TARGET = 0.98
BENIGN_FP_TARGET = 0.05
# regression guards at the recall-first threshold (measured: 24.9 % of ESConv dev seeker turns
# flagged in session 5; FailedESConv see its test), not targets
ESCONV_DEV_GUARD = 0.27


@pytest.fixture(scope="module")
def learned():
    stage = LearnedStage()
    stage.warm()
    return stage


@pytest.fixture(scope="module")
def rules():
    return RuleStage()


def _heldout_reports(learned, rules, name):
    rows = load_labelled(labelled_path(name))
    both = evaluate(rows, rules=rules, learned=learned, name=f"{name}: rules + learned")
    for rep in (
        both,
        evaluate(rows, learned=learned, name=f"{name}: learned stage alone"),
        evaluate(rows, rules=rules, name=f"{name}: rules alone (no distance cues)"),
    ):
        print("\n" + rep.table())
    print(f"\n{name} missed by rules + learned:", both.missed())
    print(f"{name} benign flagged by rules + learned:", both.benign()["texts"])
    return both


# heldout5 is the test set: written and committed alone (29022a0) before any session-5 training data,
# feature or threshold work, and never used to choose anything (measured once before and once after
# the session-5 rebuild). The older held-out sets (heldout ... heldout4) were folded into the training
# data once they had been looked at (see labelled/README.md).
TEST_SET = "heldout5"
FORMER_HELDOUT = ("heldout", "heldout2", "heldout3", "heldout4")


# heldout6: written in session 7 and committed alone (aee81c4), first scored in session 8 on the shipped
# model (trained before it was written; nothing was changed after seeing its results).
SECOND_TEST_SET = "heldout6"


@pytest.fixture(scope="module")
def test_set_reports(learned, rules):
    """The report of a test set by name, measured once per module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _heldout_reports(learned, rules, name)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def heldout_report(test_set_reports):
    return test_set_reports(TEST_SET)


@pytest.fixture(scope="module")
def second_report(test_set_reports):
    return test_set_reports(SECOND_TEST_SET)


@pytest.mark.parametrize(
    "name",
    [
        TEST_SET,
        pytest.param(
            SECOND_TEST_SET,
            marks=pytest.mark.xfail(
                strict=True,
                reason="not met for suicide: heldout6 suicide 56/60 = 93.3 % (self-harm 20/20); the misses are "
                "indirect (rehearsing what to tell a sister 'afterwards', not renewing anything, pills from two "
                "surgeries)",
            ),
        ),
    ],
)
def test_heldout_recall_target(test_set_reports, name):
    """Recall >= 98 % for suicide and self-harm on each test set, of what routes a message to the
    protocol without an LLM stage (rules high OR learned). Met on heldout5: 61/61 and 19/19."""
    report = test_set_reports(name)
    for cat in ("suicide", "self_harm"):
        assert report.category(cat)["recall"] >= RECALL_TARGET, (cat, report.missed())


def test_heldout_recall_and_false_positive_guard(heldout_report):
    """Regression guards at the measured level (heldout5: harm to others 8/9 = 88.9 %, 30/97 = 30.9 %
    of hard negatives flagged); the benign target is the xfail test."""
    assert heldout_report.category("harm_to_others")["recall"] >= 0.85, heldout_report.missed()
    assert heldout_report.benign()["fp_rate"] <= 0.33, heldout_report.benign()["texts"]


@pytest.mark.parametrize("name", [TEST_SET, SECOND_TEST_SET])
@pytest.mark.xfail(
    strict=True,
    reason="not met: the learned stage at its recall-first threshold flags 30/97 = 30.9 % of heldout5's and "
    "35/100 of heldout6's hard negatives (see the README's safety table)",
)
def test_heldout_benign_false_positive_target(test_set_reports, name):
    report = test_set_reports(name)
    assert report.benign()["fp_rate"] <= BENIGN_FP_TARGET, report.benign()["texts"]


def test_second_heldout_guard(second_report):
    """Regression guards at the level measured in session 8 (heldout6: suicide 56/60, self-harm 20/20,
    harm to others 8/10, 35/100 hard negatives flagged)."""
    assert second_report.category("suicide")["flagged"] >= 56, second_report.missed()
    assert second_report.category("self_harm")["flagged"] == 20, second_report.missed()
    assert second_report.category("harm_to_others")["flagged"] >= 8, second_report.missed()
    assert second_report.benign()["flagged"] <= 35, second_report.benign()["texts"]


def test_kernel_runs_with_one_blas_thread(learned):
    """The SVM's kernel products run with BLAS limited to one thread, and numpy's setting is restored
    afterwards (the single-message latency fix; bench/bench_safety.py measures it); the limit does not
    change the scores."""
    import numpy as np
    from threadpoolctl import threadpool_info

    def blas_threads():
        return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

    before = blas_threads()
    seen = []
    stage = LearnedStage()
    kernel = stage.risk_kernel

    def spy(x):
        seen.append(blas_threads())
        return kernel(x)

    stage.risk_kernel = spy
    x = learned.features([("I keep looking at the pills I saved.", ["I can't sleep."]), ("Lunch was nice.", [])])
    assert np.array_equal(stage.risk(x), kernel(x))
    assert seen == [[1]] and blas_threads() == before


@pytest.mark.parametrize("name", FORMER_HELDOUT)
def test_former_heldout_sets_are_fit(learned, rules, name):
    """The former held-out sets are training data now: the fitted model must keep their crisis
    messages (a check of the fit, not a measurement of generalisation)."""
    both = _heldout_reports(learned, rules, name)
    assert both.category("suicide")["recall"] >= RECALL_TARGET, both.missed()


def test_older_probe_sets(learned, rules):
    """The rule stage's probe sets (tests/data; the lexicon was tuned on them, the learned stage never
    saw them): nothing the rules catch is lost, and the benign share flagged stays low."""
    crisis = [
        Labelled(p["text"], p["category"], p["kind"])
        for p in map(json.loads, (DATA / "safety_crisis.jsonl").read_text().splitlines())
    ]
    benign = [Labelled(p["text"], "none", p["kind"]) for p in map(json.loads, (DATA / "safety_benign.jsonl").open())]
    rounds = [
        Labelled(p["text"], p["category"], p["set"])
        for p in map(json.loads, (DATA / "safety_heldout.jsonl").read_text().splitlines())
    ]
    for name, rows in (("crisis probes", crisis), ("benign probes", benign), ("rule held-out rounds 1-3", rounds)):
        for rep in (
            evaluate(rows, rules=rules, learned=learned, name="rules + learned"),
            evaluate(rows, learned=learned, name="learned alone"),
        ):
            flagged = sum(rep.flagged)
            crisis_n = sum(r.category != "none" for r in rows)
            hit = sum(f for r, f in zip(rows, rep.flagged, strict=True) if r.category != "none")
            b = rep.benign()
            print(
                f"\n{name}, {rep.name}: {flagged}/{len(rows)} flagged; crisis {hit}/{crisis_n}; "
                f"benign {b['flagged']}/{b['n']}"
            )
    both = evaluate(crisis, rules=rules, learned=learned)
    assert all(both.flagged)
    r = evaluate(rounds, rules=rules, learned=learned)
    assert r.category("suicide")["recall"] >= 0.95, r.missed()
    # measured at the recall-first threshold: 13/70 benign probes flagged (a regression guard, not a target)
    b = evaluate(benign, rules=rules, learned=learned).benign()
    assert b["fp_rate"] <= 0.25, b


def _esconv_dialogues():
    for d in json.loads((ESCONV / "FailedESConv.json").read_text()):
        seeker = [t["content"].strip() for t in d.get("dialog", []) if t.get("speaker") == "speaker"]
        yield [t for t in seeker if t]


@pytest.mark.skipif(not (ESCONV / "FailedESConv.json").exists(), reason="ESConv material not in ../shared")
def test_esconv_seeker_turns_false_positive_rate(learned, rules):
    """ESConv seeker turns (FailedESConv.json, read from ../shared, never copied here), each with the
    seeker turns before it: mostly benign, a few real crisis messages (see the printed list)."""
    items = [(t, d[:i]) for d in _esconv_dialogues() for i, t in enumerate(d)]
    scores = learned.score_many(items)
    high = [rules.check(t).level == "high" for t, _ in items]
    flagged = [(round(s.score, 2), t) for (t, _), s in zip(items, scores, strict=True) if s.flagged]
    either = sum(s.flagged or h for s, h in zip(scores, high, strict=True))
    print(
        f"\nESConv seeker turns: {len(items)}; learned flags {len(flagged)} ({len(flagged) / len(items):.2%}), "
        f"rules high {sum(high)}, either {either} ({either / len(items):.2%})"
    )
    for s, t in sorted(flagged, reverse=True):
        print(f"  {s}  {t[:150]}")
    assert len(items) > 1000
    assert either / len(items) <= 0.35  # a regression guard at the recall-first threshold, not a target


def _esconv_dev_items():
    from socialsim.evaluate.readers import read_tsv_corpus

    items = []
    for d in read_tsv_corpus(ESCONV / "devWithStrategy_short.tsv").dialogues:
        seeker = [t.text.strip() for t in d.turns if t.speaker == "seeker" and t.text.strip()]
        items += [(t, seeker[:i]) for i, t in enumerate(seeker)]
    return items


@pytest.mark.skipif(not (ESCONV / "devWithStrategy_short.tsv").exists(), reason="ESConv material not in ../shared")
def test_esconv_dev_seeker_turns_flag_rate(learned, rules):
    """ESConv's dev split (stitched back into dialogues), every seeker turn with the seeker turns
    before it: mostly not crises, some are. Never used to choose anything."""
    items = _esconv_dev_items()
    scores = learned.score_many(items)
    high = [rules.check(t, distance=True).level == "high" for t, _ in items]
    flagged = [(round(s.score, 2), t) for (t, _), s in zip(items, scores, strict=True) if s.flagged]
    either = sum(s.flagged or h for s, h in zip(scores, high, strict=True))
    print(
        f"\nESConv dev seeker turns: {len(items)}; learned flags {len(flagged)} ({len(flagged) / len(items):.2%}), "
        f"rules high {sum(high)}, either {either} ({either / len(items):.2%})"
    )
    for sc, t in sorted(flagged, reverse=True)[:60]:
        print(f"  {sc}  {t[:150]}")
    assert len(items) > 1000
    assert either / len(items) <= ESCONV_DEV_GUARD  # a regression guard at the recall-first threshold


def test_deterministic(learned):
    a = learned.score("I gave my guitar away, I won't need it where I'm going.", ["I'm so tired."])
    b = learned.score("I gave my guitar away, I won't need it where I'm going.", ["I'm so tired."])
    assert a == b


def test_context_changes_the_score(learned):
    alone = learned.score("I've made my choice, it's this weekend.")
    crisis = learned.score("I've made my choice, it's this weekend.", ["I can't stop thinking about dying."])
    print(f"\nwithout context {alone.score:.3f}, after a crisis turn {crisis.score:.3f}")
    assert crisis.score > alone.score and crisis.flagged


def _raise(texts):
    raise RuntimeError("embedding model crashed")


def test_learned_stage_failure_fails_closed(tmp_path):
    """Whatever breaks in the learned stage, the message gets the protocol (and the event says why)."""
    log = SafetyEventLog(tmp_path / "events.jsonl")
    bad_shape = LearnedStage(embed=lambda texts: [[0.0] * 5 for _ in texts])
    import asyncio

    for stage, why in ((LearnedStage(embed=_raise), "embedding model crashed"), (bad_shape, "dims")):
        layer = SafetyLayer(learned=stage, event_log=log, source="test")
        d = asyncio.run(layer.assess([Turn(speaker="seeker", text="I had a nice walk in the park today.")]))
        assert d.flagged and d.stage == "learned" and d.category == "suicide" and why in d.learned_error
        assert "Thank you for telling me" in layer.protocol_reply(d)
        d2 = asyncio.run(layer.assess([Turn(speaker="seeker", text="I can't take it anymore.")]))
        assert d2.flagged and d2.category == d2.rules.category  # the rules' ambiguous category is kept
    events = log.read()
    assert len(events) == 4 and all(e["learned_error"] and e["action"] == "protocol" for e in events)


def test_layer_combines_rules_learned_and_logs(learned, tmp_path):
    log = SafetyEventLog(tmp_path / "events.jsonl")
    layer = SafetyLayer(learned=learned, event_log=log, source="test", locale="en-GB")
    import asyncio

    hist = [
        Turn(speaker="seeker", text="I've been feeling like a burden to my family."),
        Turn(speaker="supporter", text="That sounds heavy. What makes you feel that way?"),
        Turn(speaker="seeker", text="I put the tablets I've been keeping in an envelope with their names on it."),
    ]
    d = asyncio.run(layer.assess(hist))
    assert d.flagged and d.stage == "learned" and d.learned.score >= learned.threshold
    assert "116 123" in layer.protocol_reply(d)
    benign = asyncio.run(layer.assess([Turn(speaker="seeker", text="My sister's wedding was lovely.")]))
    assert not benign.flagged and benign.learned is not None and benign.learned.score < learned.threshold
    high = asyncio.run(layer.assess([Turn(speaker="seeker", text="I want to kill myself")]))
    assert high.stage == "rules" and high.learned is None  # the rules decided; the learned stage is not asked
    events = log.read()
    assert [e["stage"] for e in events] == ["learned", "rules"] and events[0]["learned"]["flagged"]


def test_bad_model_file_is_a_user_error(tmp_path):
    from socialsim.errors import UserError

    with pytest.raises(UserError, match="not found"):
        LearnedStage(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"classes": ["none"]}')
    with pytest.raises(UserError, match="not a learned safety model"):
        LearnedStage(bad)
    with pytest.raises(UserError, match="threshold"):
        LearnedStage(threshold=1.5)


def test_train_and_heldout_do_not_overlap(learned):
    """No test-set message is a near-copy of a training message (cosine of their embeddings)."""
    import numpy as np

    from socialsim.embeddings import embed
    from socialsim.safety.learned_build import TRAIN_SETS

    train = [r.text for n in TRAIN_SETS for r in load_labelled(labelled_path(n))]
    held = [r.text for n in (TEST_SET, SECOND_TEST_SET) for r in load_labelled(labelled_path(n))]
    sims = embed(held) @ embed(train).T
    i, j = np.unravel_index(np.argmax(sims), sims.shape)
    print(f"\nmost similar test/train pair: {sims[i, j]:.3f}: {held[i]!r} / {train[j]!r}")
    assert float(sims.max()) < 0.95


def test_model_file_rebuilds_from_checked_in_data(tmp_path):
    """``python -m socialsim.safety.learned_build`` on the checked-in training sets gives a model that
    scores like the shipped file: the same training data and support-vector count, the threshold and
    every risk score on the labelled sets equal up to float noise, and the same decisions away from the
    threshold. (Coefficients are not compared one by one: the solver turns the last digits of the
    embeddings, which differ between CPUs' kernels, into differences above 1e-3 in a few of them.)"""
    import numpy as np

    from socialsim.safety.learned_build import TRAIN_SETS, build

    out = tmp_path / "model.json"
    new = build([labelled_path(n) for n in TRAIN_SETS], out)
    shipped = json.loads(default_model_path().read_text())
    assert new["train_sha256"] == shipped["train_sha256"], "training data changed: rebuild the model file"
    assert abs(new["threshold"] - shipped["threshold"]) < 2e-3
    assert new["flag_model"]["shape"] == shipped["flag_model"]["shape"]
    rows = [r for n in (*TRAIN_SETS, TEST_SET) for r in load_labelled(labelled_path(n))]
    items = [(r.text, r.context) for r in rows]
    a, b = LearnedStage(out), LearnedStage()
    ra, rb = np.array([x.score for x in a.score_many(items)]), np.array([x.score for x in b.score_many(items)])
    assert float(np.abs(ra - rb).max()) < 0.02
    clear = (np.abs(ra - a.threshold) > 0.02) & (np.abs(rb - b.threshold) > 0.02)
    assert clear.sum() > 0.9 * len(rows)
    assert ((ra >= a.threshold) == (rb >= b.threshold))[clear].all()
