"""A live transcript of dialogues as they are simulated: each turn is printed the moment it is done
(seeker text; the supporter's thought, then reply). On a terminal the text being generated is also shown
token by token in a transient line; otherwise (a pipe, a CI log) every finished turn is one flushed line."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

_LAYER = ["surface", "context", "core"]


def turn_line(t: Any) -> str:
    """One turn as the transcripts print it (rich markup): the seeker with its layer and any flag (a fixed
    fallback line, a kept role slip), the supporter with its declared strategy, the realized one when it differs,
    and how often it was regenerated (prompt leaks, echoes of the seeker, the strategy check's rewrites)."""
    if t.speaker == "seeker":
        flag = " [red](role fallback)[/]" if t.role_fallback else ""
        if t.slip is not None:
            flag += f" [red](slip kept: {escape(t.slip)})[/]"
        return f"[cyan]Seeker[/] [dim]({_LAYER[t.disclosure_layer or 0]}){flag}[/]: {escape(t.text)}"
    strategy = t.strategy.value if t.strategy else "?"
    notes = []
    if t.realized_strategy is not None and t.strategy is not None and t.realized_strategy != t.strategy:
        notes.append(f"reads as {escape(t.realized_strategy.value)}")
    if t.leaks:
        notes.append(f"regenerated {t.leaks}x: prompt leak")
    if t.echoes:
        notes.append(f"regenerated {t.echoes}x: echoed the seeker or itself")
    if len(t.strategy_attempts) > 1:
        first = t.strategy_attempts[0].realized_strategy.value
        notes.append(f"rewritten {len(t.strategy_attempts) - 1}x by the strategy check: first read as {escape(first)}")
    extra = f" [yellow]({'; '.join(notes)})[/]" if notes else ""
    return f"[green]Supporter[/] [magenta][{escape(strategy)}][/]{extra}: {escape(t.text)}"
_WHAT = {"seeker": "seeker is writing", "thought": "supporter is thinking", "reply": "supporter is replying"}


class LiveTranscript:
    """Pass `on_event` to `run_simulation(on_event=...)` and run it inside ``with transcript:``; with
    ``stream`` (default: when the console is a terminal) that also sets `TOKEN_SINK` to `sink`, so that a
    streaming backend hands over each generated piece."""

    def __init__(self, console: Console | None = None, *, stream: bool | None = None) -> None:
        self.console = console or Console()
        self.stream = self.console.is_terminal if stream is None else stream
        self._lock = threading.Lock()
        self._draft = ""
        self._label = ""
        self._live: Live | None = None
        self._token: Any = None
        self.printed_turns = 0

    # -- context ---------------------------------------------------------------------------------
    def __enter__(self) -> LiveTranscript:
        if self.stream:
            from socialsim.llm.base import TOKEN_SINK

            self._live = Live(Text(""), console=self.console, transient=True, auto_refresh=True)
            self._live.__enter__()
            self._token = TOKEN_SINK.set(self.sink)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            from socialsim.llm.base import TOKEN_SINK

            TOKEN_SINK.reset(self._token)
            self._token = None
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    # -- events ----------------------------------------------------------------------------------
    def _show_draft(self) -> None:
        if self._live is not None:
            tail = " ".join(self._draft.split())[-400:]
            self._live.update(Text.assemble((f"  … {self._label}: ", "dim italic"), (tail, "dim")))

    def sink(self, piece: str) -> None:
        """One generated piece of text (called from the model thread)."""
        with self._lock:
            self._draft += piece
            self._show_draft()

    def _print(self, markup: str) -> None:
        self.console.print(markup, soft_wrap=not self.console.is_terminal)
        self.console.file.flush()

    def on_event(self, kind: str, dialogue_id: str, payload: Any) -> None:
        with self._lock:
            if kind == "generating":
                self._draft, self._label = "", _WHAT.get(payload, payload)
                self._show_draft()
                return
            self._draft = ""
            self._show_draft()
            if kind == "start":
                p = payload
                self.console.rule(
                    f"[bold]Dialogue {dialogue_id}[/] · {escape(p.name)}, {p.age}, {escape(p.occupation)} · "
                    f"{p.problem_type.value} / {p.emotion_type.value}"
                )
            elif kind == "thought":
                th = payload
                self._print(
                    f"   [dim]thought: {escape(th.emotion)} {th.intensity}/5 · cause: {escape(th.cause)} · "
                    f"needs: {escape(th.need)} · strategy: {escape(th.strategy.value)}[/]"
                )
            elif kind == "turn":
                self.printed_turns += 1
                self._print(turn_line(payload))
            elif kind == "end":
                d = payload
                status = d.status if d.status == "ok" else f"[red]{d.status}: {escape(d.failure_reason or '')}[/]"
                if d.seeker_slipped:  # the engine marks quality after this event
                    status += " [red](quality: seeker_slipped)[/]"
                self._print(
                    f"[dim]end: {d.end_reason} · status: {status} · tokens: "
                    f"{d.usage.prompt_tokens}+{d.usage.completion_tokens}[/]"
                )
