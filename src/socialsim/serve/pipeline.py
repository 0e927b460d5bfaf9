"""`SupporterPipeline`: OpenAI-style chat history in, one supporter reply out, with the crisis
safety layer in front and the output screen behind. Used by ``socialsim chat`` and ``socialsim serve``.

A request goes: messages → turns (user = seeker, assistant = supporter, system messages ignored) →
safety tier of the latest seeker message → on ``protocol`` the fixed crisis protocol reply, otherwise a
`SupporterThought` (the existing `Supporter`'s prompts and `generate_structured`) followed by the
reply, streamed or not, with the fixed check-in question appended on ``check_in``. Normal replies are
screened for means/method content and replaced when they have any; a streamed reply is screened while it
streams (the last few words are held back until they have been screened).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

from socialsim.agents.common import clean_utterance, derive_seed, total_usage
from socialsim.agents.plain import PlainSupporter
from socialsim.agents.prompts import Prompts
from socialsim.agents.supporter import Supporter
from socialsim.chat_format import DEFAULT_SYSTEM_PROMPT, split_prefix
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.client import LLM
from socialsim.safety.layer import SafetyDecision, SafetyLayer
from socialsim.safety.rules import RuleHit
from socialsim.schema import Strategy, SupporterThought, Turn, Usage

#: Said when the model's reply stays empty twice (never when the safety protocol applies).
EMPTY_REPLY_FALLBACK = "I'm here and I'm listening. Could you tell me a bit more about what's on your mind?"
_MARKER = re.compile(r"\n\s*(?:seeker|supporter|user|assistant)\s*:", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class BadRequest(ValueError):
    """The request itself is malformed (HTTP 400); ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadRequest(f"{where}.content[{j}]: only text parts are supported", f"{where}.content")
            parts.append(part["text"])
        return "\n".join(parts)
    raise BadRequest(f"{where}.content must be a string or a list of text parts", f"{where}.content")


def messages_to_turns(messages: Any) -> list[Turn]:
    """OpenAI chat messages → turns: ``user`` is the seeker, ``assistant`` the supporter; ``system``
    and ``developer`` messages are ignored (the supporter has its own instructions). The last
    message must come from the user."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list of {role, content} objects", "messages")
    turns: list[Turn] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where} must be an object with 'role' and 'content'", "messages")
        role = m.get("role")
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise BadRequest(f"{where}.role {role!r} is not supported (use user, assistant or system)", f"{where}.role")
        if "content" not in m:
            raise BadRequest(f"{where}.content is missing", f"{where}.content")
        text = _content_text(m["content"], where).strip()
        if role == "user" and not text:
            raise BadRequest(f"{where}.content is empty", f"{where}.content")
        if text:
            turns.append(Turn(speaker="seeker" if role == "user" else "supporter", text=text))
    if not turns or turns[-1].speaker != "seeker":
        raise BadRequest("the last message must have role 'user' (the seeker's message to answer)", "messages")
    return turns


@dataclass
class ReplyOptions:
    """Per-request settings (None: the pipeline's default)."""

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    locale: str | None = None


@dataclass
class SupporterReply:
    text: str
    thought: SupporterThought | None
    strategy: Strategy | None
    safety: SafetyDecision
    protocol: bool = False
    check_in: bool = False
    """The check-in question was appended to the reply (tier ``check_in``)."""
    output_screen: str | None = None
    """The screen rule that replaced (part of) the model's reply, if one did."""
    fallback: bool = False
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: str = "stop"

    def extra(self, *, thoughts: bool = True) -> dict[str, Any]:
        """The ``socialsim`` field of a server response (see `socialsim.serve.app`)."""
        d: dict[str, Any] = {
            "strategy": self.strategy.value if self.strategy else None,
            "protocol": self.protocol,
            **safety_fields(self.safety),
        }
        if thoughts:
            d["thought"] = self.thought.model_dump(mode="json") if self.thought else None
        if self.output_screen:
            d["output_screen"] = self.output_screen
        if self.fallback:
            d["fallback"] = True
        return d

    def turn(self) -> Turn:
        return Turn(
            speaker="supporter",
            text=self.text,
            strategy=self.strategy,
            thought=self.thought,
            usage=self.usage,
            latency_s=round(self.latency_s, 4),
            risk_reason=f"protocol:{self.safety.category}"
            if self.protocol
            else f"check_in:{self.safety.category}"
            if self.check_in
            else (f"output_screen:{self.output_screen}" if self.output_screen else None),
        )


def safety_fields(decision: SafetyDecision) -> dict[str, Any]:
    """The safety part of a response's ``socialsim`` field: ``tier``, ``stage``, ``score`` (the learned
    stage's, or None), ``category`` and the whole decision under ``safety``."""
    return {
        "tier": decision.tier,
        "stage": decision.stage,
        "score": None if decision.score is None else round(decision.score, 4),
        "category": decision.category,
        "safety": decision.as_dict(),
    }


class _ReplyStreamer:
    """Cleans and screens a streamed reply as it grows: emits only text that `clean_utterance` has
    settled and the output screen has passed, holding back the last ``hold`` words."""

    def __init__(self, screen: Callable[[str], RuleHit | None], hold: int = 6, *, strip_prefix: bool = False) -> None:
        self.screen = screen
        self.hold = hold
        self.strip_prefix = strip_prefix
        """Plain mode: the model writes ``[Strategy]`` (and maybe ``<thought>...</thought>``) first; keep it out."""
        self.strategy: Strategy | None = None
        self.raw = ""
        self.emitted = ""
        self.blocked: RuleHit | None = None
        self.done = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        flat = " ".join(self.raw.split())
        if _MARKER.search(self.raw) or len(_SENTENCE.split(flat)) > 5:
            self.done = True  # clean_utterance cuts here anyway: no need to generate further
        return self._advance(final=False)

    def finish(self) -> str:
        return self._advance(final=True)

    def _reply_text(self, *, final: bool) -> str | None:
        """The raw reply without its prefix; None while a prefix may still be arriving."""
        if not self.strip_prefix:
            return self.raw
        head = self.raw.lstrip()
        if not final and (
            (head.startswith("<thought>") and "</thought>" not in head)
            or (head.startswith("[") and "]" not in head[:48])
            or (head.startswith("<thought>") and not head.split("</thought>", 1)[1].strip())
        ):
            return None
        reply, self.strategy, _ = split_prefix(self.raw)
        return reply

    def _advance(self, *, final: bool) -> str:
        if self.blocked is not None:
            return ""
        text = self._reply_text(final=final)
        if text is None:
            return ""
        clean = clean_utterance(text)
        hit = self.screen(clean)
        if hit is not None:
            self.blocked = hit
            return ""
        if final:
            target = clean
        else:
            words = clean.split(" ")
            if len(words) <= self.hold:
                return ""
            target = " ".join(words[: -self.hold]) + " "
        if not target.startswith(self.emitted):
            return ""  # cleaning rewrote text already shown (rare): show nothing more of it
        out = target[len(self.emitted) :]
        self.emitted = target
        return out


class PreparedReply:
    """A reply whose safety check and thought are done; its text comes from `stream` or `complete`
    (use one of them, once). Errors that would fail the request (backend down, unparseable thought)
    have been raised by `SupporterPipeline.prepare` before any text is produced."""

    def __init__(
        self,
        pipeline: SupporterPipeline,
        *,
        history: list[Turn],
        safety: SafetyDecision,
        locale: str | None,
        started: float,
        protocol_text: str | None = None,
        check_in: str | None = None,
        thought: SupporterThought | None = None,
        reply_request: ChatRequest | None = None,
        completions: list[Completion] | None = None,
        plain: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.plain = plain
        self._plain_strategy: Strategy | None = None
        self.history = history
        self.safety = safety
        self.locale = locale
        self.started = started
        self.protocol_text = protocol_text
        self.check_in = check_in
        """The check-in question appended to the reply (tier ``check_in``), else None."""
        self.thought = thought
        self.reply_request = reply_request
        self.completions = completions or []
        self.reply: SupporterReply | None = None

    @property
    def strategy(self) -> Strategy | None:
        """The thought's strategy; in plain mode the ``[Strategy]`` the model wrote first (known once the
        reply is done)."""
        return self.thought.strategy if self.thought else self._plain_strategy

    def _reply_text(self, raw: str) -> str:
        if self.plain:
            text, self._plain_strategy = PlainSupporter.parse(raw)
            return text
        return clean_utterance(raw)

    def _finish(self, text: str, *, screen: RuleHit | None = None, fallback: bool = False) -> SupporterReply:
        if self.check_in is not None:
            text = f"{text.rstrip()}\n\n{self.check_in}"
        usage, _, _ = total_usage(self.completions)
        finish = "stop"
        if self.completions and self.completions[-1].finish_reason == "length" and not (screen or fallback):
            finish = "length"
        self.reply = SupporterReply(
            text=text,
            thought=self.thought,
            strategy=self.strategy,
            safety=self.safety,
            protocol=self.protocol_text is not None,
            check_in=self.check_in is not None,
            output_screen=screen.rule if screen else None,
            fallback=fallback,
            usage=usage,
            latency_s=time.perf_counter() - self.started,
            finish_reason=finish,
        )
        return self.reply

    async def _second_try(self) -> tuple[str, RuleHit | None, bool]:
        """The reply came out empty: one more non-streamed attempt with a new seed, then the fallback."""
        assert self.reply_request is not None
        seed = self.reply_request.seed
        req = replace(self.reply_request, seed=None if seed is None else derive_seed(seed, "retry"))
        c = await self.pipeline.llm.complete(req)
        self.completions.append(c)
        text = self._reply_text(c.text)
        if len(text) < 2:
            return EMPTY_REPLY_FALLBACK, None, True
        safe, hit = self.pipeline.safety.screen(text)
        if hit is not None:
            self.pipeline.safety.log_output(hit, message=text)
        return safe, hit, False

    async def stream(self) -> AsyncIterator[str]:
        """Yield the reply text piece by piece; `reply` holds the whole `SupporterReply` afterwards. On the
        ``check_in`` tier the check-in question comes last, after the screened reply."""
        async with aclosing(self._stream_reply()) as pieces:
            async for piece in pieces:
                yield piece
        if self.check_in is not None and self.reply is not None:
            yield "\n\n" + self.check_in

    async def _stream_reply(self) -> AsyncIterator[str]:
        if self.protocol_text is not None:
            for piece in re.findall(r"\S+\s*", self.protocol_text):
                yield piece
            self._finish(self.protocol_text)
            return
        assert self.reply_request is not None
        streamer = _ReplyStreamer(self.pipeline.safety.rules.screen_output, strip_prefix=self.plain)
        info = Completion(text="")
        async with aclosing(self.pipeline.llm.stream(self.reply_request, info)) as pieces:
            async for piece in pieces:
                out = streamer.feed(piece)
                if out:
                    yield out
                if streamer.blocked is not None or streamer.done:
                    break
        self.completions.append(info)
        tail = streamer.finish()
        self._plain_strategy = streamer.strategy
        if tail:
            yield tail
        if streamer.blocked is not None:
            self.pipeline.safety.log_output(streamer.blocked, message=streamer.raw)
            replacement = self.pipeline.safety.protocol.output_replacement
            sep = "" if not streamer.emitted or streamer.emitted.endswith(" ") else " "
            yield sep + replacement
            self._finish((streamer.emitted + sep + replacement).strip(), screen=streamer.blocked)
            return
        text = streamer.emitted.strip()
        if len(text) >= 2:
            self._finish(text)
            return
        text, hit, fallback = await self._second_try()
        yield text
        self._finish(text, screen=hit, fallback=fallback)

    async def complete(self) -> SupporterReply:
        """The whole reply at once (non-streamed calls to the backend)."""
        if self.protocol_text is not None:
            return self._finish(self.protocol_text)
        assert self.reply_request is not None
        c = await self.pipeline.llm.complete(self.reply_request)
        self.completions.append(c)
        text = self._reply_text(c.text)
        if len(text) < 2:
            text, hit, fallback = await self._second_try()
            return self._finish(text, screen=hit, fallback=fallback)
        safe, hit = self.pipeline.safety.screen(text)
        if hit is not None:
            self.pipeline.safety.log_output(hit, message=text)
        return self._finish(safe, screen=hit)


SUPPORTER_MODES: tuple[str, ...] = ("pipeline", "plain")


class SupporterPipeline:
    """Safety layer + supporter over one `LLM`. Safe to share between concurrent requests.

    ``mode``: ``pipeline`` (default) writes a `SupporterThought` (emotion, cause, need, strategy) and then
    the reply; ``plain`` asks the model for the reply directly, in the SFT export's chat format (a model
    trained with ``socialsim train``; its leading ``[Strategy]`` tag is read as the strategy and not shown).
    The safety layer is the same in both."""

    def __init__(
        self,
        llm: LLM,
        safety: SafetyLayer,
        *,
        prompts: Prompts | None = None,
        seed: int = 0,
        temperature: float = 0.7,
        thought_max_tokens: int = 320,
        reply_max_tokens: int = 120,
        parse_attempts: int = 3,
        max_history_turns: int = 16,
        mode: str = "pipeline",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        if mode not in SUPPORTER_MODES:
            raise ValueError(f"mode {mode!r}: use one of {', '.join(SUPPORTER_MODES)}")
        self.mode = mode
        self.system_prompt = system_prompt
        self.llm = llm
        self.safety = safety
        self.prompts = prompts or Prompts()
        self.seed = seed
        self.temperature = temperature
        self.thought_max_tokens = thought_max_tokens
        self.reply_max_tokens = reply_max_tokens
        self.parse_attempts = parse_attempts
        self.max_history_turns = max_history_turns

    async def prepare(self, history: list[Turn], options: ReplyOptions | None = None) -> PreparedReply:
        """Check safety and, unless the protocol applies, make the supporter's thought.

        Raises `StructuredOutputError` when the thought stays unparseable and backend errors as they
        come; nothing has been sent to the seeker at that point."""
        opts = options or ReplyOptions()
        started = time.perf_counter()
        if not history or history[-1].speaker != "seeker":
            raise BadRequest("the last message must be the seeker's", "messages")
        locale = opts.locale or self.safety.locale
        decision = await self.safety.assess(history)
        if decision.tier == "protocol":
            reply = PreparedReply(
                self,
                history=history,
                safety=decision,
                locale=locale,
                started=started,
                protocol_text=self.safety.protocol_reply(decision, locale=locale),
                thought=self.safety.protocol.thought(decision.category, decision.rule),
            )
            return reply
        seed = self.seed if opts.seed is None else opts.seed
        temperature = self.temperature if opts.temperature is None else opts.temperature
        recent = history[-self.max_history_turns :] if self.max_history_turns else history
        turn_index = sum(1 for t in history if t.speaker == "supporter")
        reply_max_tokens = self.reply_max_tokens if opts.max_tokens is None else opts.max_tokens
        thought, completions = None, []
        if self.mode == "plain":  # the same request `PlainSupporter` sends when it is evaluated
            plain = PlainSupporter(
                self.llm,
                seed=seed,
                temperature=temperature,
                max_tokens=reply_max_tokens,
                system_prompt=self.system_prompt,
            )
            reply_req = plain.reply_request(recent, turn_index=turn_index)
        else:  # the same requests the simulation's `Supporter` sends
            supporter = Supporter(
                self.llm,
                self.prompts,
                seed=seed,
                temperature=temperature,
                thought_max_tokens=self.thought_max_tokens,
                reply_max_tokens=reply_max_tokens,
                parse_attempts=self.parse_attempts,
            )
            thought, completions = await supporter.think(recent, turn_index=turn_index)
            reply_req = supporter.reply_request(recent, thought, turn_index=turn_index)
        return PreparedReply(
            self,
            history=history,
            safety=decision,
            locale=locale,
            started=started,
            thought=thought,
            reply_request=reply_req,
            completions=completions,
            plain=self.mode == "plain",
            check_in=self.safety.check_in_question(decision, locale=locale) if decision.tier == "check_in" else None,
        )

    async def respond(self, history: list[Turn], options: ReplyOptions | None = None) -> SupporterReply:
        """The whole reply, not streamed."""
        prepared = await self.prepare(history, options)
        return await prepared.complete()
