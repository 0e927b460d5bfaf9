"""ESConv's eight supporter strategies, in one place: the labels, what each asks of a supporter (the
supporter's prompts and the report), what a reply using it looks like with two examples (the realized-strategy
classifier's prompt), a short name (figures) and the older or variant spellings found in ESConv material.

Every stage reads the strategies from here: `socialsim.schema` re-exports `Strategy`, `STRATEGY_ALIASES` and
`parse_strategy`; the agents' prompts, the classifier and the evaluation report render `TAXONOMY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Strategy(StrEnum):
    """The eight supporter strategies of ESConv, with their exact labels."""

    QUESTION = "Question"
    RESTATEMENT = "Restatement or Paraphrasing"
    REFLECTION = "Reflection of feelings"
    SELF_DISCLOSURE = "Self-disclosure"
    AFFIRMATION = "Affirmation and Reassurance"
    SUGGESTION = "Providing Suggestions"
    INFORMATION = "Information"
    OTHERS = "Others"


@dataclass(frozen=True)
class StrategyInfo:
    """One strategy: ``definition`` tells a supporter what to do; ``description`` and ``examples`` tell a
    classifier what a reply doing it looks like; ``aliases`` are lower-case older spellings."""

    strategy: Strategy
    short: str
    definition: str
    description: str
    examples: tuple[str, str]
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.strategy.value


_INFOS = (
    StrategyInfo(
        Strategy.QUESTION,
        short="Question",
        definition="Ask an open question to help them explore and explain their situation.",
        description='the message mainly asks something (it usually ends with "?").',
        examples=("What happened after you told your manager?", "How long have you been feeling this way?"),
        aliases=("questions",),
    ),
    StrategyInfo(
        Strategy.RESTATEMENT,
        short="Restatement",
        definition="Briefly restate what they said in your own words so they know you understood.",
        description="it repeats what the other person said in other words.",
        examples=(
            "So you're saying your sister keeps borrowing money and never pays it back.",
            "It sounds like the move left you without the friends you relied on.",
        ),
        aliases=("restatement", "paraphrasing"),
    ),
    StrategyInfo(
        Strategy.REFLECTION,
        short="Reflection",
        definition="Name the feelings they seem to have and show you understand them.",
        description="it names the feelings the other person seems to have.",
        examples=(
            "You seem really hurt and a bit angry about how she treated you.",
            "That must feel so lonely and frustrating.",
        ),
        aliases=("reflection of feeling",),
    ),
    StrategyInfo(
        Strategy.SELF_DISCLOSURE,
        short="Self-discl.",
        definition="Share a short, similar experience of your own to show you relate.",
        description='the supporter tells about their own similar experience ("I also ...").',
        examples=(
            "I went through something similar when I lost my job last year.",
            "When my parents divorced I also felt stuck in the middle.",
        ),
    ),
    StrategyInfo(
        Strategy.AFFIRMATION,
        short="Affirmation",
        definition="Affirm their strengths and efforts and reassure them.",
        description="it praises the person's strengths or efforts, or reassures them.",
        examples=(
            "You are doing the best you can, and that takes real strength.",
            "It's completely normal to feel this way, and things can get better.",
        ),
        aliases=("approval and reassurance",),
    ),
    StrategyInfo(
        Strategy.SUGGESTION,
        short="Suggestions",
        definition="Offer a gentle, concrete suggestion about what they could try.",
        description="it suggests what the person could do.",
        examples=(
            "Maybe you could try writing down your worries before bed.",
            "Have you thought about talking to a counselor at your school?",
        ),
        aliases=("direct guidance", "suggestion", "suggestions"),
    ),
    StrategyInfo(
        Strategy.INFORMATION,
        short="Information",
        definition="Give useful, accurate information, facts or resources.",
        description="it gives facts, information or resources.",
        examples=(
            "Many people find that regular exercise reduces anxiety.",
            "There are free helplines that you can call any time of day.",
        ),
    ),
    StrategyInfo(
        Strategy.OTHERS,
        short="Others",
        definition="Greet, thank, or say something warm that fits none of the above.",
        description="greetings, thanks, goodbyes, and anything else.",
        examples=("Hello, how are you today?", "You're welcome, I'm glad I could help. Take care!"),
        aliases=("other",),
    ),
)

#: Every strategy's `StrategyInfo`, in `Strategy` order.
TAXONOMY: dict[Strategy, StrategyInfo] = {i.strategy: i for i in _INFOS}
#: Older or variant labels found in ESConv material, mapped to the eight current ones.
STRATEGY_ALIASES: dict[str, Strategy] = {a: i.strategy for i in _INFOS for a in i.aliases}
#: Short names for figure ticks and narrow tables, by label.
SHORT: dict[str, str] = {i.label: i.short for i in _INFOS}

_STRATEGY_BY_LABEL = {s.value.lower(): s for s in Strategy}


def parse_strategy(label: str) -> Strategy:
    """Map an exact, older or differently cased strategy label to a `Strategy`.

    Raises `ValueError` naming the eight valid labels when the label is unknown.
    """
    text = label.strip().strip("[]").strip().lower()
    found = _STRATEGY_BY_LABEL.get(text) or STRATEGY_ALIASES.get(text)
    if found is not None:
        return found
    valid = ", ".join(s.value for s in Strategy)
    raise ValueError(f"unknown strategy {label!r} (expected one of: {valid})")


def definitions() -> dict[Strategy, str]:
    """What each strategy asks of a supporter (its ``definition``)."""
    return {s: i.definition for s, i in TAXONOMY.items()}


def prompt_list(defs: dict[Strategy, str] | None = None) -> list[dict[str, object]]:
    """The strategies as prompt templates read them: label, short, definition, description, examples
    (``defs`` replaces the definitions, e.g. a prompt folder's own)."""
    return [
        {
            "label": i.label,
            "short": i.short,
            "definition": (defs or {}).get(s, i.definition),
            "description": i.description,
            "examples": list(i.examples),
        }
        for s, i in TAXONOMY.items()
    ]

