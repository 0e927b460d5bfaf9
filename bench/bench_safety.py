"""Cost of the crisis-safety stages per seeker message, side by side in one run. Not a test.

    python bench/bench_safety.py            # 200 messages, 2 turns of context each

Rows: the rule stage (`RuleStage.check`), the learned stage one message at a time
(`LearnedStage.score`) and in one batch (`LearnedStage.score_many`), as the median ms per message
and as a ratio to the rule stage. The learned stage runs twice each way: as shipped (the SVM's kernel
products with one BLAS thread) and as before session 8 (numpy's default BLAS threads,
`LearnedStage.risk_kernel`), alternating in the same process. Messages come from the shipped
labelled test set (heldout5).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from socialsim.safety import LearnedStage, RuleStage  # noqa: E402
from socialsim.safety.measure import labelled_path, load_labelled  # noqa: E402


def per_message_ms(fn, items) -> float:  # type: ignore[no-untyped-def]
    times = []
    for text, context in items:
        t0 = time.perf_counter()
        fn(text, context)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(n: int = 200) -> None:
    rows = load_labelled(labelled_path("heldout5"))
    context = ["I've had a rough week at work.", "My manager keeps criticising me in front of everyone."]
    items = [(r.text, list(r.context) or context) for r in rows][:n]
    rules, shipped, before = RuleStage(), LearnedStage(), LearnedStage()
    before.risk = before.risk_kernel  # type: ignore[method-assign]
    shipped.warm()
    before.warm()
    rules.check(items[0][0])
    rule_ms = per_message_ms(lambda t, c: rules.check(t), items)
    rows = [("rules", rule_ms)]
    one: dict[str, list[float]] = {"shipped": [], "before": []}
    batch: dict[str, list[float]] = {"shipped": [], "before": []}
    for _ in range(2):  # alternate, so machine noise falls on both
        for name, stage in (("shipped", shipped), ("before", before)):
            one[name].append(per_message_ms(stage.score, items))
            t0 = time.perf_counter()
            stage.score_many(items)
            batch[name].append((time.perf_counter() - t0) * 1000 / len(items))
    for name, label in (("shipped", "one BLAS thread (shipped)"), ("before", "default BLAS threads (before)")):
        rows.append((f"learned, one at a time, {label}", min(one[name])))
        rows.append((f"learned, one batch, {label}", min(batch[name])))
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, {len(items)} messages.\n")
    print("| stage | ms per message | x rule stage |\n|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {ms / rule_ms:.0f} |")
    ratio = min(one["before"]) / min(one["shipped"])
    print(f"\none at a time: before / shipped = {ratio:.1f}x (best of 2 alternating runs each)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
