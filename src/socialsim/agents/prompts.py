"""Prompt templates (Jinja2 files in ``agents/templates``), overridable from a user folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from socialsim.schema import Strategy
from socialsim.templating import make_env

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


class Prompts:
    """Renders the agents' templates. Files in `override_dir` replace the built-in ones by name."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        self.env = make_env("socialsim.agents", override_dir)
        src, _, _ = self.env.loader.get_source(self.env, "strategies.json")  # type: ignore[union-attr]
        self.strategies = {Strategy(k): v for k, v in json.loads(src).items()}
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
        return self.env.get_template(name).render(**ctx).strip()

    def compile_all(self) -> None:
        """Compile every template now (before a run's event loop starts, not at each first use)."""
        for name in TEMPLATE_NAMES:
            if name.endswith((".j2", ".txt")):
                self.env.get_template(name)

    def source_digest(self) -> str:
        """A hash of every template's text: part of a run's config, so edits invalidate resumes."""
        import hashlib

        h = hashlib.sha256()
        for name in TEMPLATE_NAMES:
            src, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            h.update(name.encode() + b"\0" + src.encode())
        return h.hexdigest()[:16]
