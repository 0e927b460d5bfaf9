"""The seeker agent: plays a persona and discloses layer by layer."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from socialsim.agents.common import CaselessPatterns, clean_utterance, derive_seed, total_usage
from socialsim.agents.prompts import Prompts
from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.client import LLM
from socialsim.llm.structured import generate_structured
from socialsim.schema import DISCLOSURE_LAYERS, Persona, Rejection, RejectionCheck, SeekerAppraisal, Turn

#: Supporter-like phrasings, named. The role check (`socialsim.recognize.voice`) keeps only those that
#: match no real seeker turn of ESConv's train split; `legacy_supporter_voice` used them all.
SUPPORTER_VOICE_RULES: list[tuple[str, str]] = [
    ("sympathy", r"\b(i'?m|i am) (so |really |very )?sorry (to hear|that you|you('re| are)|for what you)"),
    ("reflection", r"\bit (sounds|seems) like you\b"),
    ("offer", r"\bhow (can|may) i (help|support|assist)\b"),
    ("presence", r"\bi('m| am) (always )?here (for you|to (help|listen|support))\b"),
    ("advice", r"\b(you (should|could|might) (try|consider|talk)|have you (tried|considered|thought about))\b"),
    ("validation", r"\b(your feelings are valid|that must be (so |really )?(hard|difficult|tough))\b"),
    ("normalising", r"\bit'?s (completely |totally |perfectly )?(normal|okay|ok|understandable) (to|that you)\b"),
    ("ai", r"\bas an? (ai|language model|assistant|counse?llor|therapist|supporter)\b"),
    ("asks-feelings", r"\bhow (are|do) you (feel|feeling)\b"),
    ("role-label", r"^\s*(supporter|assistant|counse?llor)\s*:"),
    ("welcome", r"\b(glad|happy) (that )?(you('re| are)|to have you) here\b|\bwhat brings you\b"),
    ("sympathy-2", r"\bsorry (for|about) your\b|\b(what )?you('re| are) going through\b"),
    ("reassurance", r"\byou('re| are) (safe|not alone)\b|\bdon'?t hesitate\b|\breach out\b"),
    ("availability", r"\bi('ll| will) (always )?be (there|here)\b|\bhere for (you|whatever)\b"),
    ("understanding", r"\bi (completely |totally )?understand\b"),
    ("meta", r"\b(rewritten|revised|rephras\w*|json|the (seeker|supporter|response|text))\b|here'?s (a|the)\b"),
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
    check `socialsim.recognize.voice`), else ``None``; ``before``: the turn it answers."""
    from socialsim.recognize.voice import default_voice

    verdict = default_voice().check(text, before)
    return None if verdict is None else verdict.reason


_WORD = re.compile(r"[a-z]{4,}")
_STOP = frozenset(
    "that this with have have been just about what when your they them their there then than from "
    "will would could should really feel feeling like know think make much more some very even also "
    "into only over because while where which being were does done dont cant things thing something "
    "anything nothing always never still back want going need said tell talk sure okay".split()
)


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def allowed_words(persona: Persona, layer: int) -> set[str]:
    """The content words the persona may use by ``layer``: its situation and the layers opened so far."""
    allowed = persona.situation + " " + " ".join(persona.disclosure.layer(i) for i in range(layer + 1))
    return content_words(allowed)


def off_topic(text: str, persona: Persona, layer: int, allowed: set[str] | None = None) -> bool:
    """True when a seeker utterance shares no content word with what the persona may say so far
    (situation and opened layers): the model has wandered off the persona's story. ``allowed``:
    `allowed_words` of the same persona and layer, when the caller keeps them."""
    words = content_words(text)
    return bool(words) and not (words & (allowed if allowed is not None else allowed_words(persona, layer)))


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
    ) -> None:
        """``fidelity``: a `socialsim.agents.fidelity.FidelityCheck` (leaked lines are then regenerated like
        role slips, and each turn records its figures), or None."""
        self.llm, self.persona, self.prompts = llm, persona, prompts
        self.fidelity = fidelity
        self.seed = seed
        self.max_regenerations = max_regenerations
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._system: str | None = None
        self._allowed: dict[int, set[str]] = {}  # layer -> allowed_words (the persona does not change)

    def system_prompt(self) -> str:
        if self._system is None:  # the persona's system prompt is the same on every turn
            self._system = self.prompts.render("seeker_system.j2", p=self.persona)
        return self._system

    def _allowed_at(self, layer: int) -> set[str]:
        words = self._allowed.get(layer)
        if words is None:
            words = self._allowed[layer] = allowed_words(self.persona, layer)
        return words

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
        self, history: list[Turn], layer: int, goodbye: bool, dismissed: bool = False
    ) -> list[dict[str, str]]:
        """A system prompt with the persona, then one user message with the transcript and what
        the seeker may say now (only the layers opened so far are ever shown)."""
        p = self.persona
        user = self.prompts.render(
            "seeker_turn.j2",
            p=p,
            history=history,
            layer=layer,
            goodbye="dismissed" if dismissed else goodbye,
            allowed=p.disclosure.layer(layer),
            opening=self.prompts.render("seeker_opening.txt"),
            layers=DISCLOSURE_LAYERS,
        )
        return [
            {"role": "system", "content": self.system_prompt()},
            {"role": "user", "content": user},
        ]

    def fallback(self, layer: int, goodbye: bool, dismissed: bool = False) -> str:
        if dismissed:
            return "I don't think this is helping me right now. I'll leave it here, bye."
        if goodbye:
            return "Thank you, talking this through really helped. Goodbye for now."
        return self.persona.disclosure.layer(layer)

    def rejection(
        self, candidate: str, before: str | None, layer: int, goodbye: bool
    ) -> tuple[RejectionCheck, str] | None:
        """Why a candidate seeker line is rejected, as (check, reason), else None: the role check (the
        rule or score that judged it supporter-like), narration about the persona, or off-topic."""
        if len(candidate) < 2:
            return "empty", "empty"
        voice = supporter_voice(candidate, before)
        if voice is not None:
            return "role", voice
        if narrates(candidate, self.persona):
            return "narrates", "names the persona"
        if not goodbye and off_topic(candidate, self.persona, layer, self._allowed_at(layer)):
            return "off_topic", "no content word of the persona's story"
        return None

    async def speak(
        self, history: list[Turn], *, layer: int, goodbye: bool, turn_index: int, dismissed: bool = False
    ) -> Turn:
        """The seeker's next line; ``goodbye`` (with ``dismissed``: leaving because it feels dismissed)."""
        goodbye = goodbye or dismissed
        msgs = self.messages(history, layer, goodbye, dismissed)
        completions: list[Completion] = []
        text, fallback = "", True
        figures: dict[str, Any] | None = None
        leaked = 0
        rejected: list[Rejection] = []
        before = next((t.text for t in reversed(history) if t.speaker == "supporter"), None)
        for attempt in range(self.max_regenerations + 1):
            req = ChatRequest.of(
                msgs,
                temperature=min(1.0, self.temperature + 0.1 * attempt),
                max_tokens=self.max_tokens,
                seed=derive_seed(self.seed, "seeker", turn_index, attempt),
            )
            c = await self.llm.complete(req)
            completions.append(c)
            candidate = clean_utterance(c.text, max_sentences=2)
            # the role check embeds the line (tens of ms of CPU): off the event loop
            problem = await asyncio.to_thread(self.rejection, candidate, before, layer, goodbye)
            if problem is None and self.fidelity is not None:
                figures = self.fidelity.check(candidate, layer, goodbye=goodbye)
                if figures["leak"]:  # said a layer not yet opened: regenerate like a role slip
                    leaked += 1
                    problem = ("leak", f"leak:{figures['leak_sim']:.2f}")
            if problem is None:
                text, fallback = candidate, False
                break
            rejected.append(Rejection(check=problem[0], reason=problem[1], text=candidate))
        if fallback:
            text = self.fallback(layer, goodbye, dismissed)
            if self.fidelity is not None:
                figures = self.fidelity.check(text, layer, goodbye=True)
        if figures is not None:
            figures["leak_regenerations"] = leaked
        usage, latency, calls = total_usage(completions)
        return Turn(
            speaker="seeker",
            text=text,
            disclosure_layer=layer,
            role_fallback=fallback,
            rejected=rejected,
            fidelity=figures,
            usage=usage,
            latency_s=round(latency, 4),
            calls=calls,
        )
