"""The plain-chat format of supporter replies, shared by the SFT export, the plain supporter, the server
and the response metrics: seeker = ``user``, supporter = ``assistant``, consecutive turns of one speaker
merged, and an optional ``<thought>{json}</thought> [Strategy] text`` prefix on supporter replies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from socialsim.schema import Strategy, Turn, parse_strategy

Message = dict[str, str]

DEFAULT_SYSTEM_PROMPT = (
    "You are a warm, caring emotional supporter. Listen first, reflect feelings, ask gentle questions, "
    "and offer suggestions only when the person is ready. Reply in 1 to 3 short sentences."
)
_PREFIX = re.compile(r"^\s*(?:<thought>(?P<thought>.*?)</thought>\s*)?(?:\[(?P<strategy>[^\]]{2,40})\]\s*)?", re.S)
_TAG = re.compile(r"^\[([^\]]+)\]\s*")


def format_target(
    text: str, strategy: Strategy | None, thought: dict[str, Any] | None, *, with_strategy: bool, with_thought: bool
) -> str:
    """A supporter reply with its optional ``<thought>`` and ``[Strategy]`` prefix."""
    out = ""
    if with_thought and thought is not None:
        out += "<thought>" + json.dumps(thought, ensure_ascii=False) + "</thought> "
    if with_strategy and strategy is not None:
        out += f"[{strategy.value}] "
    return out + text


def split_prefix(text: str) -> tuple[str, Strategy | None, dict[str, Any] | None]:
    """Undo `format_target` on a model's output: (reply, strategy or None, thought or None). Lenient:
    an unknown tag or a broken thought is left in (tag) or dropped (thought), never an error."""
    m = _PREFIX.match(text)
    thought = strategy = None
    if m and m.group("thought"):
        try:
            thought = json.loads(m.group("thought"))
        except json.JSONDecodeError:
            thought = None
    if m and m.group("strategy"):
        try:
            strategy = parse_strategy(m.group("strategy"))
        except ValueError:
            strategy = None
    reply = text[m.end() :] if m and (m.group("thought") or strategy) else text
    return reply.strip(), strategy, thought


def split_strategy_tag(text: str) -> tuple[Strategy | None, str]:
    """Strict form for annotated data: ``"[Questions] How are you?"`` → (Strategy.QUESTION, "How are
    you?"). Raises `ValueError` for an unknown tag; text without a tag gives (None, text)."""
    m = _TAG.match(text)
    if not m:
        return None, text.strip()
    return parse_strategy(m.group(1)), text[m.end() :].strip()


def chat_history(turns: Iterable[Turn], *, with_strategy: bool = True, with_thought: bool = False) -> list[Message]:
    """Turns as chat messages: seeker = ``user``, supporter = ``assistant`` (with the prefix
    `format_target` gives targets), consecutive turns of one speaker merged."""
    msgs: list[Message] = []
    for t in turns:
        role = "user" if t.speaker == "seeker" else "assistant"
        text = t.text
        if t.speaker == "supporter":
            thought = t.thought.model_dump(mode="json") if t.thought else None
            text = format_target(t.text, t.strategy, thought, with_strategy=with_strategy, with_thought=with_thought)
        if msgs and msgs[-1]["role"] == role:
            msgs[-1] = {"role": role, "content": msgs[-1]["content"] + " " + text}
        else:
            msgs.append({"role": role, "content": text})
    return msgs


def chat_messages(history: list[Turn], system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> list[Message]:
    """The SFT prompt format: the system prompt, then `chat_history` with ``[Strategy]`` tags."""
    return [{"role": "system", "content": system_prompt}, *chat_history(history, with_strategy=True)]
