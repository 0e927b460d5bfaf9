"""How often a word-overlap "off topic" check would reject real seekers: ESConv valid seeker turns that share no
content word with their own dialogue's situation, by the turn's number of content words.

    python scripts/off_topic_esconv.py [--valid PATH]

The seeker's old off-topic check rejected a line sharing no content word with the persona's situation and opened
layers. Real help-seekers mostly talk past the words of their situation ("hanging in there, kinda freaking out a
little"), so that check was removed (#26); this script is the measurement behind that.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from socialsim.agents.seeker import content_words, says_goodbye

VALID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "esconv" / "splits" / "valid.jsonl"


def main(argv: list[str] | None = None) -> dict[int, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--valid", type=Path, default=VALID, help=f"ESConv split (default {VALID})")
    args = ap.parse_args(argv)
    turns: list[tuple[set[str], set[str]]] = []
    for line in args.valid.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        allowed = content_words(rec["situation"])
        for u in rec["dialog"]:
            words = content_words(u["text"])
            if u["speaker"] == "usr" and words and not says_goodbye(u["text"]):
                turns.append((words, allowed))
    out: dict[int, float] = {}
    print(f"{len(turns)} ESConv seeker turns (not goodbyes, with a content word)")
    print("content words >= k | rejected as off topic")
    for k in (1, 4, 8, 12):
        n = sum(1 for words, allowed in turns if len(words) >= k and not words & allowed)
        out[k] = n / len(turns)
        print(f"{k:>18d} | {n} ({100 * out[k]:.1f} %)")
    return out


if __name__ == "__main__":
    main()
