"""Cost of the crisis safety layer per seeker message, side by side in one run. Not a test.

    python bench/bench_safety.py            # 200 short chat messages and 50 long posts
    python bench/bench_safety.py 100 20     # fewer

Two kinds of message: short chat messages (ESConv validation seeker turns, each with the two seeker
turns before it; the shipped test set heldout5 where ``../shared`` is absent) and long posts (C-SSRS
posts of the validation users longer than one window, which the learned stage scores window by
window). For each kind, in ms per message:

- the rule stage alone (`RuleStage.check`);
- the full default layer one message at a time, as ``serve`` runs it (`SafetyLayer.assess` of the
  layer `socialsim.safety.build` builds without options: rules, then the learned stage in a worker
  thread; median and mean);
- the same stages batched: the rules per message, then one `LearnedStage.score_many` over all of them.

Each runs with torch's default number of threads and with one thread (the embedding model is torch;
on a busy 2-core machine its threads wait for each other), twice, alternating, and the better run is
kept. (Until session 8 this bench compared one BLAS thread with numpy's default for the learned stage's
RBF kernel; the stage is a logistic regression now, one dot product a window, so that comparison no
longer applies; the torch one replaces it.)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from socialsim.safety import RuleStage  # noqa: E402
from socialsim.safety.build import LayerOptions, build_layer, describe_layer, load_learned  # noqa: E402
from socialsim.safety.corpora import WINDOW_WORDS, default_cssrs, default_esconv  # noqa: E402
from socialsim.safety.measure import (  # noqa: E402
    Labelled,
    cssrs_messages,
    esconv_messages,
    history_of,
    labelled_path,
    load_labelled,
)


def short_messages(n: int) -> tuple[str, list[Labelled]]:
    path = default_esconv("valid")
    if path.is_file():
        return "ESConv valid seeker turns", esconv_messages(path)[:n]
    return "heldout5 (no ../shared)", load_labelled(labelled_path("heldout5"))[:n]


def long_posts(n: int) -> tuple[str, list[Labelled]]:
    path = default_cssrs()
    if not path.is_file():
        return "no C-SSRS file", []
    rows = [r for r in cssrs_messages(path, "valid") if len(r.text.split()) > WINDOW_WORDS]
    return "C-SSRS valid posts", rows[:n]


def one_at_a_time(layer, rows: list[Labelled]) -> list[float]:  # type: ignore[no-untyped-def]
    """ms per message of `SafetyLayer.assess`, as serve calls it (one event loop, the learned stage in a thread)."""

    async def run() -> list[float]:
        times = []
        for r in rows:
            t0 = time.perf_counter()
            await layer.assess(history_of(r), log=False)
            times.append((time.perf_counter() - t0) * 1000)
        return times

    return asyncio.run(run())


def batched(layer, rows: list[Labelled]) -> float:  # type: ignore[no-untyped-def]
    """ms per message of the rules on each message plus one `score_many` over all of them."""
    t0 = time.perf_counter()
    for r in rows:
        layer.rules.check(r.text, distance=True)
    layer.learned.score_many([(r.text, r.context) for r in rows])
    return (time.perf_counter() - t0) * 1000 / len(rows)


def rules_only(rules: RuleStage, rows: list[Labelled]) -> float:
    t0 = time.perf_counter()
    for r in rows:
        rules.check(r.text, distance=True)
    return (time.perf_counter() - t0) * 1000 / len(rows)


def main(n_short: int = 200, n_long: int = 50) -> None:
    import torch

    options = LayerOptions()
    stage = load_learned(options)
    if stage is None:
        sys.exit("the learned stage is not installed here (the [eval] extra): nothing to compare")
    stage.warm()
    layer = build_layer(options, learned=stage)
    rules = RuleStage()
    sets = [short_messages(n_short), long_posts(n_long)]
    default_threads = torch.get_num_threads()
    thread_counts = sorted({default_threads, 1}, reverse=True)
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    for _ in range(2):  # alternate, so machine noise falls on every row
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for name, rows in sets:
                if not rows:
                    continue
                r = results.setdefault((name, threads), {"rules": [], "median": [], "mean": [], "batch": []})
                r["rules"].append(rules_only(rules, rows))
                times = one_at_a_time(layer, rows)
                r["median"].append(statistics.median(times))
                r["mean"].append(statistics.fmean(times))
                r["batch"].append(batched(layer, rows))
    torch.set_num_threads(default_threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (load average {load:.1f}); "
        f"layer: {describe_layer(layer)}.\n"
    )
    print(
        "| messages | n | words (mean) | torch threads | rules alone | layer, one at a time (median / mean) | batched |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, rows in sets:
        if not rows:
            print(f"| {name} | 0 | | | | | |")
            continue
        words = statistics.fmean(len(x.text.split()) for x in rows)
        for threads in thread_counts:
            r = {k: min(v) for k, v in results[(name, threads)].items()}
            print(
                f"| {name} | {len(rows)} | {words:.0f} | {threads} | {r['rules']:.2f} ms | "
                f"{r['median']:.1f} / {r['mean']:.1f} ms | {r['batch']:.1f} ms |"
            )
    print("\nms per message, best of 2 alternating runs each; torch's default threads first, then one thread.")


if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]) or not all(a.isdigit() for a in sys.argv[1:3]):
        print(__doc__)
        raise SystemExit(0 if any(a in ("-h", "--help") for a in sys.argv[1:]) else 2)
    main(*[int(a) for a in sys.argv[1:3]])
