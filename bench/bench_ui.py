"""`socialsim ui` list pages on a small and a 100k-dialogue run store, side by side; prints a markdown
table. Not a test: run it by hand (about a minute on 2 cores).

    python bench/bench_ui.py            # 1,000 vs 100,000 dialogues
    python bench/bench_ui.py 200000     # another large size

Each measurement runs in a fresh process (`python -m socialsim.testing.ui_data measure RUN`): it
builds (or reuses) the run's SQLite index in a private cache folder, then times each page through
the ASGI app (median of 5 requests) and reports the process's peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from socialsim.testing.ui_data import synthetic_store  # noqa: E402


def measure(run: Path, cache: Path) -> dict:
    env = {**os.environ, "SOCIALSIM_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "socialsim.testing.ui_data", "measure", str(run)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    large_n = int(argv[0]) if argv else 100_000
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        t = Path(tmp)
        small_run = synthetic_store(t / "small", 1_000)
        t0 = time.perf_counter()
        large_run = synthetic_store(t / "large", large_n)
        store_s = time.perf_counter() - t0
        small = measure(small_run, t / "cache")
        large = measure(large_run, t / "cache")
        warm = measure(large_run, t / "cache")
    print(f"synthetic store of {large_n:,} dialogues written in {store_s:.1f} s; "
          f"index built in {large['index_build_s']} s (reused: {warm['index_build_s']} s)\n")  # fmt: skip
    print(f"| page | 1,000 dialogues | {large_n:,} dialogues | ratio |")
    print("|---|---|---|---|")
    for name, ms in warm["ms"].items():
        print(f"| {name} | {small['ms'][name]} ms | {ms} ms | {ms / small['ms'][name]:.2f} |")
    rss = warm["peak_rss_mib"], large["peak_rss_mib"]
    print(f"| peak RSS (index reused / while building) | {small['peak_rss_mib']} MiB | {rss[0]} / {rss[1]} MiB "
          f"| {max(rss) / small['peak_rss_mib']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
