"""The supporter agent: reasons (a `SupporterThought`) before each reply, then replies with the
chosen strategy."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from socialsim.agents.common import (
    REFUSAL_PATTERN,
    CaselessPatterns,
    clean_utterance,
    copied_run,
    derive_seed,
    total_usage,
)
from socialsim.agents.prompts import Prompts
from socialsim.chat_format import chat_history
from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.client import LLM
from socialsim.llm.structured import generate_structured
from socialsim.schema import Strategy, SupporterThought, Turn

_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_FIELDS = r"(?:emotion|intensity|cause|need|needs|strategy|rationale)"
_STRATEGY_TAG = (
    r"question|restatement|paraphras\w*|reflection of feelings|self-disclosure|affirmation|providing suggestions|"
    r"information|others"
)
_LEAKS = CaselessPatterns(
    [
        ("private-notes", r"\bprivate notes?\b"),
        (
            "template",
            r"\bstrategy for (this|the|your) (reply|response)\b|\bnow write your reply\b|\(intensity \d|"
            r"\bintensity:? \d ?/ ?5\b|\bthey need:|\bconversation so far\b|\bjson analysis\b|\bstrategy guide\b|"
            r"\bthe seeker\b|\bemotional supporter\b",
        ),
        ("field-name", rf'"{_FIELDS}"\s*:|^\s*[-*]?\s*\**{_FIELDS}\**\s*:|\b{_FIELDS}:\s'),
        ("json", r"[{}]|```"),
        ("refusal", REFUSAL_PATTERN),
        (
            "here-is-a",
            r"^\W*here(?:'s| is) (?:a|an|my|the)\b|\bhere(?:'s| is) (?:a|an|my|the) (?:\w+ )?"
            r"(?:reply|response|message|version|draft)\b",
        ),
        (
            "role-tag",
            r"^\s*\**(?:supporter|seeker|assistant|user|system|counse?llor|therapist)\**\s*:|<\|[a-z_]+\|>|"
            r"\[/?inst\]|</?s>|^\s*<\w+>",
        ),
        ("strategy-tag", rf"\[(?:{_STRATEGY_TAG})[^\]]*\]|^\W*(?:{_STRATEGY_TAG})\s*:"),
        # A reply written as a letter or a template to fill in, not a turn of a chat: "Hi [Name], I hope
        # this message finds you well" (seen from the 1.5B model when it slid into the seeker's voice).
        (
            "letter",
            r"\[(?:(?:your|the|their|seeker'?s?|friend'?s?|recipient'?s?|user'?s?)\s+)?name\]|"
            r"\bhope (?:this|my) (?:message|email|letter|note) finds you\b|^\W*dear\s+\[",
        ),
    ],
    re.M,
)


def prompt_leak(text: str, phrases: Iterable[str] = ()) -> str | None:
    """The name of the first kind of prompt leakage in a supporter reply, else ``None``: template phrases
    (also any of ``phrases``, e.g. the strategy definitions; "the seeker", the prompts' word for the person the reply
    speaks to), "Private Notes", thought field names, JSON, a refusal (`socialsim.agents.common.refuses`),
    "Here is a ...", role tags, strategy tags, or a letter's placeholders and opener ("[Name]", "I hope this
    message finds you well")."""
    name = _LEAKS.first(text)
    if name is not None:
        return name
    low = text.lower()
    for phrase in phrases:
        if phrase and phrase.lower() in low:
            return "template"
    return None


ECHO_RUN = 8
"""Words in a row of the seeker line a reply answers that make the reply an echo of it: regenerated, as a leak is.
ESConv valid's human supporters never do it (0 of 2,156 replies copy 8 words in a row of the seeker turn before
them; 3 copy 6 or more), the 1.5B model did in 9 of 43 replies of a 10-dialogue run (`scripts/echo_figures.py`)."""


def echoes_seeker(reply: str, seeker_line: str | None) -> int | None:
    """The words in a row ``reply`` copies from the seeker line it answers, when `ECHO_RUN` or more; else None."""
    return copied_run(reply, [seeker_line], ECHO_RUN)


def repeats_itself(reply: str, earlier: Iterable[str]) -> int | None:
    """The words in a row ``reply`` copies from one of the supporter's own ``earlier`` replies, when `ECHO_RUN` or
    more; else None. Regenerated like an echo of the seeker: the 1.5B model said "It's important to talk about it
    with someone who understands you" in three replies of one dialogue, and its seeker answered each the same way.
    ESConv's human supporters do it in 4 of valid's 2,257 turns and 12 of train's 10,679 (a speaker's consecutive
    utterances joined)."""
    return copied_run(reply, earlier, ECHO_RUN)


def drop_leaking_sentences(text: str, phrases: Iterable[str] = ()) -> str:
    """What is left of ``text`` once every sentence with a prompt leak is removed."""
    phrases = list(phrases)
    keep = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip() and prompt_leak(s, phrases) is None]
    return " ".join(keep).strip()


def reply_leak(raw: str, utterance: str, phrases: Iterable[str] = ()) -> str | None:
    """`prompt_leak` of a cleaned reply, or of the raw text's first line (a leading label such as "Your
    private notes:" is cut by `clean_utterance` as if it were a speaker's name; a plain role label there
    is only a label and was cut, not a leak)."""
    phrases = list(phrases)
    leak = prompt_leak(utterance, phrases)
    first_line = raw.strip().split("\n", 1)[0]
    if leak is None and first_line != utterance:  # the same text again has no leak either
        head = prompt_leak(first_line, phrases)
        leak = head if head != "role-tag" else None
    return leak


EventHook = Callable[[str, Any], None]

LONGER = (Strategy.SUGGESTION, Strategy.INFORMATION)
"""Strategies whose reply may take a third sentence (`shorten`)."""


def shorten(text: str, strategy: Strategy, sentences: int = 2) -> str:
    """A reply cut to ESConv's length: its first ``sentences`` sentences (one more for `LONGER` strategies); a
    Question reply keeps its first question in place of the last sentence kept, so the cut never drops what the
    reply was for."""
    limit = sentences + (strategy in LONGER)
    parts = [p for p in _SENTENCES.split(" ".join(text.split())) if p]
    if len(parts) <= limit:
        return text
    kept = parts[:limit]
    if strategy == Strategy.QUESTION and not any(p.endswith("?") for p in kept):
        question = next((p for p in parts[limit:] if p.endswith("?")), None)
        if question is not None:
            kept = [*parts[: limit - 1], question]
    return " ".join(kept)


class Supporter:
    def __init__(
        self,
        llm: LLM,
        prompts: Prompts,
        *,
        seed: int,
        temperature: float = 0.7,
        thought_max_tokens: int = 320,
        reply_max_tokens: int = 120,
        parse_attempts: int = 3,
        reply_attempts: int = 3,
        max_sentences: int | None = 2,
        on_event: EventHook | None = None,
    ) -> None:
        """``max_sentences``: replies are cut to this many sentences (`shorten`: one more for suggestions and
        information; None: not cut), as ESConv's supporters write one or two (18 words an utterance)."""
        self.llm, self.prompts, self.seed = llm, prompts, seed
        self.max_sentences = max_sentences
        self.reply_attempts = reply_attempts
        self.on_event = on_event
        """Called with ("generating", "thought" | "reply") before each call and ("thought", thought) once
        the thought validated (a live transcript shows them as they come)."""
        self.leak_phrases = [d.rstrip(".") for d in prompts.strategies.values()]
        self.temperature = temperature
        self.thought_max_tokens = thought_max_tokens
        self.reply_max_tokens = reply_max_tokens
        self.parse_attempts = parse_attempts

    def thought_messages(self, history: list[Turn]) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.prompts.render("supporter_thought.j2")},
            {"role": "user", "content": self.prompts.render("supporter_thought_user.j2", turns=history)},
        ]

    def reply_messages(
        self, history: list[Turn], thought: SupporterThought, *, retry: dict[str, str] | None = None
    ) -> list[dict[str, str]]:
        """Fixed system prompt, the conversation, then a closing system note with this turn's
        thought and strategy (the stable prefix lets llama.cpp reuse its prompt cache). ``retry``: the strategy
        check's note for a rewrite (``realized``: what the last draft read as)."""
        strategy = {"label": thought.strategy.value, "definition": self.prompts.strategies[thought.strategy]}
        msgs = [{"role": "system", "content": self.prompts.render("supporter_system.j2")}]
        msgs += chat_history(history, with_strategy=False)
        note = self.prompts.render("supporter_reply.j2", thought=thought, strategy=strategy, retry=retry)
        msgs.append({"role": "system", "content": note})
        return msgs

    def thought_request(self, history: list[Turn], *, turn_index: int) -> ChatRequest:
        return ChatRequest.of(
            self.thought_messages(history),
            temperature=self.temperature,
            max_tokens=self.thought_max_tokens,
            seed=derive_seed(self.seed, "thought", turn_index),
        )

    async def think(self, history: list[Turn], *, turn_index: int) -> tuple[SupporterThought, list[Completion]]:
        """The thought for this turn (validated, repaired, retried) and the completions it took."""
        req = self.thought_request(history, turn_index=turn_index)
        thought, completions = await generate_structured(self.llm, req, SupporterThought, attempts=self.parse_attempts)
        return thought, list(completions)

    def reply_request(
        self,
        history: list[Turn],
        thought: SupporterThought,
        *,
        turn_index: int,
        attempt: int = 0,
        messages: list[dict[str, str]] | None = None,
    ) -> ChatRequest:
        """``messages``: `reply_messages` of the same history and thought, when the caller already has them
        (a regeneration differs only in its seed). The request asks the model not to copy the seeker line it
        answers or the supporter's own earlier replies (``ChatRequest.avoid_copying``: the embedded model then
        cannot; ESConv's human supporters would have met that ban in 73 of train's 10,679 turns, 22 of valid's
        2,257); `write_reply`'s echo checks still read every reply."""
        seeker_line, own = self.said_before(history)
        return ChatRequest.of(
            messages if messages is not None else self.reply_messages(history, thought),
            temperature=self.temperature,
            max_tokens=self.reply_max_tokens,
            seed=derive_seed(self.seed, "reply", turn_index, attempt),
            avoid_copying=(*([seeker_line] if seeker_line else []), *own),
        )

    @staticmethod
    def said_before(history: list[Turn]) -> tuple[str | None, list[str]]:
        """What a reply must not copy: the seeker line it answers and the supporter's own earlier replies."""
        seeker_line = next((t.text for t in reversed(history) if t.speaker == "seeker"), None)
        return seeker_line, [t.text for t in history if t.speaker == "supporter"]

    def _emit(self, kind: str, payload: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, payload)

    async def write_reply(
        self,
        history: list[Turn],
        thought: SupporterThought,
        *,
        turn_index: int,
        rewrite: int = 0,
        retry: dict[str, str] | None = None,
    ) -> tuple[str, int, int, list[Completion], int]:
        """A reply to ``thought``: (text, replies regenerated for leaking prompt text, replies regenerated for
        echoing the seeker or itself, completions, words cut), cut to ``max_sentences`` (`shorten`). A reply that
        leaks prompt text (see `prompt_leak`) or copies `ECHO_RUN` words in a row of the seeker line it answers
        (`echoes_seeker`) or of one of the supporter's own earlier replies (`repeats_itself`) is regenerated with a
        new seed, up to ``reply_attempts`` calls in all; if every one
        fails, the echo that copies least is kept, else the longest clean remainder of a leak (its sentences
        without a leak), and when no attempt has one, `StructuredOutputError`. ``rewrite`` > 0: the strategy
        check's rewrite number (its own seeds; ``retry`` its note)."""
        completions: list[Completion] = []
        text, leaks, leaked, echoed = "", 0, [], []
        seeker_line, own = self.said_before(history)
        msgs = self.reply_messages(history, thought, retry=retry)  # rendered once: attempts differ only in the seed
        for attempt in range(self.reply_attempts):
            self._emit("generating", "reply")
            req = self.reply_request(
                history, thought, turn_index=turn_index, attempt=rewrite * self.reply_attempts + attempt, messages=msgs
            )
            c = await self.llm.complete(req)
            completions.append(c)
            candidate = clean_utterance(c.text, max_sentences=12)  # `shorten` cuts to length, by strategy
            if len(candidate) < 2:
                continue
            if reply_leak(c.text, candidate, self.leak_phrases) is not None:
                leaks += 1
                leaked.append(candidate)
                continue
            copied = echoes_seeker(candidate, seeker_line) or repeats_itself(candidate, own)
            if copied is None:
                text = candidate
                break
            echoed.append((copied, candidate))
        if not text and echoed:
            text = min(echoed, key=lambda e: e[0])[1]
        if not text and leaked:
            text = max((drop_leaking_sentences(c, self.leak_phrases) for c in leaked), key=len)
        if len(text) < 2:
            why = "leaked prompt text" if leaks else "stayed empty"
            raise StructuredOutputError(
                f"supporter reply {why} in all {self.reply_attempts} attempts", raw=completions[-1].text
            )
        cut = 0
        if self.max_sentences is not None:
            short = shorten(text, thought.strategy, self.max_sentences)
            cut, text = len(text.split()) - len(short.split()), short
        return text, leaks, len(echoed), completions, cut

    async def respond(self, history: list[Turn], *, turn_index: int) -> Turn:
        """Thought, then reply (`write_reply`)."""
        self._emit("generating", "thought")
        thought, completions = await self.think(history, turn_index=turn_index)
        thought_attempts = len(completions)
        self._emit("thought", thought)
        text, leaks, echoes, done, cut = await self.write_reply(history, thought, turn_index=turn_index)
        usage, latency, calls = total_usage(completions + done)
        return Turn(
            speaker="supporter",
            text=text,
            strategy=thought.strategy,
            thought=thought,
            usage=usage,
            latency_s=round(latency, 4),
            calls=calls,
            thought_attempts=thought_attempts,
            leaks=leaks,
            echoes=echoes,
            cut_words=cut,
        )

    async def rewrite(self, turn: Turn, history: list[Turn], *, turn_index: int, number: int, realized: str) -> Turn:
        """Another reply to ``turn``'s thought, for the strategy check: the note says the last draft read as
        ``realized`` (``number``: 1 for the first rewrite, seeds its calls). The returned turn carries the usage,
        calls, leaks and echoes of ``turn`` plus this rewrite's."""
        if turn.thought is None:
            raise ValueError("rewrite needs a turn with a thought")
        text, leaks, echoes, done, cut = await self.write_reply(
            history, turn.thought, turn_index=turn_index, rewrite=number, retry={"realized": realized}
        )
        usage, latency, calls = total_usage(done)
        return turn.model_copy(
            update={
                "text": text,
                "usage": turn.usage + usage,
                "latency_s": round(turn.latency_s + latency, 4),
                "calls": turn.calls + calls,
                "leaks": turn.leaks + leaks,
                "echoes": turn.echoes + echoes,
                "cut_words": cut,
                "risk_reason": None,  # a new reply: the safety layer has not touched it
            }
        )
