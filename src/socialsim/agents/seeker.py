"""The seeker agent: plays a persona and discloses layer by layer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from socialsim.agents.common import (
    CaselessPatterns,
    clean_utterance,
    copied_run,
    derive_seed,
    longest_run,
    plain_words,
    refuses,
    total_usage,
    words,
)
from socialsim.agents.prompts import Prompts
from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.client import LLM
from socialsim.llm.structured import generate_structured
from socialsim.schema import Persona, Rejection, RejectionCheck, SeekerAppraisal, SeekerFormat, Turn

#: Supporter-like phrasings, named. The role check (`socialsim.recognize.voice`) keeps only those that
#: match no real seeker turn of ESConv's train split; `legacy_supporter_voice` used them all.
SUPPORTER_VOICE_RULES: list[tuple[str, str]] = [
    ("sympathy", r"\b(i'?m|i am) (so |really |very )?sorry (to hear|that you|you('re| are)|for what you)"),
    ("reflection", r"\bit (sounds|seems) like you\b"),
    ("offer", r"\bhow (can|may) i (help|support|assist)\b"),
    ("presence", r"\bi('m| am) (always )?here (for you|to (help|listen|support))\b"),
    ("advice", r"\b(you (should|could|might) (try|consider|talk)|have you (tried|considered|thought about))\b"),
    ("validation", r"\b(your feelings are valid|that must be (so |really )?(hard|difficult|tough))\b"),
    ("normalising",  # not "I don't know if it's okay to ...", a seeker's doubt
     r"(?<!\bif )(?<!\bwhether )"
     r"\bit'?s (completely |totally |perfectly )?(normal|okay|ok|understandable) (to|that you)\b"),
    ("ai", r"\bas an? (ai|language model|assistant|counse?llor|therapist|supporter)\b"),
    ("asks-feelings", r"\bhow (are|do) you (feel|feeling)\b"),
    ("role-label", r"^\s*(supporter|assistant|counse?llor)\s*:"),
    ("welcome", r"\b(glad|happy) (that )?(you('re| are)|to have you) here\b|\bwhat brings you\b"),
    ("sympathy-2", r"\bsorry (for|about) your\b|\b(what )?you('re| are) going through\b"),
    ("reassurance", r"\byou('re| are) (safe|not alone)\b|\bdon'?t hesitate\b|\breach out\b"),
    ("availability", r"\bi('ll| will) (always )?be (there|here)\b|\bhere for (you|whatever)\b"),
    ("understanding", r"\bi (completely |totally )?understand\b"),
    ("meta", r"\b(rewritten|revised|rephras\w*|json|the (seeker|supporter|response|text))\b|\bhere'?s (a|the)\b"),
    ("asks-about-them", r"\bhow('s| is| are) (you|your)\b|\bhow can we\b"),
]
_SUPPORTER_VOICE = CaselessPatterns(SUPPORTER_VOICE_RULES)
_PERSON = CaselessPatterns(
    [
        ("first", r"\b(i|i'm|i've|i'd|i'll|me|my|myself|mine)\b"),
        ("second", r"\b(you|you're|you've|you'd|you'll|your|yours|yourself)\b"),
    ]
)
_GOODBYE = re.compile(r"\b(good ?bye|bye|take care|talk (to you )?(later|soon))\b", re.I)


def supporter_rules(names: list[str]) -> CaselessPatterns:
    """The named `SUPPORTER_VOICE_RULES`, in their order (an unknown name is a ValueError)."""
    known = dict(SUPPORTER_VOICE_RULES)
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"unknown supporter-voice rules: {missing}")
    return CaselessPatterns([(n, rx) for n, rx in SUPPORTER_VOICE_RULES if n in set(names)])


def legacy_supporter_voice(text: str) -> str | None:
    """The old rule-only role check (every pattern, then a pronoun count), kept to measure against: it
    rejects one real ESConv seeker turn in eight ("you are right", "Hi, how are you?")."""
    # one pattern after the other: a union of them all took longer (73 vs 41 us on a short line)
    name = _SUPPORTER_VOICE.first(text)
    if name is not None:
        return name
    # a seeker talks about themself: mostly "I/my", not mostly "you/your"
    n = _PERSON.count(text)
    if n["second"] > n["first"]:
        return "second-person"
    return None


def supporter_voice(text: str, before: str | None = None) -> str | None:
    """Why a seeker line sounds like the supporter (``rule:<name>`` or ``voice:<score>``, from the role
    check `socialsim.recognize.voice` as `voice_judgement` applies it), else ``None``; ``before``: the turn it
    answers."""
    return voice_judgement(text, before)[0]


def voice_judgement(text: str, before: str | None = None) -> tuple[str | None, float]:
    """The role check's verdict on a seeker line (as `supporter_voice`: ``rule:<name>``, ``voice:<score>`` or
    None) together with its learned supporter-voice score (0..1), which ranks failed attempts. The rules of
    `socialsim.recognize.voice` judge first; then the learned score at the recognizer's threshold (as
    `VoiceRecognizer.check`: the one role check, whose two rates `tests/test_recognize.py` measures)."""
    from socialsim.recognize.voice import default_voice

    voice = default_voice()
    score = voice.scores([text], [before])[0]
    rule = voice.rules.first(text)  # the same order of judgement as VoiceRecognizer.check_many
    if rule is not None:
        return f"rule:{rule}", score
    if score >= voice.threshold:
        return f"voice:{score:.2f}", score
    return None, score


_WORD = re.compile(r"[a-z]{4,}")
_STOP = frozenset(
    "that this with have have been just about what when your they them their there then than from "
    "will would could should really feel feeling like know think make much more some very even also "
    "into only over because while where which being were does done dont cant things thing something "
    "anything nothing always never still back want going need said tell talk sure okay".split()
)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def narrates(text: str, persona: Persona) -> bool:
    """True when the seeker names itself other than in an introduction ("I'm Maya"): the model is
    narrating about the persona or addressing it, not speaking as it."""
    first = persona.name.split()[0]
    for m in re.finditer(rf"\b{re.escape(first)}\b", text):
        before = text[max(0, m.start() - 12) : m.start()].lower()
        if not re.search(r"(i'?m|i am|name is|it'?s)\s*$", before):
            return True
    return False


def says_goodbye(text: str) -> bool:
    return bool(_GOODBYE.search(text))


# -- the persona in the seeker's prompts ------------------------------------------------------------------

VOICE_FIELDS: tuple[str, ...] = (
    "name", "age", "gender", "occupation", "life_stage", "locale", "personality", "talk_style",
    "emotion_type", "initial_intensity", "experience_type",
)  # fmt: skip
"""Persona fields that shape how the seeker speaks: in the system prompt of every turn (`voice_lines`)."""
LAYER_FIELDS: dict[int, tuple[str, ...]] = {
    0: ("disclosure.surface",),
    1: ("situation", "disclosure.context", "coping_tried"),
    2: ("disclosure.core", "support_preferences", "risk"),
}
"""Persona fields the seeker may talk about from each disclosure layer on (`layer_fields`), shown in its turn
prompt as background notes once their layer is open, never before; the leak check covers them layer by layer."""
UNUSED_PERSONA_FIELDS: dict[str, str] = {
    "id": "an identifier for files and runs, not part of the person",
    "problem_type": "a category label for sampling and reports; the layers say in the persona's own words what "
    "the problem is (the label in a prompt invites 'I have ongoing depression')",
    "topic": "the source's own topic label, kept for provenance",
    "subtopic": "the source's own subtopic label(s), kept for provenance",
}
"""Persona fields no seeker prompt shows, and why (`tests/test_seeker_persona.py` holds every field to one of
`VOICE_FIELDS`, `LAYER_FIELDS` or this)."""

_TRAITS: dict[str, dict[str, str]] = {
    "openness": {"low": "prefers the familiar, wary of new ideas", "high": "curious, open to new ideas"},
    "conscientiousness": {"low": "easygoing about plans and duties", "high": "dutiful, hard on themself"},
    "extraversion": {"low": "reserved, slow to open up", "high": "outgoing and talkative"},
    "agreeableness": {"low": "blunt, can be prickly", "high": "warm, does not want to be a bother"},
    "neuroticism": {"low": "usually calm and steady", "high": "worries a lot, easily upset"},
}
_INTENSITY = {1: "mild", 2: "noticeable", 3: "strong", 4: "very strong", 5: "overwhelming"}
_LANG_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
RISK_NOTES: dict[str, str] = {
    "passive_death_thoughts": "passive thoughts of death at times (wishing not to wake up, thinking others would "
    "be better off without them), no plan",
}
"""What a persona's ``risk`` tells the seeker at the core layer (``none``: nothing)."""


def personality_words(p: Persona) -> str:
    """The persona's Big Five levels as plain words (medium levels say nothing); '' without any."""
    if p.personality is None:
        return ""
    return "; ".join(_TRAITS[k][v.value] for k, v in p.personality if v.value in _TRAITS[k])


def voice_lines(p: Persona) -> list[str]:
    """Who the persona is, as short background lines for the system prompt (`VOICE_FIELDS`)."""
    who = f"{p.age} years old" + (f", {p.gender}" if p.gender != "unknown" else "")
    if p.occupation != "unknown":
        who += f", occupation: {p.occupation}"
    lines = [who]
    if p.life_stage:
        lines.append(f"life stage: {p.life_stage}")
    if p.locale:
        parts = [x.strip() for x in p.locale.split(",") if x.strip()]
        if len(parts) > 1 and _LANG_TAG.match(parts[0]):
            lines.append(f"lives in {', '.join(parts[1:])} ({parts[0]})")
        else:
            lines.append(f"locale: {p.locale}")
    traits = personality_words(p)
    if traits:
        lines.append(f"personality: {traits}")
    if p.talk_style:
        lines.append(f"way of talking: {p.talk_style}")
    lines.append(
        f"main feeling: {p.emotion_type.value}, {_INTENSITY[p.initial_intensity]} ({p.initial_intensity} of 5)"
    )
    lines.append(
        "it is happening now"
        if p.experience_type == "current"
        else "it happened a while ago, but it still weighs on them"
    )
    return lines


def layer_fields(p: Persona, layer: int) -> list[tuple[str, str]]:
    """(field, text) of the persona fields that open at ``layer`` (`LAYER_FIELDS`), empty ones left out; a list
    field gives one text (its items joined by '; ')."""
    out: list[tuple[str, str]] = []
    for name in LAYER_FIELDS[layer]:
        if name.startswith("disclosure."):
            text = getattr(p.disclosure, name.split(".", 1)[1])
        elif name == "risk":
            text = RISK_NOTES.get(p.risk, "")
        else:
            value = getattr(p, name)
            text = "; ".join(value) if isinstance(value, list) else value
        if text:
            out.append((name, text))
    return out


_FACT_LABELS = {
    "disclosure.surface": "how things feel lately",
    "situation": "what has been happening",
    "disclosure.context": "more of the story",
    "coping_tried": "what {name} has already tried",
    "disclosure.core": "what worries {name} most, underneath",
    "support_preferences": "what {name} hopes for from this chat",
    "risk": "at {name}'s worst moments",
}


def known_facts(p: Persona, layer: int) -> list[tuple[str, str]]:
    """(label, text) of every persona field opened by ``layer``, for the turn prompt's background notes."""
    first = p.name.split()[0]
    return [
        (_FACT_LABELS[name].format(name=first), text) for i in range(layer + 1) for name, text in layer_fields(p, i)
    ]


def card_texts(p: Persona) -> list[tuple[str, str]]:
    """(field, text) of every persona field the seeker could copy word for word: each layer's fields, one
    item at a time for lists."""
    out: list[tuple[str, str]] = []
    for layer in LAYER_FIELDS:
        for name, text in layer_fields(p, layer):
            value = getattr(p, name, None)
            items = value if isinstance(value, list) else [text]
            out.extend((name, item) for item in items)
    return out


# -- repeats and recitations ----------------------------------------------------------------------------

RECITE_RUN = 8
"""Words in a row shared with a card field that make a seeker line a recitation of the card."""
RECITE_SHORT = 5
"""A shorter line is a recitation when it is at least this many words, all but one copied in a row."""
REPEAT_RATIO = 0.85
"""Similarity (difflib ratio of the normalized texts) at which a seeker line repeats an earlier one."""
REPEAT_MIN_WORDS = 4
"""Shorter seeker lines are never repeats."""
REPEAT_CONTAINED = 6
"""A line of this many words or more said whole inside another is a repeat."""
ECHO_RUN = 8
"""Words in a row shared with the supporter's message it answers that make a seeker line an echo of the supporter
(the model speaking the supporter's line back, e.g. "I understand that you're trying to manage your anxiety, and
I'm glad you've found ways to reduce stress."): a repeat. Real seekers: none of ESConv valid's 2,116 seeker turns
after a supporter turn (cut to two sentences as a seeker line is) shares 8 words in a row with it, 4 of train's
10,072 do; 7 words: 1 of valid's."""


SELF_RUN = 8
"""Words in a row shared with one of the seeker's own earlier lines that make a line a repeat, also when the rest is
new (the 1.5B model's demo seeker said "Even though I have some dogs that work with me and make me feel good about
life, this lack of motivation is starting to affect me." on three turns in a row). Real seekers: none of ESConv
valid's 2,210 seeker turns (a speaker's consecutive utterances joined, cut to two sentences) shares 8 words in a row
with an earlier seeker turn of its dialogue, 6 of train's 10,494 do (contractions written out, "it's" as "it is")."""


def self_echo(text: str, earlier: list[str]) -> int | None:
    """The most words in a row a seeker line shares with one of its ``earlier`` lines, when they are `SELF_RUN` or
    more; else None."""
    return copied_run(text, earlier, SELF_RUN)


def recites(text: str, persona: Persona) -> tuple[str, int] | None:
    """(field, words copied in a row) when a seeker line copies the persona card: a run of `RECITE_RUN` words
    of one field, or a line of `RECITE_SHORT` words or more copied whole but for one word; else None."""
    line = words(text)
    if len(line) < RECITE_SHORT:
        return None
    best: tuple[str, int] | None = None
    for name, field_text in card_texts(persona):
        n = longest_run(line, words(field_text))
        if (n >= RECITE_RUN or (n >= RECITE_SHORT and n >= len(line) - 1)) and (best is None or n > best[1]):
            best = (name, n)
    return best


def echoes(text: str, before: str | None) -> int | None:
    """The words in a row a seeker line copies from the supporter's message it answers (``before``), when they
    are `ECHO_RUN` or more; else None."""
    return copied_run(text, [before], ECHO_RUN)


def repeats(text: str, earlier: list[str]) -> float | None:
    """How closely a seeker line repeats the closest of its ``earlier`` lines, when it does: 1.0 for the same
    words, or an earlier line of `REPEAT_CONTAINED` words or more said whole inside it (or it inside one); else
    the difflib ratio of the normalized texts when it is at least `REPEAT_RATIO`. None: no repeat, and always
    for a line under `REPEAT_MIN_WORDS` words ("yes", "thank you" may come twice). On ESConv valid's 2,210
    seeker turns (a speaker's consecutive utterances joined) it flags none."""
    from difflib import SequenceMatcher

    mine = " ".join(plain_words(text))
    if len(words(text)) < REPEAT_MIN_WORDS:
        return None
    best: float | None = None
    for other in earlier:
        theirs = " ".join(plain_words(other))
        if not theirs:
            continue
        short, long_ = sorted((mine, theirs), key=len)
        if mine == theirs or (len(short.split()) >= REPEAT_CONTAINED and f" {short} " in f" {long_} "):
            r = 1.0
        else:
            r = SequenceMatcher(None, mine, theirs, autojunk=False).ratio()
            if r < REPEAT_RATIO:
                continue
        best = r if best is None else max(best, r)
    return best


def repetition(text: str, earlier: list[str], before: str | None) -> str | None:
    """Why a seeker line says again what was said, as a `Rejection` reason, else None: one of its ``earlier`` lines
    (``repeat:<ratio>``, `repeats`; ``self:<words>``, `self_echo`) or the message it answers (``echo:<words>``,
    `echoes`). The repeat check of `Seeker.judge`, and what `least_supporter_like` ranks last."""
    again = repeats(text, earlier)
    if again is not None:
        return f"repeat:{again:.2f}"
    run = self_echo(text, earlier)
    if run is not None:
        return f"self:{run}"
    echo = echoes(text, before)
    return f"echo:{echo}" if echo is not None else None


FALLBACK_LINE = "Sorry, I'm not sure how to put it."
"""The seeker's line when every attempt came back empty or was a refusal (``role_fallback``); never the persona card's
text."""


def least_supporter_like(
    rejected: list[Rejection],
    earlier: Sequence[str] = (),
    before: str | None = None,
    persona: Persona | None = None,
) -> Rejection | None:
    """The attempt to keep when every one failed: one that says something new (attempts that repeat one of the
    seeker's ``earlier`` lines or copy the supporter's message ``before`` (`echoes`), or that the repeat check
    rejected, last: a line said again adds nothing to a corpus), then the one the role check found least
    supporter-like (those it rejected last, then by the lowest voice score). None when every attempt was empty, a
    refusal (the model refusing to play the seeker) or a copy of the ``persona``'s card (`recites`, or rejected as
    one): never lines to keep, a card line must not reach the corpus."""

    def copies_card(r: Rejection) -> bool:
        return r.check == "recites" or (persona is not None and recites(r.text, persona) is not None)

    usable = [r for r in rejected if r.check not in ("empty", "refusal") and not copies_card(r)]
    if not usable:
        return None

    said = list(earlier)

    def said_before(r: Rejection) -> bool:
        return r.check == "repeat" or repetition(r.text, said, before) is not None

    return min(usable, key=lambda r: (said_before(r), r.check == "role",
                                      1.0 if r.voice_score is None else r.voice_score))  # fmt: skip


RETRY_OPENERS = ("I think", "I just", "I guess", "I feel", "I've been", "But I", "Well, I", "Maybe", "My")
"""How a regenerated seeker line begins in the ``text`` format (`Seeker.retry_start`): openings common in ESConv's
train seeker turns ("I think" begins 247 of them, "I just" 105, "I guess" 49, "My" 223 as a first word)."""


class Seeker:
    """Speaks only as the persona; sees only the disclosure layers opened so far."""

    def __init__(
        self,
        llm: LLM,
        persona: Persona,
        prompts: Prompts,
        *,
        seed: int,
        max_regenerations: int = 2,
        temperature: float = 0.8,
        max_tokens: int = 80,
        fidelity: Any = None,
        prompt_format: SeekerFormat = "transcript",
    ) -> None:
        """``fidelity``: a `socialsim.agents.fidelity.FidelityCheck` (leaked lines are then regenerated like
        role slips, and each turn records its figures), or None. ``prompt_format``: how the prompt holds the
        conversation (`SimulationConfig.seeker_format`: 'text', 'transcript' or 'chat')."""
        self.llm, self.persona, self.prompts = llm, persona, prompts
        self.fidelity = fidelity
        self.prompt_format = prompt_format
        self.seed = seed
        self.max_regenerations = max_regenerations
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._system: str | None = None

    @property
    def chat_format(self) -> bool:
        """The ``chat`` format: the supporter's messages as user turns, the seeker's own as the model's."""
        return self.prompt_format == "chat"

    def opening_line(self) -> str:
        """The supporter's opening line (`seeker_opening.txt`) the first turn answers: in the prompt, and what the
        first line's checks judge it against."""
        return self.prompts.render("seeker_opening.txt")

    def system_prompt(self) -> str:
        """Who the persona is and how it talks (`voice_lines`), and the rules of the role: the same on every
        turn (llama.cpp reuses it as the prompt's prefix)."""
        if self._system is None:
            name = "seeker_chat_system.j2" if self.chat_format else "seeker_system.j2"
            self._system = self.prompts.render(name, p=self.persona, voice=voice_lines(self.persona))
        return self._system

    def appraisal_messages(self, history: list[Turn]) -> list[dict[str, str]]:
        """The persona's system prompt and the transcript as in the seeker's turn (llama.cpp reuses that
        prefix for the turn that follows), then one short question about the supporter's last reply."""
        user = self.prompts.render("seeker_appraisal.j2", p=self.persona, history=history)
        return [{"role": "system", "content": self.system_prompt()}, {"role": "user", "content": user}]

    async def appraise(
        self, history: list[Turn], *, turn_index: int, llm: LLM | None = None
    ) -> tuple[SeekerAppraisal | None, list[Completion]]:
        """The seeker's appraisal of the supporter's last reply (on ``llm``, default the seeker's own
        model), or None when its output never validated; and the completions it took (also when it failed)."""
        req = ChatRequest.of(
            self.appraisal_messages(history),
            temperature=0.3,
            max_tokens=60,
            seed=derive_seed(self.seed, "appraisal", turn_index),
        )
        try:
            a, completions = await generate_structured(llm or self.llm, req, SeekerAppraisal, attempts=2)
        except StructuredOutputError as e:
            return None, e.completions
        return a, list(completions)

    def messages(
        self,
        history: list[Turn],
        layer: int,
        goodbye: bool,
        dismissed: bool = False,
        retry: str | None = None,
    ) -> list[dict[str, str]]:
        """The system prompt (`system_prompt`), then one user message with the persona fields opened by ``layer``
        as background notes (`known_facts`: never a field of a layer still closed, never a line to say), the
        transcript, the supporter's last message set apart (the opening line on the first turn: the model
        answers it, as the seeker), what the seeker does now and, on a regeneration, a note saying what was
        wrong with the last attempt (``retry``: the check that rejected it, or ``echo`` for a repeat of the
        supporter's words)."""
        p = self.persona
        earlier, last = history, None
        if history and history[-1].speaker == "supporter":
            earlier, last = history[:-1], history[-1].text
        elif not history:
            last = self.opening_line()
        user = self.prompts.render(
            "seeker_turn.j2",
            p=p,
            earlier=earlier,
            last=last,
            layer=layer,
            goodbye="dismissed" if dismissed else goodbye,
            facts=known_facts(p, layer),
            retry=retry,
            chat=self.chat_format,
        )
        if self.chat_format:  # the supporter's messages as user turns, the seeker's own as the model's
            said = [{"role": "user", "content": self.opening_line()}]
            for t in history:
                role = "assistant" if t.speaker == "seeker" else "user"
                if said[-1]["role"] == role:  # two lines of one speaker in a row: one message
                    said[-1] = {"role": role, "content": said[-1]["content"] + "\n" + t.text}
                else:
                    said.append({"role": role, "content": t.text})
            return [{"role": "system", "content": self.system_prompt()}, *said, {"role": "system", "content": user}]
        return [
            {"role": "system", "content": self.system_prompt()},
            {"role": "user", "content": user},
        ]

    def text_prompt(
        self,
        history: list[Turn],
        layer: int,
        goodbye: bool,
        dismissed: bool = False,
        retry: str | None = None,
        start: str = "",
    ) -> str:
        """The ``text`` format's prompt (`seeker_text.j2`): a written transcript of the chat, from the opening line
        on, under a short header (who the persona is, the notes opened by ``layer``, a line on what was wrong
        with the last attempt), ending in the persona's first name and a colon for the model to continue, and
        ``start``, the first words of the line, when given."""
        p = self.persona
        return self.prompts.render(
            "seeker_text.j2",
            p=p,
            voice=voice_lines(p),
            facts=known_facts(p, layer) if not goodbye else [],
            layer=layer,
            goodbye="dismissed" if dismissed else goodbye,
            retry=retry,
            opening=self.opening_line().strip(),
            history=history,
            start=start,
        )

    def request(
        self,
        history: list[Turn],
        layer: int,
        goodbye: bool,
        dismissed: bool,
        retry: str | None,
        *,
        temperature: float,
        seed: int,
        start: str = "",
    ) -> ChatRequest:
        """One attempt's request: a text completion of `text_prompt` (from ``start``) that stops at the end of the
        line (``text`` format), else a chat request of `messages`."""
        before, earlier = self.said_before(history)
        kw = {"temperature": temperature, "max_tokens": self.max_tokens, "seed": seed,
              "avoid_copying": (*earlier, *([before] if before else []))}
        if self.prompt_format == "text":
            prompt = self.text_prompt(history, layer, goodbye, dismissed, retry, start)
            return ChatRequest.text(prompt, stop=("\n",), **kw)
        return ChatRequest.of(self.messages(history, layer, goodbye, dismissed, retry=retry), **kw)

    def said_before(self, history: list[Turn]) -> tuple[str | None, list[str]]:
        """What a new line must not say again: the message it answers (the supporter's last, or on the first turn
        the opening line the prompt shows) and the seeker's own earlier lines. The repeat checks read them, and a
        request asks the model not to copy them (``ChatRequest.avoid_copying``: the embedded model then cannot)."""
        before = next((t.text for t in reversed(history) if t.speaker == "supporter"), None)
        if not history:
            before = self.opening_line().strip()
        return before, [t.text for t in history if t.speaker == "seeker"]

    def retry_start(self, retry: str | None, turn_index: int, attempt: int) -> str:
        """The first words of a regenerated line in the ``text`` format, after a role slip, a repeat, an echo or a
        recitation: one of `RETRY_OPENERS` (by seed), so that the model cannot write the same line, the
        supporter's or the card's, again; '' on a first attempt, after other checks, and in the chat formats."""
        if self.prompt_format != "text" or retry not in ("role", "repeat", "echo", "recites"):
            return ""
        return RETRY_OPENERS[derive_seed(self.seed, "opener", turn_index, attempt) % len(RETRY_OPENERS)]

    def fallback(self, layer: int, goodbye: bool, dismissed: bool = False) -> str:
        """The fixed line of a turn whose every attempt came back empty, refused or copied the card (never the
        persona card's text)."""
        if dismissed:
            return "I don't think this is helping me right now. I'll leave it here, bye."
        if goodbye:
            return "Thank you, talking this through really helped. Goodbye for now."
        return FALLBACK_LINE

    def judge(
        self,
        candidate: str,
        before: str | None,
        layer: int,
        goodbye: bool,
        earlier: list[str] | None = None,
    ) -> tuple[tuple[RejectionCheck, str] | None, float | None]:
        """Why a candidate seeker line is rejected, as (check, reason), else None; and its voice score (None
        when empty or a refusal). In order: empty, a refusal (`refuses`: "I can't assist with that", "as an AI"), the
        role check (the rule or score that judged it supporter-like), a repetition of one of the ``earlier`` seeker
        lines or of the message ``before`` (`repetition`), narration about the persona, a recitation of the persona
        card. The leak check (`FidelityCheck`, when on) runs after these in `speak`."""
        if len(candidate) < 2:
            return ("empty", "empty"), None
        if refuses(candidate):
            return ("refusal", "refusal"), None
        voice, score = voice_judgement(candidate, before)
        score = round(score, 4)
        if voice is not None:
            return ("role", voice), score
        again = repetition(candidate, earlier or [], before)
        if again is not None:
            return ("repeat", again), score
        if narrates(candidate, self.persona):
            return ("narrates", "names the persona"), score
        copied = recites(candidate, self.persona)
        if copied is not None:
            return ("recites", f"card:{copied[0]}:{copied[1]}"), score
        return None, score

    def rejection(
        self, candidate: str, before: str | None, layer: int, goodbye: bool, earlier: list[str] | None = None
    ) -> tuple[RejectionCheck, str] | None:
        """Why a candidate seeker line is rejected, as (check, reason), else None (`judge` without the score)."""
        return self.judge(candidate, before, layer, goodbye, earlier)[0]

    async def speak(
        self, history: list[Turn], *, layer: int, goodbye: bool, turn_index: int, dismissed: bool = False
    ) -> Turn:
        """The seeker's next line; ``goodbye`` (with ``dismissed``: leaving because it feels dismissed).

        Up to ``max_regenerations`` + 1 attempts; each one a check rejects is kept in ``Turn.rejected`` with its
        reason and voice score, and the next attempt's prompt says what was wrong with it (`messages`'s
        ``retry``). When every attempt fails, the turn keeps the least supporter-like attempt
        (`least_supporter_like`), flagged in ``Turn.slip``; only when every attempt was empty, a refusal or a copy of
        the card is it a fixed line (``role_fallback``). The persona card's text is never said for the model. On the
        first turn the line answers the opening line (`seeker_opening.txt`), which the echo check then covers too."""
        goodbye = goodbye or dismissed
        completions: list[Completion] = []
        text: str | None = None
        figures: dict[str, Any] | None = None
        leaked = 0
        rejected: list[Rejection] = []
        before, earlier = self.said_before(history)
        retry: str | None = None
        for attempt in range(self.max_regenerations + 1):
            if rejected and rejected[-1].check != "empty":  # say what was wrong with the last attempt
                last = rejected[-1]
                retry = "echo" if last.reason.startswith("echo:") else last.check
            start = self.retry_start(retry, turn_index, attempt)
            req = self.request(
                history,
                layer,
                goodbye,
                dismissed,
                retry,
                temperature=min(1.0, self.temperature + 0.1 * attempt),
                seed=derive_seed(self.seed, "seeker", turn_index, attempt),
                start=start,
            )
            c = await self.llm.complete(req)
            completions.append(c)
            candidate = clean_utterance(start + c.text if start else c.text, max_sentences=2)
            # the role check embeds the line (tens of ms of CPU): off the event loop
            problem, score = await asyncio.to_thread(self.judge, candidate, before, layer, goodbye, earlier)
            if problem is None and self.fidelity is not None:
                figures = self.fidelity.check(candidate, layer, goodbye=goodbye)
                if figures["leak"]:  # said a layer not yet opened: regenerate like a role slip
                    leaked += 1
                    problem = ("leak", f"leak:{figures['leak_sim']:.2f}")
            if problem is None:
                text = candidate
                break
            rejected.append(Rejection(check=problem[0], reason=problem[1], text=candidate, voice_score=score))
        slip: RejectionCheck | None = None
        fallback = False
        if text is None:
            kept = least_supporter_like(rejected, earlier, before, self.persona)
            if kept is None:
                text, fallback = self.fallback(layer, goodbye, dismissed), True
            else:
                text, slip = kept.text, kept.check
            if self.fidelity is not None:
                figures = self.fidelity.check(text, layer, goodbye=goodbye or fallback)
        if figures is not None:
            figures["leak_regenerations"] = leaked
        usage, latency, calls = total_usage(completions)
        return Turn(
            speaker="seeker",
            text=text,
            disclosure_layer=layer,
            role_fallback=fallback,
            slip=slip,
            rejected=rejected,
            fidelity=figures,
            usage=usage,
            latency_s=round(latency, 4),
            calls=calls,
        )
