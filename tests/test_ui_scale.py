"""Paging on a 100k-dialogue run store: every list view answers from the index, and peak memory does
not grow with the corpus (each measurement in a fresh process; timings are printed, not asserted:
`python bench/bench_ui.py` compares them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
from ui_helpers import synthetic_store  # noqa: E402


def _measure(root):
    r = subprocess.run([sys.executable, "-m", "socialsim.testing.ui_data", "measure", str(root)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_paging_100k_store_with_bounded_memory(tmp_path):
    small = _measure(synthetic_store(tmp_path / "small", 1_000))
    large_root = synthetic_store(tmp_path / "large", 100_000)
    large = _measure(large_root)  # builds the index
    again = _measure(large_root)  # the index is reused: no rebuild
    for name, m in (("1k", small), ("100k, index built", large), ("100k, index reused", again)):
        print(f"\nui {name}: {json.dumps(m)}")
    assert large["dialogues"] == 100_000 and small["dialogues"] == 1_000
    for m in (small, large, again):
        assert m["rows"]["first page"] == 50 and m["rows"]["deep page"] == 50
        assert m["rows"]["filtered (problem + strategy + status)"] > 0
        assert m["rows"]["text search"] == (1 if m is small else 50)  # one dialogue in 1,000 says "zebracorn"
    assert again["index_build_s"] < large["index_build_s"] / 3
    # memory stays flat: 100x the dialogues, at most 60 MiB more than the 1k process
    assert large["peak_rss_mib"] < small["peak_rss_mib"] + 60, (small, large)
    assert again["peak_rss_mib"] < small["peak_rss_mib"] + 60, (small, again)
