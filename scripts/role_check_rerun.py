"""The current role check on the seeker lines a finished run stored, next to the verdicts the run recorded.

    python scripts/role_check_rerun.py RUN [RUN ...] [--show]

A run stores every seeker attempt: the kept line and each rejected one with the check and reason
(`Turn.rejected`). This reads the first attempt of every seeker turn (the rejected one if any, else the kept
line: a first attempt was written without a rejection note) and every kept line, and judges them again with the
role check as it is now (`socialsim.agents.seeker.supporter_voice`, rules + voice recognizer, against the
message the turn answers: the supporter's last, or on the first turn the default prompts' opening line, as
`Seeker.said_before` gives it). Printed: how many first attempts the run's role check rejected and how
many the current one rejects, the lines on which they differ (``--show``), and how many kept lines the current
check would reject. Use it after rebuilding the voice or strategy recognizer, to see what a run made before
would have met. Nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import supporter_voice
from socialsim.evaluate.readers import load_dialogues


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--show", action="store_true", help="print the lines on which the two verdicts differ")
    args = ap.parse_args()
    opening = Prompts().render("seeker_opening.txt").strip()
    for run in args.runs:
        dialogues = [d for d in load_dialogues(run) if d.status == "ok"]
        first_then = first_now = kept_now = n = 0
        differ: list[tuple[str, str, str]] = []
        for d in dialogues:
            for i, t in enumerate(d.turns):
                if t.speaker != "seeker":
                    continue
                before = next((u.text for u in reversed(d.turns[:i]) if u.speaker == "supporter"), None)
                before = opening if i == 0 else before
                first = t.rejected[0] if t.rejected else None
                then = first.reason if first and first.check == "role" else None
                kept = supporter_voice(t.text, before)
                text, now = (first.text, supporter_voice(first.text, before)) if first else (t.text, kept)
                n += 1
                first_then += then is not None
                first_now += now is not None
                if (then is None) != (now is None):
                    differ.append((then or "passed", now or "passed", text))
                kept_now += kept is not None and not t.slip
        print(f"{run}: {n} seeker turns; first attempts rejected by the role check: then {first_then}, "
              f"now {first_now}; kept lines (which passed then) the current check rejects: {kept_now}")
        if args.show:
            for then, now, text in differ:
                print(f"  then {then:<14} now {now:<14} {text}")


if __name__ == "__main__":
    main()
