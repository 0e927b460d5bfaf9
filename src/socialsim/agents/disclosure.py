"""Disclosure policies: how far a seeker opens up, given how the supporter has behaved.

The seeker has three layers: 0 surface complaint, 1 context and events, 2 core worry. Two policies:

``appraisal`` (the default, `AppraisalDisclosure`): after each supporter reply the seeker's model
appraises it (`SeekerAppraisal`); trust points follow that appraisal, not the label the supporter
declared:

- felt understood 1..5 gives -2, -1, 0, +1, +2;
- the reply validated (reflected, validated or reassured, as the seeker felt it) +1;
- premature advice (advised before the core is out) -2; judged or rushed -2;
- ready to say more +1.

Points never fall below zero. Layer 1 opens at 2 points, layer 2 at 5 points and only once a reply
was felt as validating with felt-understood >= 4. At most one new layer per turn, none closes. The
seeker leaves when it feels heard (``feel_heard_after`` appraisals with felt-understood >= 4 and not
judged since the core opened; at least one), or earlier when it feels dismissed (`DISMISSED_AFTER`
appraisals in a row with felt-understood <= 2 or judged/rushed: end reason ``seeker_dismissed``).
A turn without an appraisal (its output did not validate) changes nothing.

``strategy-rule`` (`DisclosureState`, the earlier rule, no extra call): each supporter turn earns
trust points by the strategy it declares:

==============================  ======
strategy                        points
==============================  ======
Restatement or Paraphrasing     2
Reflection of feelings          2
Question                        1
Affirmation and Reassurance     1
Self-disclosure                 1
Others, Information             0
Providing Suggestions           -1 before the core is disclosed (premature advice), else 0
==============================  ======

Points never fall below zero. The seeker reaches layer 1 at 1 point and layer 2 at 4 points,
and only after at least one *validating* turn (Restatement, Reflection or Affirmation). A layer
never closes again once reached, and at most one new layer opens per supporter turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from socialsim.schema import ReplyAct, SeekerAppraisal, Strategy

POINTS: dict[Strategy, int] = {
    Strategy.RESTATEMENT: 2,
    Strategy.REFLECTION: 2,
    Strategy.QUESTION: 1,
    Strategy.AFFIRMATION: 1,
    Strategy.SELF_DISCLOSURE: 1,
    Strategy.OTHERS: 0,
    Strategy.INFORMATION: 0,
    Strategy.SUGGESTION: 0,
}
VALIDATING = frozenset({Strategy.RESTATEMENT, Strategy.REFLECTION, Strategy.AFFIRMATION})
LAYER_1_POINTS = 1
LAYER_2_POINTS = 4


@dataclass
class DisclosureState:
    layer: int = 0
    points: int = 0
    validated: bool = False

    def update(self, strategy: Strategy) -> int:
        """Account for one supporter turn; returns the layer the seeker may now speak from."""
        delta = POINTS[strategy]
        if strategy is Strategy.SUGGESTION and self.layer < 2:
            delta = -1
        self.points = max(0, self.points + delta)
        self.validated = self.validated or strategy in VALIDATING
        target = 0
        if self.points >= LAYER_1_POINTS:
            target = 1
        if self.points >= LAYER_2_POINTS and self.validated:
            target = 2
        if target > self.layer:
            self.layer += 1
        return self.layer

    def step(self, strategy: Strategy | None, appraisal: SeekerAppraisal | None) -> int:
        """`update` with the declared strategy (a supporter without one earns nothing); ignores the appraisal."""
        return self.update(strategy or Strategy.OTHERS)


Leave = Literal["heard", "dismissed"]

APPRAISAL_LAYER_1 = 2
APPRAISAL_LAYER_2 = 5
DISMISSED_AFTER = 3
"""Appraisals in a row that felt dismissive (felt-understood <= 2, or judged/rushed) before the seeker leaves."""
_VALIDATING_ACTS = frozenset({ReplyAct.REFLECTED, ReplyAct.VALIDATED, ReplyAct.REASSURED})


def appraisal_points(a: SeekerAppraisal, layer: int) -> int:
    """The trust points one appraisal earns at the current ``layer`` (see the module docstring)."""
    delta = a.felt_understood - 3
    if a.reply_did in _VALIDATING_ACTS:
        delta += 1
    if a.reply_did is ReplyAct.ADVISED and layer < 2:
        delta -= 2
    if a.judged_or_rushed:
        delta -= 2
    if a.ready_to_say_more:
        delta += 1
    return delta


def dismissive(a: SeekerAppraisal) -> bool:
    return a.felt_understood <= 2 or a.judged_or_rushed


@dataclass
class AppraisalDisclosure:
    """The ``appraisal`` policy: deterministic given the sequence of appraisals."""

    feel_heard_after: int = 2
    layer: int = 0
    points: int = 0
    validated: bool = False
    heard: int = 0
    dismissed_streak: int = 0

    def step(self, strategy: Strategy | None, appraisal: SeekerAppraisal | None) -> int:
        """Account for one appraised supporter reply; returns the layer the seeker may now speak from."""
        if appraisal is None:
            return self.layer
        core_was_open = self.layer == 2
        self.points = max(0, self.points + appraisal_points(appraisal, self.layer))
        self.validated = self.validated or (appraisal.reply_did in _VALIDATING_ACTS and appraisal.felt_understood >= 4)
        self.dismissed_streak = self.dismissed_streak + 1 if dismissive(appraisal) else 0
        if core_was_open and appraisal.felt_understood >= 4 and not appraisal.judged_or_rushed:
            self.heard += 1
        target = 0
        if self.points >= APPRAISAL_LAYER_1:
            target = 1
        if self.points >= APPRAISAL_LAYER_2 and self.validated:
            target = 2
        if target > self.layer:
            self.layer += 1
        return self.layer

    def leaving(self) -> Leave | None:
        if self.layer == 2 and self.heard >= max(1, self.feel_heard_after):
            return "heard"
        if self.dismissed_streak >= DISMISSED_AFTER:
            return "dismissed"
        return None


class Policy(Protocol):
    layer: int

    def step(self, strategy: Strategy | None, appraisal: SeekerAppraisal | None) -> int: ...


DISCLOSURE_POLICIES = ("appraisal", "strategy-rule")


def make_policy(name: str, *, feel_heard_after: int = 2) -> Policy:
    """The disclosure policy called ``name`` (`DISCLOSURE_POLICIES`)."""
    if name == "appraisal":
        return AppraisalDisclosure(feel_heard_after=feel_heard_after)
    if name == "strategy-rule":
        return DisclosureState()
    raise ValueError(f"unknown disclosure policy {name!r}: use {' or '.join(DISCLOSURE_POLICIES)}")
