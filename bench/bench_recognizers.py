"""Cost of labelling a supporter reply and checking a seeker line, side by side in one run. Not a test.

    python bench/bench_recognizers.py              # 256 ESConv valid replies; 16 for the LLM classifier
    python bench/bench_recognizers.py --vs DIR     # and another strategy recognizer directory, e.g. the previous
                                                   # version (git show REV:src/socialsim/recognize/data/strategy/...)

Rows (median ms per item; ratio to the strategy recognizer one at a time):
- the strategy recognizer one reply at a time (`predict_one`), 32 replies per call, and all replies in
  one call (`predict` sorts them by length into batches of 32, so batches pad less);
- the LLM strategy classifier it replaces, on the embedded SmolLM2 in process (one call per reply);
- the role check (`VoiceRecognizer.check`, one line at a time; `check_many`, one batch) and the old
  rule-only check (`legacy_supporter_voice`).
Replies and their context come from ESConv's valid split in ../shared.
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

from socialsim.agents.seeker import legacy_supporter_voice  # noqa: E402
from socialsim.recognize.strategy import StrategyRecognizer  # noqa: E402
from socialsim.recognize.strategy_build import default_split, load_examples  # noqa: E402
from socialsim.recognize.voice import VoiceRecognizer  # noqa: E402


def median_ms(fn, items) -> float:  # type: ignore[no-untyped-def]
    times = []
    for it in items:
        t0 = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def batch_ms(fn, items, size: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for i in range(0, len(items), size):
        fn(items[i : i + size])
    return (time.perf_counter() - t0) * 1000 / len(items)


def llm_ms(replies: list[str]) -> float:
    from socialsim.agents.strategy_classifier import StrategyClassifier
    from socialsim.llm.client import LLM
    from socialsim.llm.local import LocalBackend

    clf = StrategyClassifier(LLM(LocalBackend(model_name="smollm2-135m"), cache=None))

    async def run() -> list[float]:
        await clf.classify("warm up")
        out = []
        for i, r in enumerate(replies):
            t0 = time.perf_counter()
            await clf.classify(r, key=i)
            out.append(time.perf_counter() - t0)
        return out

    return statistics.median(asyncio.run(run())) * 1000


def recognizer_rows(rec: StrategyRecognizer, ex: list, name: str) -> list[tuple[str, float]]:  # type: ignore[type-arg]
    rec.predict_one("warm up")
    return [
        (f"{name}, one at a time", median_ms(lambda e: rec.predict_one(e[0], e[1]), ex)),
        (f"{name}, 32 at a time (ESConv order)",
         batch_ms(lambda b: rec.predict([e[0] for e in b], [e[1] for e in b]), ex, 32)),
        (f"{name}, all in one call (batches of 32)",
         batch_ms(lambda b: rec.predict([e[0] for e in b], [e[1] for e in b]), ex, len(ex))),
    ]


def main(n: int = 256, n_llm: int = 16, vs: Path | None = None) -> None:
    ex = load_examples(default_split("valid"))[:n]
    rec, voice = StrategyRecognizer.load(), VoiceRecognizer.load()
    voice.check("warm up")
    rows = recognizer_rows(rec, ex, "strategy recognizer")
    one = rows[0][1]
    if vs is not None:
        rows += recognizer_rows(StrategyRecognizer.load(vs), ex, f"--vs {vs.name}")
    rows += [
        ("LLM strategy classifier (SmolLM2 in process)", llm_ms([e[0] for e in ex[:n_llm]])),
        ("role check, one at a time", median_ms(lambda e: voice.check(e[0], e[1][-1][1] if e[1] else None), ex)),
        ("role check, one batch", batch_ms(lambda b: voice.check_many([e[0] for e in b]), ex, len(ex))),
        ("old rule-only role check", median_ms(lambda e: legacy_supporter_voice(e[0]), ex)),
    ]
    print(f"{'what':48} {'ms/item':>9} {'x recognizer':>13}")
    for name, ms in rows:
        print(f"{name:48} {ms:9.2f} {ms / one:13.2f}")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vs", type=Path, help="another strategy recognizer directory, timed beside the shipped one")
    main(vs=ap.parse_args().vs)
