"""How often a reply copies the line it answers: supporter replies that say 8 or more words in a row of the
seeker line just before them (the supporter's echo check, `socialsim.agents.supporter.ECHO_RUN`), in a run folder
and among ESConv valid's human supporters.

    python scripts/echo_figures.py RUN [--valid PATH]

On the 1.5B model the two roles copy each other (the seeker's echoes are rejected and regenerated, and since
2026-12-06 the supporter's too: `socialsim.agents.supporter.echoes_seeker`, same run): this counts the supporter's
side, as kept in the run.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from socialsim.agents.common import longest_run, words
from socialsim.agents.supporter import ECHO_RUN
from socialsim.recognize.strategy_build import speaker_turns, split_dialogs
from socialsim.schema import read_dialogues

VALID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "esconv" / "splits" / "valid.jsonl"


def copied_runs(pairs: Iterable[tuple[str, str]]) -> list[int]:
    """For each (line, reply) pair, the most words in a row the reply copies from the line."""
    return [longest_run(words(reply), words(line)) for line, reply in pairs]


def run_pairs(run: Path) -> list[tuple[str, str]]:
    """(seeker line, supporter reply) of every model reply in a run (crisis-protocol replies left out)."""
    out = []
    for d in read_dialogues(run / "dialogues.jsonl"):
        for a, b in zip(d.turns, d.turns[1:], strict=False):
            if a.speaker == "seeker" and b.speaker == "supporter" and not (b.risk_reason or "").startswith("protocol"):
                out.append((a.text, b.text))
    return out


def esconv_pairs(path: Path) -> list[tuple[str, str]]:
    """(seeker turn, supporter turn) of ESConv dialogues, a speaker's consecutive utterances joined."""
    out = []
    for dialog in split_dialogs(path):
        turns = speaker_turns(dialog)
        out += [(a[1], b[1]) for a, b in zip(turns, turns[1:], strict=False) if (a[0], b[0]) == ("seeker", "supporter")]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a run folder (dialogues.jsonl)")
    ap.add_argument("--valid", type=Path, default=VALID, help=f"ESConv split (default {VALID})")
    args = ap.parse_args(argv)
    for name, pairs in (("run", run_pairs(args.run)), ("ESConv valid (human)", esconv_pairs(args.valid))):
        runs = copied_runs(pairs)
        hits, six, n = sum(r >= ECHO_RUN for r in runs), sum(r >= 6 for r in runs), len(runs)
        print(f"{name}: {hits} of {n} supporter replies copy {ECHO_RUN}+ words in a row of the seeker line before "
              f"({six} copy 6+)")


if __name__ == "__main__":
    main()
