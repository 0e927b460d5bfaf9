"""The LLM stage of the crisis safety layer: a pydantic verdict via `generate_structured`, prompted
by Jinja2 templates in ``safety/templates`` (overridable file by file from a folder of your own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from socialsim.agents.common import derive_seed
from socialsim.llm.base import ChatRequest
from socialsim.llm.structured import generate_structured
from socialsim.schema import Turn
from socialsim.templating import PromptSet


class RiskVerdict(BaseModel):
    """The classifier's answer for one seeker message."""

    model_config = ConfigDict(extra="forbid")
    risk: Literal["none", "suicide", "self_harm", "harm_to_others"]
    confidence: Literal["low", "medium", "high"]
    reason: str = Field(min_length=1, max_length=200)


class LLMClassifier:
    """Asks an `LLM` (any backend) for a `RiskVerdict` on a seeker message and its recent context."""

    def __init__(
        self,
        llm: Any,
        *,
        template_dir: str | Path | None = None,
        seed: int = 0,
        max_tokens: int = 120,
        context_turns: int = 4,
        attempts: int = 3,
    ) -> None:
        self.prompts = PromptSet("socialsim.safety", ("risk_classifier.j2", "risk_classifier_user.j2"), template_dir)
        self.llm = llm
        self.seed = seed
        self.max_tokens = max_tokens
        self.context_turns = context_turns
        self.attempts = attempts

    def messages(self, message: str, context: list[Turn]) -> list[dict[str, str]]:
        ctx = context[-self.context_turns :] if self.context_turns else []
        system = self.prompts.render("risk_classifier.j2")
        user = self.prompts.render("risk_classifier_user.j2", message=message, context=ctx)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    async def classify(self, message: str, context: list[Turn] | None = None) -> RiskVerdict:
        """Raises `StructuredOutputError` when the verdict stays unparseable, and backend errors as
        they come (the safety layer treats both as a flag on an ambiguous message)."""
        req = ChatRequest.of(
            self.messages(message, context or []),
            temperature=0.0,
            max_tokens=self.max_tokens,
            seed=derive_seed(self.seed, "risk", message),
        )
        verdict, _ = await generate_structured(self.llm, req, RiskVerdict, attempts=self.attempts)
        return verdict
