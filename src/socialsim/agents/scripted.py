"""A supporter that says a fixed list of replies, in order: for experiments on the seeker side (does the
seeker's disclosure follow what the supporter does? `scripts/scripted_supporters.py`).

Two lists ship, written in ESConv's style (one or two short sentences) and generic enough to fit any
persona: `LISTENING_REPLIES` reflects, validates and asks open questions; `ADVISING_REPLIES` advises and
informs from the first turn. Each reply carries the strategy it was written to carry out (the declared
strategy, `Turn.strategy`); what the reply really did is read by the recognizer, as for any supporter.
"""

from __future__ import annotations

from collections.abc import Sequence

from socialsim.schema import Strategy, Turn

LISTENING_REPLIES: tuple[tuple[str, Strategy], ...] = (
    ("Hi, I'm here to listen. What has been going on for you?", Strategy.QUESTION),
    ("That sounds really hard. It makes sense that you feel this way.", Strategy.REFLECTION),
    ("So this has been building up for a while, and you have been carrying it mostly on your own.",
     Strategy.RESTATEMENT),
    ("How has all of this been affecting you from day to day?", Strategy.QUESTION),
    ("I can hear how much this has been weighing on you. Your feelings are completely valid.",
     Strategy.AFFIRMATION),
    ("What worries you the most about it?", Strategy.QUESTION),
    ("It sounds like this has hurt you deeply. Thank you for trusting me with it.", Strategy.REFLECTION),
    ("You are being really honest about something painful, and that takes courage.", Strategy.AFFIRMATION),
)  # fmt: skip
"""Reflecting, validating and open questions, from the first reply."""

ADVISING_REPLIES: tuple[tuple[str, Strategy], ...] = (
    ("Hi! You should make a list of everything that is bothering you and deal with one thing at a time.",
     Strategy.SUGGESTION),
    ("Studies show that regular exercise reduces stress and improves your mood.", Strategy.INFORMATION),
    ("I suggest you talk to a counselor or a doctor about this as soon as possible.", Strategy.SUGGESTION),
    ("Many people find that meditation apps help them relax and sleep better.", Strategy.INFORMATION),
    ("You should set a regular sleep schedule and cut down on caffeine.", Strategy.SUGGESTION),
    ("Eating well and getting enough sleep are important for your mental health.", Strategy.INFORMATION),
    ("Try writing in a journal every night before bed.", Strategy.SUGGESTION),
    ("There are online support groups where people share tips for situations like this.", Strategy.INFORMATION),
)  # fmt: skip
"""Advice and information, from the first reply."""

SCRIPTS: dict[str, tuple[tuple[str, Strategy], ...]] = {"listening": LISTENING_REPLIES, "advising": ADVISING_REPLIES}


class ScriptedSupporter:
    """Says ``replies[k]`` as its k-th reply (the last one again once the list runs out), whatever the seeker
    said; no LLM call. Plugs into `socialsim.simulate.dialogue.simulate_dialogue` as ``supporter``."""

    def __init__(self, replies: Sequence[tuple[str, Strategy | None]]) -> None:
        if not replies:
            raise ValueError("a scripted supporter needs at least one reply")
        self.replies = list(replies)
        self.said = 0

    async def respond(self, history: list[Turn], *, turn_index: int) -> Turn:
        """The next reply of the list, with the strategy it was written to carry out."""
        text, strategy = self.replies[min(self.said, len(self.replies) - 1)]
        self.said += 1
        return Turn(speaker="supporter", text=text, strategy=strategy)
