"""Would dropping the supporter-voiced sentence of a seeker attempt save the turn? Read from a run folder.

    python scripts/slip_salvage.py runs/method            # a table, and every salvaged line
    python scripts/slip_salvage.py runs/method --json s.json

A seeker attempt is at most two sentences (`clean_utterance`). A common slip of small models is one sentence in
each voice ("I'm sorry to hear that. I've been so tired since the move."). For every seeker turn this reads the
*first* attempt (the first rejected one, or the kept line when nothing was rejected: the first attempt's prompt
does not depend on the seeker's checks, so this is the turn's first try as it would be with the salvage on) and
asks whether one of its sentences, alone, passes every check the seeker applies (`Seeker.judge`: role, repeat,
echo, naming, recitation; the leak check is not run). Also, over every rejected attempt of the run, how many
one sentence would save, by the check that rejected the attempt.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from socialsim.agents.common import split_sentences, words
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import Seeker
from socialsim.schema import read_dialogues


def salvage(seeker: Seeker, text: str, before: str | None, layer: int, earlier: list[str]) -> str | None:
    """The longest sentence of a two-sentence attempt that passes every check of `Seeker.judge` alone, else None."""
    parts = [s for s in split_sentences(text) if len(s) >= 2]
    if len(parts) < 2:
        return None
    passing = [s for s in parts if seeker.judge(s, before, layer, False, earlier)[0] is None]
    return max(passing, key=lambda s: len(words(s)), default=None)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a run folder (its dialogues.jsonl)")
    ap.add_argument("--json", type=Path, help="write the figures and salvaged lines here")
    args = ap.parse_args(argv)
    dialogues = read_dialogues(args.run / "dialogues.jsonl")
    turns = first_slips = first_saved = 0
    by_check: Counter[str] = Counter()
    saved_by_check: Counter[str] = Counter()
    examples: list[dict[str, str]] = []
    for d in dialogues:
        seeker = Seeker(None, d.persona, Prompts(), seed=0)  # type: ignore[arg-type]  # judge only: no model
        history = list(d.turns)
        for i, t in enumerate(history):
            if t.speaker != "seeker":
                continue
            turns += 1
            before = next((x.text for x in reversed(history[:i]) if x.speaker == "supporter"), None)
            if i == 0:  # the first line answers the opening line, as in `Seeker.speak`
                before = seeker.opening_line().strip()
            earlier = [x.text for x in history[:i] if x.speaker == "seeker"]
            layer = t.disclosure_layer or 0
            for k, r in enumerate(t.rejected):
                if r.check == "empty":
                    continue
                by_check[r.check] += 1
                kept = salvage(seeker, r.text, before, layer, earlier)
                if kept is not None:
                    saved_by_check[r.check] += 1
                    if k == 0:
                        examples.append({"attempt": r.text, "kept": kept, "reason": r.reason})
            if t.rejected and t.rejected[0].check in ("role", "repeat"):
                first_slips += 1
                if salvage(seeker, t.rejected[0].text, before, layer, earlier) is not None:
                    first_saved += 1
    out = {
        "run": str(args.run),
        "seeker_turns": turns,
        "turns_with_a_slip": first_slips,
        "turns_whose_first_try_one_sentence_saves": first_saved,
        "turns_with_a_slip_after_salvage": first_slips - first_saved,
        "rejected_attempts_by_check": dict(by_check),
        "saved_attempts_by_check": dict(saved_by_check),
        "examples": examples,
    }
    print(f"| figure | {args.run.name} |\n|---|---|")
    print(f"| seeker turns | {turns} |")
    print(f"| turns with a slip (first try rejected by the role or repeat check) | {first_slips} |")
    print(f"| of them, one sentence of the first try passes every check | {first_saved} |")
    left = first_slips - first_saved
    print(f"| turns with a slip, salvage on | {left} ({left / max(turns, 1):.0%}) |")
    for check, n in by_check.most_common():
        print(f"| rejected attempts, {check} | {n}, one sentence saves {saved_by_check[check]} |")
    for e in examples:
        print(f"- [{e['reason']}] {e['attempt']!r}\n    -> {e['kept']!r}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
