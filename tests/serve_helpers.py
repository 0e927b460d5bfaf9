"""Helpers for the serve/chat tests: a `socialsim serve` subprocess on 127.0.0.1 and raw SSE reads."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from conftest import one_line_error, run_cli  # noqa: F401 - one_line_error is re-exported


def run_serve_cli(*args, env=None, timeout=120, stdin=None):
    return run_cli(*args, env=env, timeout=timeout, stdin=stdin)


class ServeProcess:
    """``python -m socialsim.cli serve --port 0 ...`` (the main CLI, as users run it); waits until it listens.
    Subclasses serve other commands: `COMMAND`, and `READY` matching the first stdout line (URL, port)."""

    COMMAND: tuple[str, ...] = ("serve",)
    READY = r"listening on (http://127\.0\.0\.1:(\d+)/v1)"
    NAME = "serve"

    def __init__(self, *args: str, log_dir: Path, env: dict | None = None, startup_s: float = 180) -> None:
        e = dict(os.environ)
        e.update(env or {})
        self.stderr_path = Path(log_dir) / f"{self.NAME}.stderr"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "socialsim.cli", *self.COMMAND, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=e,
        )
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
            raise RuntimeError(
                f"socialsim {self.NAME} did not start in time: " + self.stderr_path.read_text()[-2000:]
            ) from None
        m = re.search(self.READY, first)
        if not m:
            self.close()
            raise RuntimeError(f"unexpected first line {first!r}: " + self.stderr_path.read_text()[-2000:])
        self.base_url = m.group(1)
        self.port = int(m.group(2))
        self.lines = lines

    def post(self, path: str, body: bytes, headers: dict | None = None, timeout: float = 300):
        """(status, headers, raw body) of a POST, errors included."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode("utf-8")

    def get(self, path: str, headers: dict | None = None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8")

    def close(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode


def parse_sse(raw: str) -> list[str]:
    """The data payloads of an SSE body, checking the framing: events of 'data: ...' lines separated
    by blank lines."""
    assert raw.endswith("\n\n"), raw[-80:]
    payloads = []
    for event in raw.strip("\n").split("\n\n"):
        lines = event.split("\n")
        assert len(lines) == 1 and lines[0].startswith("data: "), event
        payloads.append(lines[0][len("data: ") :])
    return payloads


def check_chunks(payloads: list[str], model: str) -> tuple[str, list[dict]]:
    """Checks OpenAI's chunk format and the final [DONE]; returns (joined text, chunk objects)."""
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks, "no chunks before [DONE]"
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    text = ""
    finishes = []
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and c["model"] == model and isinstance(c["created"], int)
        for ch in c["choices"]:
            assert ch["index"] == 0
            text += ch["delta"].get("content") or ""
            if ch["finish_reason"]:
                finishes.append(ch["finish_reason"])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert finishes and finishes[-1] in ("stop", "length")
    return text, chunks
