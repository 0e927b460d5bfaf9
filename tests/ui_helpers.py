"""Helpers for the `socialsim ui` tests: a `socialsim ui serve` subprocess; the synthetic corpora
come from `socialsim.testing.ui_data`."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

from socialsim.testing.ui_data import HOSTILE, make_dialogue, synthetic_store, write_run  # noqa: F401 - re-exported


class UIProcess:
    """``python -m socialsim.cli ui serve --port 0 ...``; waits for its address line."""

    def __init__(self, *args: str, log_dir: Path, env: dict | None = None, startup_s: float = 120) -> None:
        e = dict(os.environ)
        e.update(env or {})
        self.stderr_path = Path(log_dir) / "ui.stderr"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "socialsim.cli", "ui", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=e,
        )  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = lines.get(timeout=startup_s)
        except queue.Empty:
            self.close()
            raise RuntimeError("socialsim ui did not start: " + self.stderr_path.read_text()[-2000:]) from None
        m = re.search(r"(http://127\.0\.0\.1:(\d+))/", first)
        if not m:
            self.close()
            raise RuntimeError(f"unexpected first line {first!r}: " + self.stderr_path.read_text()[-2000:])
        self.url = m.group(1)
        self.port = int(m.group(2))
        self.lines = lines

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
