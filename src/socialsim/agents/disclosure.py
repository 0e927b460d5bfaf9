"""The social-disclosure rule: how far a seeker opens up, given how the supporter has behaved.

The seeker has three layers: 0 surface complaint, 1 context and events, 2 core worry. Each
supporter turn earns trust points by its strategy:

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

from socialsim.schema import Strategy

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
