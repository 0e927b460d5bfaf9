"""Prompt templates (Jinja2 files in ``agents/templates``), overridable from a user folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from socialsim.schema import Strategy
from socialsim.templating import PromptSet

TEMPLATE_NAMES = (
    "seeker_system.j2",
    "seeker_turn.j2",
    "seeker_opening.txt",
    "seeker_appraisal.j2",
    "strategy_classifier.j2",
    "supporter_thought.j2",
    "supporter_thought_user.j2",
    "supporter_system.j2",
    "supporter_reply.j2",
    "strategies.json",
)


class Prompts(PromptSet):
    """Renders the agents' templates (with the strategy list). Files in `override_dir` replace the
    built-in ones by name."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        super().__init__("socialsim.agents", TEMPLATE_NAMES, override_dir)
        self.strategies = {Strategy(k): v for k, v in json.loads(self.source("strategies.json")).items()}
        self._strategy_list = [{"label": s.value, "definition": d} for s, d in self.strategies.items()]
        self._static: dict[str, str] = {}

    def render(self, name: str, **ctx: Any) -> str:
        if not ctx:  # a template without variables renders the same every time: once per run
            text = self._static.get(name)
            if text is None:
                text = self._static[name] = self._render(name, ctx)
            return text
        return self._render(name, ctx)

    def _render(self, name: str, ctx: dict[str, Any]) -> str:
        ctx.setdefault("strategies", self._strategy_list)
        return super().render(name, **ctx)

    def source_digest(self) -> str:
        """A hash of every template's text: part of a run's config, so edits invalidate resumes."""
        return self.digest()
