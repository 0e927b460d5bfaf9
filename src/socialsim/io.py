"""The small file core every stage shares: atomic writes, append-only line logs, line-numbered JSONL
reading and the cache directory rule.

Atomic writes have one durability guarantee: the new content goes to a temporary file in the
destination's folder, the file is fsynced, renamed over the destination, and the folder is fsynced.
A reader sees the old file or the whole new one, never a torn one, also after a power cut; a failed
write removes its temporary file and leaves the old file as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from socialsim.errors import UserError


class JsonlError(UserError, ValueError):
    """A JSONL line that is not a JSON object: the message names file and line. It is a `UserError`
    (exit 2) and, for older callers, a `ValueError`."""


# -- atomic writes ----------------------------------------------------------------------------


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new entry in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    if path.is_dir():  # a folder written as a whole (e.g. a saved model): its files, then itself
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                _fsync_path(sub)
        fsync_dir(path)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: str | Path) -> Path:
    """The temporary name used while `path` is written: hidden, in the same folder, per process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write (a file or a folder) that replaces `path` on success.

    On leaving the block without an error the temporary is fsynced, renamed onto `path` and the
    folder fsynced; on an error it is removed and `path` is untouched."""
    path = Path(path)
    tmp = temp_path(path)
    _remove(tmp)
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    fsync_dir(path.parent)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        import shutil

        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """An open file (`mode` ``"w"`` or ``"wb"``) whose content replaces `path` atomically on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp:
        with tmp.open(mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Replace `path` with `text`, atomically and durably. Returns the path."""
    with atomic_open(path, "w", encoding) as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data`, atomically and durably. Returns the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_lines(path: str | Path, lines: Iterable[str]) -> int:
    """Replace `path` with one line per item (a newline is added to each), streamed, atomically.
    Returns the number of lines."""
    n = 0
    with atomic_open(path, "w") as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
    return n


def write_jsonl_records(path: str | Path, records: Iterable[Any]) -> int:
    """Replace `path` with one JSON object per line (UTF-8 kept as is), atomically. Returns the count."""
    return atomic_write_lines(path, (json.dumps(r, ensure_ascii=False) for r in records))


# -- append-only line logs -------------------------------------------------------------------


def repair_tail(path: str | Path) -> bool:
    """Cut a torn last line (no final newline) off `path`; True when something was cut."""
    path = Path(path)
    if not path.exists():
        return False
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return False
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        keep = 0
        pos = size
        while pos > 0:  # find the last newline, reading backwards in chunks
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            i = chunk.rfind(b"\n")
            if i != -1:
                keep = pos + i + 1
                break
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return True


class LineWriter:
    """Appends whole lines: one ``write`` on an ``O_APPEND`` descriptor per line, then fsync."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        new = not self.path.exists()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if new:
            fsync_dir(self.path.parent)

    def append(self, line: str) -> None:
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        written = os.write(self.fd, data)
        while written < len(data):  # regular files take the whole buffer; be safe anyway
            written += os.write(self.fd, data[written:])
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- JSONL reading ----------------------------------------------------------------------------


def iter_jsonl(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    hint: str = "each line must be one JSON object",
    what: str = "a JSON object",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL file.

    A line that is not JSON, or not an object, raises `JsonlError` (a `UserError`) naming file and
    line: ``FILE:LINE: not valid JSON (MSG at column N); HINT`` or ``FILE:LINE: expected WHAT``.
    Opening errors (missing file, …) propagate as `OSError` for the caller to word."""
    path = Path(path)
    with path.open(encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                tail = f"; {hint}" if hint else ""
                raise JsonlError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno}){tail}") from None
            if not isinstance(obj, dict):
                raise JsonlError(f"{path}:{lineno}: expected {what}")
            yield lineno, obj


def parse_json(path: str | Path, text: str, hint: str = "") -> Any:
    """`text` (the content of the JSON file `path`) parsed, or a `UserError` naming file and line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        tail = f"; {hint}" if hint else ""
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}){tail}") from None


# -- the project's read-only data ------------------------------------------------------------


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout: the project's read-only data (ESConv, the C-SSRS posts) that
    build scripts and tests read and never copy into the repository."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


# -- the cache directory ----------------------------------------------------------------------


def cache_dir() -> Path:
    """socialsim's one cache folder: ``$SOCIALSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/socialsim``,
    else ``~/.cache/socialsim`` (not created here)."""
    own = os.environ.get("SOCIALSIM_CACHE_DIR")
    if own:
        return Path(own)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "socialsim"
