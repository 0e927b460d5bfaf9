"""socialsim.io: the one atomic writer (fsync file, rename, fsync folder), the one JSONL reader and the
cache-folder rule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from socialsim import io
from socialsim.errors import UserError


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what each os.fsync call syncs ("file" or "dir"), and the order of fsyncs and renames."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append("rename")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(io.os, "fsync", fsync)
    monkeypatch.setattr(io.os, "replace", replace)
    return events


def test_atomic_write_fsyncs_file_then_renames_then_fsyncs_folder(tmp_path, monkeypatch):
    events = _record_fsyncs(monkeypatch)
    target = tmp_path / "out.json"
    io.atomic_write_text(target, "hello\n")
    assert events == ["fsync-file", "rename", "fsync-dir"]
    assert target.read_text() == "hello\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left


@pytest.mark.parametrize(
    "write",
    [
        lambda p: io.atomic_write_bytes(p, b"\x00\x01"),
        lambda p: io.atomic_write_lines(p, ["a", "b"]),
        lambda p: io.write_jsonl_records(p, [{"a": "é"}]),
    ],
)
def test_every_variant_has_the_same_durability(tmp_path, monkeypatch, write):
    events = _record_fsyncs(monkeypatch)
    write(tmp_path / "f")
    assert events == ["fsync-file", "rename", "fsync-dir"]


def test_a_folder_written_whole_is_synced_and_renamed(tmp_path, monkeypatch):
    events = _record_fsyncs(monkeypatch)
    with io.atomic_path(tmp_path / "model") as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
    assert (tmp_path / "model" / "config.json").read_text() == "{}"
    assert events == ["fsync-file", "fsync-dir", "rename", "fsync-dir"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old\n")

    def lines():
        yield "new"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        io.atomic_write_lines(target, lines())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_jsonl_lines_and_strings_written_as_they_are(tmp_path):
    p = tmp_path / "r.jsonl"
    assert io.write_jsonl_records(p, [{"t": "café"}, {"n": 2}]) == 2
    assert p.read_text(encoding="utf-8") == '{"t": "café"}\n{"n": 2}\n'
    assert list(io.iter_jsonl(p)) == [(1, {"t": "café"}), (2, {"n": 2})]


def test_iter_jsonl_names_file_and_line_and_is_a_user_error(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n\n{"b": \n')
    with pytest.raises(UserError, match=r"bad.jsonl:3: not valid JSON \(.* at column \d+\); each line must be"):
        list(io.iter_jsonl(p))
    with pytest.raises(ValueError):  # older callers catch ValueError
        list(io.iter_jsonl(p))
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(io.JsonlError, match=r"bad.jsonl:2: expected a persona"):
        list(io.iter_jsonl(p, what="a persona"))


def test_parse_json_names_the_line(tmp_path):
    with pytest.raises(UserError, match=r"x.json:2: not valid JSON .*; fix it"):
        io.parse_json(tmp_path / "x.json", '[\n{"a" 1}]', hint="fix it")


def test_cache_dir_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("SOCIALSIM_CACHE_DIR", str(tmp_path / "own"))
    assert io.cache_dir() == tmp_path / "own"
    monkeypatch.delenv("SOCIALSIM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert io.cache_dir() == tmp_path / "xdg" / "socialsim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert io.cache_dir() == Path(os.path.expanduser("~/.cache")) / "socialsim"


def test_the_cache_users_share_the_rule(monkeypatch, tmp_path):
    from socialsim.llm.factory import default_cache_path
    from socialsim.llm.models import models_dir
    from socialsim.safety.events import default_event_log_path

    monkeypatch.setenv("SOCIALSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SOCIALSIM_MODELS_DIR", raising=False)
    assert default_cache_path().parent == default_event_log_path().parent == models_dir().parent == tmp_path


_WRITER = """
import sys
from socialsim.io import atomic_open
with atomic_open(sys.argv[1]) as f:
    for i in range(10**9):
        f.write("x" * 1000 + "\\n")
        if i == 200:
            print("writing", flush=True)
"""


def test_a_killed_writer_leaves_the_old_file_whole(tmp_path):
    """Real kill-safety: SIGKILL a process in the middle of a large atomic write."""
    target = tmp_path / "data.txt"
    target.write_text("old content\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"writing"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_text() == "old content\n"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "data.txt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".data.txt.")  # the torn temp, never the target


def test_line_writer_and_repair_tail(tmp_path):
    p = tmp_path / "log.jsonl"
    w = io.LineWriter(p)
    w.append('{"a": 1}')
    w.append('{"b": 2}\n')
    w.close()
    with p.open("ab") as f:
        f.write(b'{"c": ')  # a torn last line
    assert io.repair_tail(p) is True
    assert list(io.iter_jsonl(p)) == [(1, {"a": 1}), (2, {"b": 2})]
