"""The realized strategy: which of ESConv's 8 strategies a supporter reply carries out, read from the
reply's text alone (the classifier never sees the supporter's thought or its declared strategy)."""

from __future__ import annotations

from socialsim.agents.common import derive_seed
from socialsim.agents.prompts import Prompts
from socialsim.errors import StructuredOutputError
from socialsim.llm.base import ChatRequest, Completion
from socialsim.llm.client import LLM
from socialsim.llm.structured import generate_structured
from socialsim.schema import RealizedStrategy, Strategy


class StrategyClassifier:
    """Labels supporter replies by structured output over the 8 strategies and their definitions."""

    def __init__(self, llm: LLM, prompts: Prompts | None = None, *, seed: int = 0, attempts: int = 2) -> None:
        self.llm, self.prompts, self.seed, self.attempts = llm, prompts or Prompts(), seed, attempts

    def messages(self, text: str) -> list[dict[str, str]]:
        """A fixed system prompt (the definitions: llama.cpp reuses it from call to call), then the reply."""
        return [
            {"role": "system", "content": self.prompts.render("strategy_classifier.j2")},
            {"role": "user", "content": f"Supporter's message: {text}"},
        ]

    def request(self, text: str, *, key: object = 0) -> ChatRequest:
        return ChatRequest.of(
            self.messages(text), temperature=0.0, max_tokens=24, seed=derive_seed(self.seed, "realized", key)
        )

    async def classify(self, text: str, *, key: object = 0) -> tuple[Strategy | None, list[Completion]]:
        """The realized strategy of ``text`` (None when no output validated: a label failure the caller
        records) and the completions made, also those of a failed attempt."""
        try:
            r, completions = await generate_structured(
                self.llm, self.request(text, key=key), RealizedStrategy, attempts=self.attempts
            )
        except StructuredOutputError as e:
            return None, e.completions
        return r.strategy, list(completions)
