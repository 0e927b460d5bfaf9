"""The supporter agent: reasons (a `SupporterThought`) before each reply, then replies with the
chosen strategy."""

from __future__ import annotations

from socialsim.agents.common import clean_utterance, derive_seed, total_usage
from socialsim.agents.prompts import Prompts
from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.client import LLM
from socialsim.llm.structured import generate_structured
from socialsim.schema import SupporterThought, Turn


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
    ) -> None:
        self.llm, self.prompts, self.seed = llm, prompts, seed
        self.temperature = temperature
        self.thought_max_tokens = thought_max_tokens
        self.reply_max_tokens = reply_max_tokens
        self.parse_attempts = parse_attempts

    def thought_messages(self, history: list[Turn]) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.prompts.render("supporter_thought.j2")},
            {"role": "user", "content": self.prompts.render("supporter_thought_user.j2", turns=history)},
        ]

    def reply_messages(self, history: list[Turn], thought: SupporterThought) -> list[dict[str, str]]:
        """Fixed system prompt, the conversation, then a closing system note with this turn's
        thought and strategy (the stable prefix lets llama.cpp reuse its prompt cache)."""
        strategy = {"label": thought.strategy.value, "definition": self.prompts.strategies[thought.strategy]}
        msgs = [{"role": "system", "content": self.prompts.render("supporter_system.j2")}]
        for t in history:
            role = "user" if t.speaker == "seeker" else "assistant"
            if msgs[-1]["role"] == role:
                msgs[-1]["content"] += " " + t.text
            else:
                msgs.append({"role": role, "content": t.text})
        note = self.prompts.render("supporter_reply.j2", thought=thought, strategy=strategy)
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
        self, history: list[Turn], thought: SupporterThought, *, turn_index: int, attempt: int = 0
    ) -> ChatRequest:
        return ChatRequest.of(
            self.reply_messages(history, thought),
            temperature=self.temperature,
            max_tokens=self.reply_max_tokens,
            seed=derive_seed(self.seed, "reply", turn_index, attempt),
        )

    async def respond(self, history: list[Turn], *, turn_index: int) -> Turn:
        thought, completions = await self.think(history, turn_index=turn_index)
        text = ""
        for attempt in range(2):
            c = await self.llm.complete(self.reply_request(history, thought, turn_index=turn_index, attempt=attempt))
            completions.append(c)
            text = clean_utterance(c.text)
            if len(text) >= 2:
                break
        if len(text) < 2:
            raise StructuredOutputError("supporter reply stayed empty after 2 attempts", raw=c.text)
        usage, latency, calls = total_usage(completions)
        return Turn(
            speaker="supporter",
            text=text,
            strategy=thought.strategy,
            thought=thought,
            usage=usage,
            latency_s=round(latency, 4),
            calls=calls,
        )
