"""A supporter that is just a chat model: no thought step. Used to evaluate trained chatbots (and
any backend) as supporters; a leading ``[Strategy]`` tag in its reply is read as its strategy."""

from __future__ import annotations

from socialsim.agents.common import clean_utterance, derive_seed, total_usage
from socialsim.chat_format import DEFAULT_SYSTEM_PROMPT, chat_messages, split_prefix
from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest
from socialsim.llm.client import LLM
from socialsim.schema import Strategy, Turn


class PlainSupporter:
    def __init__(
        self,
        llm: LLM,
        *,
        seed: int,
        temperature: float = 0.7,
        max_tokens: int = 120,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        self.llm, self.seed = llm, seed
        self.temperature, self.max_tokens = temperature, max_tokens
        self.system_prompt = system_prompt

    def reply_request(self, history: list[Turn], *, turn_index: int, attempt: int = 0) -> ChatRequest:
        return ChatRequest.of(
            chat_messages(history, self.system_prompt),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=derive_seed(self.seed, "plain", turn_index, attempt),
        )

    @staticmethod
    def parse(raw: str) -> tuple[str, Strategy | None]:
        """(the reply as shown, the strategy of its leading ``[Strategy]`` tag if it has one)."""
        reply, strategy, _ = split_prefix(raw)
        return clean_utterance(reply), strategy

    async def respond(self, history: list[Turn], *, turn_index: int) -> Turn:
        completions = []
        text, strategy = "", None
        for attempt in range(2):
            c = await self.llm.complete(self.reply_request(history, turn_index=turn_index, attempt=attempt))
            completions.append(c)
            text, strategy = self.parse(c.text)
            if len(text) >= 2:
                break
        if len(text) < 2:
            raise StructuredOutputError("supporter reply stayed empty after 2 attempts", raw=completions[-1].text)
        usage, latency, calls = total_usage(completions)
        return Turn(
            speaker="supporter", text=text, strategy=strategy, usage=usage, latency_s=round(latency, 4), calls=calls
        )
