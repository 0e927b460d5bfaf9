"""Disclosure policies: how far a seeker opens up, given what the supporter's replies did.

The seeker has three layers: 0 surface complaint, 1 context and events, 2 core worry. Every policy is a
`DisclosurePolicy`: the dialogue loop hands it the `Evidence` of each supporter reply (`observe`, which
returns the layer the seeker may now speak from) and asks it whether the seeker leaves (`leaving`). At most
one new layer opens per reply; a layer never closes. The policies (`DISCLOSURE_POLICIES`, `make_policy`):

``observed`` (the default, `ObservedDisclosure`): trust follows what the reply did, observed: the strategy
recognizer's probabilities for the reply, weighted by a model-free sign that it answered what the seeker
just said (`answered_score`); no extra LLM call. Per reply (`observed_points`):

- listening, 2 × (P(Reflection of feelings) + P(Restatement or Paraphrasing) + P(Affirmation and Reassurance));
- asking, 1.5 × P(Question);
- both × the answered factor 0.6 + 0.4 × answered (answered 0..1; 0.5 when there is no seeker line);
- directing, −2 × (P(Providing Suggestions) + P(Information)) while the core is not out, 0 after;
- a crisis-protocol reply (``risk_reason`` 'protocol:…') earns exactly 0 and counts for nothing.

Points never fall below zero. Layer 1 opens at 1 point, layer 2 at 2.5 points once one reply has listened
(listening probability × answered factor ≥ 0.3). The seeker says goodbye once the core is out and
``feel_heard_after`` later replies (at least one) each earned ≥ 1 point; it leaves dismissed after 3 replies
in a row that earned less than −0.5. Thresholds: `scripts/calibrate_disclosure.py` on ESConv's valid split.

``observed+appraisal``: the same, plus the seeker model's appraisal of each reply (one extra call): felt
understood 1..5 scales the reply's positive points by 0.8..1.2. The appraisal cannot open a layer by itself
(a layer opens only on a reply whose observed points are positive) nor shut one or end the dialogue (the
goodbye and the dismissal count observed points only).

``appraisal`` (`AppraisalDisclosure`, the earlier default): the seeker model's appraisal alone
(`SeekerAppraisal`): felt understood 1..5 gives -2..+2; felt as validating +1; premature advice -2; judged or
rushed -2; ready to say more +1. Layer 1 at 2 points, layer 2 at 5 once a reply felt validating with
felt-understood >= 4; goodbye after ``feel_heard_after`` appraisals with felt-understood >= 4 after the core,
dismissed after `DISMISSED_AFTER` dismissive appraisals in a row. The 1.5B model cannot appraise (issue #26:
``reply_did`` 'shared' for 38 of 40 replies), so on it the core never opens.

``strategy-rule`` (`DisclosureState`, no extra call): points per *declared* strategy (`POINTS`; Providing
Suggestions -1 before the core), layer 1 at 1 point, layer 2 at 4 once a validating strategy was declared;
goodbye ``feel_heard_after`` replies after the core.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from socialsim.schema import ReplyAct, SeekerAppraisal, Strategy

Leave = Literal["heard", "dismissed"]


@dataclass(frozen=True)
class Evidence:
    """What one supporter reply did, as a disclosure policy sees it."""

    probs: Mapping[str, float] | None = None
    """The strategy recognizer's probability of each of ESConv's 8 strategies, by label (`Turn.realized_probs`);
    None when nothing recognized the reply (then `ObservedDisclosure` earns nothing from it)."""
    declared: Strategy | None = None
    """The strategy the supporter declared (None: a supporter without strategies, e.g. a plain chatbot)."""
    protocol: bool = False
    """The reply is the fixed crisis protocol (``risk_reason`` 'protocol:…'): it earns nothing."""
    answered: float | None = None
    """0..1, a model-free sign that the reply answered the seeker's last line (`answered_score`); None: unknown."""
    layer: int = 0
    """The layer the seeker spoke from before this reply."""
    appraisal: SeekerAppraisal | None = None
    """The seeker model's appraisal of the reply, when the policy asked for one (`DisclosurePolicy.wants_appraisal`)."""

    def p(self, *strategies: Strategy) -> float:
        """The summed recognizer probability of ``strategies`` (0 without probabilities)."""
        if self.probs is None:
            return 0.0
        return sum(float(self.probs.get(s.value, 0.0)) for s in strategies)


class DisclosurePolicy(ABC):
    """Decides, reply by reply, the layer the seeker may speak from and when it leaves.

    The dialogue loop calls only this interface: it asks for an appraisal when `wants_appraisal`, fills
    `Evidence.probs` (running the recognizer itself when the turn has none) when `needs_probs`, and
    `Evidence.answered` when `needs_answered`; then `observe`, then `leaving`."""

    name: str = ""
    wants_appraisal: bool = False
    """The seeker's model appraises each reply (`Seeker.appraise`, one extra call a turn)."""
    needs_probs: bool = False
    """The policy reads the recognizer's probabilities of each reply."""
    needs_answered: bool = False
    """The policy reads `answered_score` of each reply."""
    layer: int = 0

    @abstractmethod
    def observe(self, ev: Evidence) -> int:
        """Account for one supporter reply; returns the layer the seeker may now speak from."""

    @abstractmethod
    def leaving(self) -> Leave | None:
        """After the latest `observe`: 'heard' (goodbye), 'dismissed' (leaves early) or None (stays)."""

    def turns_left(self, cap_left: int) -> int:
        """An upper bound on the supporter replies still to come, at most ``cap_left`` (the engine's
        scheduler estimate: it must never be lower than the replies the dialogue really takes)."""
        return cap_left


# -- strategy-rule -----------------------------------------------------------------------------------------

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
class DisclosureState(DisclosurePolicy):
    """The ``strategy-rule`` policy: points per declared strategy (see the module docstring)."""

    layer: int = 0
    points: int = 0
    validated: bool = False
    feel_heard_after: int = 2
    since_core: int | None = None
    """Replies observed after the one that opened the core (None: the core is not out)."""
    name = "strategy-rule"

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

    def observe(self, ev: Evidence) -> int:
        """`update` with the declared strategy (a supporter without one earns nothing)."""
        if self.since_core is not None:
            self.since_core += 1
        layer = self.update(ev.declared or Strategy.OTHERS)
        if layer == 2 and self.since_core is None:
            self.since_core = 0
        return layer

    def step(self, strategy: Strategy | None, appraisal: SeekerAppraisal | None = None) -> int:
        """`observe` of a reply that declared ``strategy`` (the appraisal plays no part)."""
        return self.observe(Evidence(declared=strategy, layer=self.layer, appraisal=appraisal))

    def leaving(self) -> Leave | None:
        if self.since_core is not None and self.since_core >= self.feel_heard_after:
            return "heard"
        return None

    def turns_left(self, cap_left: int) -> int:
        # the goodbye comes feel_heard_after replies after the core: known once the core is out
        if self.since_core is None:
            return cap_left
        return max(1, min(cap_left, self.feel_heard_after - self.since_core))


# -- appraisal ---------------------------------------------------------------------------------------------

APPRAISAL_LAYER_1 = 2
APPRAISAL_LAYER_2 = 5
DISMISSED_AFTER = 3
"""Replies in a row that went badly (appraisal: felt dismissive; observed: points < `POOR_BELOW`) before the
seeker leaves dismissed."""
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
    """The appraisal felt dismissive: felt-understood <= 2, or judged/rushed."""
    return a.felt_understood <= 2 or a.judged_or_rushed


@dataclass
class AppraisalDisclosure(DisclosurePolicy):
    """The ``appraisal`` policy: deterministic given the sequence of appraisals."""

    feel_heard_after: int = 2
    layer: int = 0
    points: int = 0
    validated: bool = False
    heard: int = 0
    dismissed_streak: int = 0
    name = "appraisal"
    wants_appraisal = True

    def observe(self, ev: Evidence) -> int:
        """Account for one appraised reply; a reply without an appraisal (its output did not validate)
        changes nothing."""
        a = ev.appraisal
        if a is None:
            return self.layer
        core_was_open = self.layer == 2
        self.points = max(0, self.points + appraisal_points(a, self.layer))
        self.validated = self.validated or (a.reply_did in _VALIDATING_ACTS and a.felt_understood >= 4)
        self.dismissed_streak = self.dismissed_streak + 1 if dismissive(a) else 0
        if core_was_open and a.felt_understood >= 4 and not a.judged_or_rushed:
            self.heard += 1
        target = 0
        if self.points >= APPRAISAL_LAYER_1:
            target = 1
        if self.points >= APPRAISAL_LAYER_2 and self.validated:
            target = 2
        if target > self.layer:
            self.layer += 1
        return self.layer

    def step(self, strategy: Strategy | None, appraisal: SeekerAppraisal | None) -> int:
        """`observe` of a reply with this ``appraisal`` (the declared strategy plays no part)."""
        return self.observe(Evidence(declared=strategy, layer=self.layer, appraisal=appraisal))

    def leaving(self) -> Leave | None:
        if self.layer == 2 and self.heard >= max(1, self.feel_heard_after):
            return "heard"
        if self.dismissed_streak >= DISMISSED_AFTER:
            return "dismissed"
        return None


# -- observed (default) ------------------------------------------------------------------------------------

LISTEN = (Strategy.REFLECTION, Strategy.RESTATEMENT, Strategy.AFFIRMATION)
DIRECT = (Strategy.SUGGESTION, Strategy.INFORMATION)
LISTEN_WEIGHT = 2.0
QUESTION_WEIGHT = 1.5
DIRECT_WEIGHT = 2.0
"""Points per unit of probability: listening and asking earn, directing before the core is out costs."""
ANSWERED_FLOOR = 0.6
"""Answered factor = ANSWERED_FLOOR + (1 - ANSWERED_FLOOR) × answered: a reply that ignores the seeker's line
earns 60 % of what one that takes it up does."""
ANSWERED_LO, ANSWERED_HI = 0.05, 0.35
"""Cosine similarity (all-MiniLM-L6-v2) of reply and seeker line mapped to answered 0..1: on ESConv valid the
median similarity of a reply to the seeker line it answers is 0.31, to a random seeker line 0.10 (AUC 0.84)."""
OBSERVED_LAYER_1 = 1.0
OBSERVED_LAYER_2 = 2.5
LISTENED_AT = 0.3
"""The core opens only once a reply listened: listening probability × answered factor ≥ this."""
GOOD_AT = 1.0
"""A reply after the core earning this much makes the seeker feel heard."""
POOR_BELOW = -0.5
"""A reply earning less than this is a poor one; `DISMISSED_AFTER` in a row and the seeker leaves."""


def answered_factor(answered: float | None) -> float:
    """ANSWERED_FLOOR..1 from answered 0..1 (0.5 when unknown)."""
    a = 0.5 if answered is None else min(1.0, max(0.0, answered))
    return ANSWERED_FLOOR + (1 - ANSWERED_FLOOR) * a


def observed_points(ev: Evidence, layer: int) -> float:
    """The points one reply earns at ``layer`` from what it did (the appraisal aside; module docstring)."""
    if ev.protocol or ev.probs is None:
        return 0.0
    f = answered_factor(ev.answered)
    earned = f * (LISTEN_WEIGHT * ev.p(*LISTEN) + QUESTION_WEIGHT * ev.p(Strategy.QUESTION))
    if layer < 2:
        earned -= DIRECT_WEIGHT * ev.p(*DIRECT)
    return earned


def appraisal_factor(a: SeekerAppraisal | None) -> float:
    """0.8..1.2 from felt understood 1..5 (1 without an appraisal): scales a reply's positive points."""
    return 1.0 if a is None else 1.0 + 0.1 * (a.felt_understood - 3)


@dataclass
class ObservedDisclosure(DisclosurePolicy):
    """The ``observed`` policy (``observed+appraisal`` with ``use_appraisal``): trust from what each reply
    did, read by the strategy recognizer and the answered signal (module docstring)."""

    feel_heard_after: int = 2
    use_appraisal: bool = False
    layer: int = 0
    points: float = 0.0
    listened: bool = False
    heard: int = 0
    poor_streak: int = 0
    last_points: float = 0.0
    """What the latest reply earned (appraisal included)."""
    needs_probs = True
    needs_answered = True

    def __post_init__(self) -> None:
        self.wants_appraisal = self.use_appraisal
        self.name = "observed+appraisal" if self.use_appraisal else "observed"

    def observe(self, ev: Evidence) -> int:
        if ev.protocol:  # the crisis protocol earns nothing and breaks no streak
            self.last_points = 0.0
            return self.layer
        core_was_open = self.layer == 2
        seen = observed_points(ev, self.layer)
        earned = seen * appraisal_factor(ev.appraisal if self.use_appraisal else None) if seen > 0 else seen
        self.last_points = earned
        self.points = max(0.0, self.points + earned)
        self.listened = self.listened or answered_factor(ev.answered) * ev.p(*LISTEN) >= LISTENED_AT
        self.poor_streak = self.poor_streak + 1 if seen < POOR_BELOW else 0
        if core_was_open and seen >= GOOD_AT:
            self.heard += 1
        target = 0
        if self.points >= OBSERVED_LAYER_1:
            target = 1
        if self.points >= OBSERVED_LAYER_2 and self.listened:
            target = 2
        if target > self.layer and seen > 0:  # only a reply that itself earned can open a layer
            self.layer += 1
        return self.layer

    def leaving(self) -> Leave | None:
        if self.layer == 2 and self.heard >= max(1, self.feel_heard_after):
            return "heard"
        if self.poor_streak >= DISMISSED_AFTER:
            return "dismissed"
        return None


# -- the answered signal -----------------------------------------------------------------------------------


def answered_score(reply: str, seeker_line: str | None) -> float | None:
    """0..1: how much ``reply`` takes up ``seeker_line`` (cosine similarity of their all-MiniLM-L6-v2
    embeddings, mapped from `ANSWERED_LO`..`ANSWERED_HI`); None without a seeker line. CPU work (a few tens
    of ms); needs the [eval] extra like the recognizer."""
    if not seeker_line or not seeker_line.strip() or not reply.strip():
        return None
    from socialsim.embeddings import embed

    v = embed([reply, seeker_line])
    return answered_from_cosine(float((v[0] * v[1]).sum()))


def answered_from_cosine(cos: float) -> float:
    """Answered 0..1 from the cosine similarity of reply and seeker line (`ANSWERED_LO`..`ANSWERED_HI`)."""
    return min(1.0, max(0.0, (cos - ANSWERED_LO) / (ANSWERED_HI - ANSWERED_LO)))


@lru_cache(maxsize=1)
def note_self_recognized(policy: str) -> None:
    """Said once per process on stderr: the policy runs the recognizer itself."""
    print(
        f"note: disclosure '{policy}' reads the strategy recognizer's probabilities of each reply; the run does "
        "not label replies with the recognizer (--realized-strategy), so the policy runs it itself (not stored on the "
        "turns)",
        file=sys.stderr,
    )


# -- names -------------------------------------------------------------------------------------------------

DISCLOSURE_POLICIES = ("observed", "observed+appraisal", "appraisal", "strategy-rule")
DEFAULT_POLICY = "observed"


def make_policy(name: str, *, feel_heard_after: int = 2) -> DisclosurePolicy:
    """The disclosure policy called ``name`` (`DISCLOSURE_POLICIES`)."""
    if name == "observed":
        return ObservedDisclosure(feel_heard_after=feel_heard_after)
    if name == "observed+appraisal":
        return ObservedDisclosure(feel_heard_after=feel_heard_after, use_appraisal=True)
    if name == "appraisal":
        return AppraisalDisclosure(feel_heard_after=feel_heard_after)
    if name == "strategy-rule":
        return DisclosureState(feel_heard_after=feel_heard_after)
    raise ValueError(f"unknown disclosure policy {name!r}: use one of {', '.join(DISCLOSURE_POLICIES)}")


Policy = DisclosurePolicy
"""The earlier name of the interface."""

__all__ = [
    "DISCLOSURE_POLICIES",
    "AppraisalDisclosure",
    "DisclosurePolicy",
    "DisclosureState",
    "Evidence",
    "ObservedDisclosure",
    "answered_score",
    "make_policy",
    "observed_points",
]
