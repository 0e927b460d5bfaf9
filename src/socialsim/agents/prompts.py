"""Prompt templates (Jinja2 files in ``agents/templates``), overridable from a user folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from socialsim import taxonomy
from socialsim.schema import ReplyAct, Strategy, parse_strategy
from socialsim.templating import PromptSet

TEMPLATE_NAMES = (
    "seeker_system.j2",
    "seeker_chat_system.j2",
    "seeker_turn.j2",
    "seeker_text.j2",
    "seeker_opening.txt",
    "seeker_appraisal.j2",
    "strategy_classifier.j2",
    "supporter_thought.j2",
    "supporter_thought_user.j2",
    "supporter_system.j2",
    "supporter_reply.j2",
)
STRATEGIES_OVERRIDE = "strategies.json"
"""A file in a prompt folder that replaces strategy definitions (label -> definition; the rest stay
`socialsim.taxonomy`'s)."""


class Prompts(PromptSet):
    """Renders the agents' templates (with the strategies of `socialsim.taxonomy` as ``strategies`` and the
    seeker's reply acts as ``reply_acts``). Files in `override_dir` replace the built-in ones by name; its
    `STRATEGIES_OVERRIDE`, if any, replaces strategy definitions."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        super().__init__("socialsim.agents", TEMPLATE_NAMES, override_dir)
        own = Path(override_dir) / STRATEGIES_OVERRIDE if override_dir is not None else None
        mine = json.loads(own.read_text(encoding="utf-8")) if own is not None and own.is_file() else {}
        self.strategies: dict[Strategy, str] = taxonomy.definitions() | {parse_strategy(k): v for k, v in mine.items()}
        """What each strategy asks of the supporter (its definition)."""
        self._strategy_list = taxonomy.prompt_list(self.strategies)
        self._reply_acts = [a.value for a in ReplyAct]
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
        ctx.setdefault("reply_acts", self._reply_acts)
        return super().render(name, **ctx)

    def source_digest(self) -> str:
        """A hash of every template's text and of the strategies they render: part of a run's config, so
        edits invalidate resumes."""
        h = hashlib.sha256(self.digest().encode())
        h.update(json.dumps([self._strategy_list, self._reply_acts], sort_keys=True).encode())
        return h.hexdigest()[:16]
