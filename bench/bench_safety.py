"""Cost of the crisis-safety stages per seeker message, side by side in one run. Not a test.

    python bench/bench_safety.py            # 200 messages, 2 turns of context each

Rows: the rule stage (`RuleStage.check`), the learned stage one message at a time
(`LearnedStage.score`) and in one batch (`LearnedStage.score_many`), as the median ms per message
and as a ratio to the rule stage. Messages come from the shipped labelled test set (heldout5).
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
    rules, learned = RuleStage(), LearnedStage()
    learned.warm()
    rules.check(items[0][0])
    rule_ms = per_message_ms(lambda t, c: rules.check(t), items)
    one_ms = per_message_ms(learned.score, items)
    t0 = time.perf_counter()
    learned.score_many(items)
    batch_ms = (time.perf_counter() - t0) * 1000 / len(items)
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, {len(items)} messages.\n")
    print("| stage | ms per message | x rule stage |\n|---|---|---|")
    for name, ms in [("rules", rule_ms), ("learned, one at a time", one_ms), ("learned, one batch", batch_ms)]:
        print(f"| {name} | {ms:.2f} | {ms / rule_ms:.0f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
