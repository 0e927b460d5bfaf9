"""The live display of a persona build (rich), fed by `abuild_personas`' progress hook."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from socialsim.personas.builder import BuildStats


class BuildProgress:
    """A rich progress bar for `build_personas` (on stderr unless given a console)."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]personas"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self.task: Any = None

    def __enter__(self) -> BuildProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, stats: BuildStats, llm: Any) -> None:
        s = llm.stats
        elapsed = max(1e-6, time.monotonic() - stats.started)
        rate = 60 * (stats.session_accepted + stats.session_rejected) / elapsed
        info = (
            f"accepted {stats.accepted} · rejected {stats.rejected} · retries {stats.retries}"
            + (f" · resumed {stats.resumed}" if stats.resumed else "")
            + f" · {rate:.1f}/min · calls {s.calls} (cached {s.cached}) · tok {s.prompt_tokens}/{s.completion_tokens}"
        )
        done = min(stats.total, stats.done)
        if self.task is None:
            self.task = self.progress.add_task("build", total=stats.total, completed=done, info=info)
        else:
            self.progress.update(self.task, completed=done, info=info)
