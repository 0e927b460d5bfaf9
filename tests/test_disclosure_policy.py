"""The appraisal disclosure policy: premature advice slows disclosure, validation speeds it, never more than
one layer per turn, deterministic given the appraisals; and the goodbye follows the appraisals."""

import pytest

from socialsim.agents.disclosure import (
    DISMISSED_AFTER,
    AppraisalDisclosure,
    DisclosureState,
    appraisal_points,
    make_policy,
)
from socialsim.schema import ReplyAct, SeekerAppraisal, Strategy


def A(u: int, did: str = "asked", judged: bool = False, more: bool = False) -> SeekerAppraisal:
    return SeekerAppraisal(felt_understood=u, judged_or_rushed=judged, reply_did=did, ready_to_say_more=more)


def layers(seq: list[SeekerAppraisal]) -> list[int]:
    p = AppraisalDisclosure()
    return [p.step(None, a) for a in seq]


def first_core(seq: list[SeekerAppraisal]) -> int | None:
    ls = layers(seq)
    return ls.index(2) if 2 in ls else None


def test_validation_speeds_disclosure_and_premature_advice_slows_it():
    validating = [A(4, "validated")] * 6
    asking = [A(4, "asked")] * 6
    advising = [A(4, "advised")] * 6
    assert first_core(validating) is not None
    assert first_core(asking) is None  # understood but never validated: the core stays closed
    assert layers(advising) == [0] * 6  # premature advice earns nothing, even when felt understood
    mixed = [A(4, "validated"), A(4, "advised"), A(4, "validated"), A(4, "validated"), A(4, "validated")]
    assert first_core(mixed) > first_core(validating)  # type: ignore[operator]


def test_advice_after_the_core_is_not_premature():
    assert appraisal_points(A(4, "advised"), layer=2) == 1
    assert appraisal_points(A(4, "advised"), layer=1) == -1


def test_judgement_costs_trust_and_points_never_go_negative():
    p = AppraisalDisclosure()
    p.step(None, A(5, "reflected"))
    assert p.points == 3 and p.layer == 1
    p.step(None, A(3, "other", judged=True))
    assert p.points == 1
    p.step(None, A(1, "advised", judged=True))
    assert p.points == 0


def test_never_more_than_one_layer_per_turn():
    p = AppraisalDisclosure(points=50, validated=True)
    assert p.step(None, A(5, "validated", more=True)) == 1
    assert p.step(None, A(5, "validated", more=True)) == 2
    for seq in ([A(5, "validated", more=True)] * 5, [A(1)] + [A(5, "reflected", more=True)] * 4):
        ls = layers(seq)
        assert all(b - a <= 1 and b >= a for a, b in zip([0, *ls], ls, strict=False))


def test_deterministic_given_appraisals():
    seq = [A(3), A(4, "reflected"), A(2, "advised", judged=True), A(5, "validated", more=True), A(4, "asked")]
    assert layers(seq) == layers(list(seq))
    assert layers(seq) == layers([a.model_copy() for a in seq])


def test_missing_appraisal_changes_nothing():
    p = AppraisalDisclosure()
    p.step(None, A(5, "validated"))
    before = (p.layer, p.points)
    assert p.step(Strategy.REFLECTION, None) == before[0] and p.points == before[1]


def test_leaves_when_heard_after_the_core():
    p = AppraisalDisclosure(feel_heard_after=2)
    while p.layer < 2:
        p.step(None, A(5, "validated", more=True))
    assert p.leaving() is None
    p.step(None, A(4, "asked"))
    assert p.leaving() is None
    p.step(None, A(2, "advised"))  # not heard: does not count
    assert p.leaving() is None
    p.step(None, A(5, "reflected"))
    assert p.leaving() == "heard"


def test_leaves_early_when_dismissed():
    p = AppraisalDisclosure()
    for i in range(DISMISSED_AFTER):
        assert p.leaving() is None, i
        p.step(None, A(1, "advised", judged=True))
    assert p.leaving() == "dismissed"
    q = AppraisalDisclosure()
    for a in [A(1), A(2), A(4, "reflected"), A(1), A(2)]:  # a good reply in between resets the streak
        q.step(None, a)
    assert q.leaving() is None


def test_strategy_rule_policy_is_todays_rule_and_ignores_appraisals():
    p = make_policy("strategy-rule")
    assert isinstance(p, DisclosureState)
    assert p.step(Strategy.QUESTION, A(1, judged=True)) == 1
    assert p.step(None, A(5, "validated")) == 1  # no strategy: earns nothing
    with pytest.raises(ValueError, match=r"observed, observed\+appraisal, appraisal, strategy-rule"):
        make_policy("vibes")


def test_appraisal_parses_loose_model_output():
    a = SeekerAppraisal.model_validate(
        {"felt_understood": 4, "judged_or_rushed": False, "reply_did": " Reflected", "ready_to_say_more": True}
    )
    assert a.reply_did is ReplyAct.REFLECTED
    with pytest.raises(ValueError):
        SeekerAppraisal.model_validate({"felt_understood": 9, "judged_or_rushed": False, "reply_did": "x",
                                        "ready_to_say_more": True})
