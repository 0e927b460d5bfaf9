"""Live progress of a run with `rich`: dialogues, turns, calls/s, tokens, cost, ETA."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    """Context manager; pass `update` as the engine's progress hook."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]dialogues"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            refresh_per_second=4,
        )
        self.task: Any = None
        self._t0 = time.monotonic()

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, live: Any, llm: Any) -> None:
        s = llm.stats
        elapsed = max(1e-6, time.monotonic() - self._t0)
        done = live.ok + live.failed
        info = (
            f"ok {live.ok} · failed {live.failed} · in flight {live.in_flight}"
            + (f" · deferred {live.deferred}" if live.deferred else "")
            + f" · turns {live.turns} · "
            f"{(s.calls) / elapsed:.1f} calls/s · tok {s.prompt_tokens}/{s.completion_tokens}"
            f" · cached {s.cached} · retries {s.retries} · ${s.cost:.4f}"
        )
        if self.task is None:
            self.task = self.progress.add_task("run", total=live.total, completed=done, info=info)
        else:
            self.progress.update(self.task, completed=done, info=info)
