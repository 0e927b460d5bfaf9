"""The method's figures for one run folder (issue #26's table): does the run show the method?

    socialsim simulate --n 10 --max-turns 6 --seed 31 --strategy-check 2 --out runs/method   # the 1.5B model
    python scripts/method_figures.py runs/method                  # a markdown table
    python scripts/method_figures.py runs/method --json out.json  # and the figures as JSON

Printed, from the run's ``dialogues.jsonl`` and ``summary.json``:

- declared-vs-realized strategy agreement with Cohen's kappa (`socialsim.evaluate.strategy_agreement.label_scores`),
  on the first reply of each turn (before the strategy check's rewrites) and on the kept reply;
- seeker role slips (a role or repeat rejection on the turn), how many were kept (every attempt failed), fixed
  fallback lines, seeker lines that copy the persona card (target 0), leak and drift rates (from the run when it
  was made with ``--fidelity``; else, with this script's ``--fidelity``, the same `FidelityCheck` run over the lines
  the corpus kept, without the regeneration a ``--fidelity`` run does);
- dialogues reaching the core worry, and the supporter reply after which the seeker first spoke from it;
- mean words per supporter reply (crisis-protocol turns left out) and per seeker turn, next to ESConv's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from socialsim.evaluate.strategy_agreement import label_scores
from socialsim.schema import Dialogue, read_dialogues
from socialsim.simulate.engine import card_verbatim, first_try_realized, role_slipped


def core_reply(d: Dialogue) -> int | None:
    """The number of the supporter reply after which the seeker first spoke from the core layer (1 = the first)."""
    replies = 0
    for t in d.turns:
        if t.speaker == "supporter":
            replies += 1
        elif t.disclosure_layer == 2:
            return replies
    return None


def kept_line_fidelity(dialogues: list[Dialogue]) -> dict[str, Any]:
    """Leak and drift rates of the seeker lines a run kept, by `FidelityCheck` (as a ``--fidelity`` run checks each
    line, but after the fact: nothing regenerated). A dialogue's last seeker line is a goodbye when the seeker
    ended it."""
    from socialsim.agents.fidelity import FidelityCheck

    leaks = drifts = lines = 0
    for d in dialogues:
        check = FidelityCheck(d.persona)
        seeker = [t for t in d.turns if t.speaker == "seeker"]
        for k, t in enumerate(seeker):
            bye = k == len(seeker) - 1 and str(d.end_reason) in ("seeker_goodbye", "seeker_dismissed")
            f = check.check(t.text, t.disclosure_layer or 0, goodbye=bye or t.role_fallback)
            leaks, drifts, lines = leaks + f["leak"], drifts + f["drift"], lines + 1
    return {"leak_rate": round(leaks / lines, 3) if lines else None,
            "drift_rate": round(drifts / lines, 3) if lines else None, "lines": lines}  # fmt: skip


def figures(run: Path, *, fidelity: bool = False) -> dict[str, Any]:
    dialogues = [d for d in read_dialogues(run / "dialogues.jsonl") if d.status == "ok"]
    summary = json.loads((run / "summary.json").read_text())
    sup = [t for d in dialogues for t in d.turns if t.speaker == "supporter" and t.strategy is not None]
    labelled = [t for t in sup if t.realized_strategy is not None]
    first = label_scores([(t.strategy, first_try_realized(t)) for t in labelled])
    kept = label_scores([(t.strategy, t.realized_strategy) for t in labelled])
    seeker = [(d, t) for d in dialogues for t in d.turns if t.speaker == "seeker"]
    replies = [t for t in sup if not (t.risk_reason or "").startswith("protocol:")]
    core = [core_reply(d) for d in dialogues]
    reached = [c for c in core if c is not None]
    words = summary.get("words_per_turn") or {}
    measured = any(t.fidelity for _, t in seeker)  # made with --fidelity: the run's own rates
    after = kept_line_fidelity(dialogues) if fidelity and not measured else None
    return {
        "run": str(run),
        "dialogues_ok": len(dialogues),
        "supporter_replies": len(sup),
        "agreement_first_try": {k: first[k] for k in ("n", "accuracy", "kappa", "macro_f1")},
        "agreement_kept": {k: kept[k] for k in ("n", "accuracy", "kappa", "macro_f1")},
        "strategy_rewrites": sum(max(0, len(t.strategy_attempts) - 1) for t in sup),
        "seeker_turns": len(seeker),
        "role_slips": sum(role_slipped(t) for _, t in seeker),
        "slips_kept": sum(t.slip is not None for _, t in seeker),
        "role_fallbacks": sum(t.role_fallback for _, t in seeker),
        "card_verbatim_lines": sum(card_verbatim(t, d.persona) for d, t in seeker),
        "leak_rate": summary.get("leak_rate") if after is None else after["leak_rate"],
        "drift_rate": summary.get("drift_rate") if after is None else after["drift_rate"],
        "fidelity_after_the_fact": after is not None,
        "dialogues_seeker_slipped": sum(d.seeker_slipped for d in dialogues),
        "reached_core": len(reached),
        "core_at_reply_mean": round(statistics.fmean(reached), 2) if reached else None,
        "core_at_reply": core,
        "end_reasons": dict(sorted(Counter(str(d.end_reason) for d in dialogues).items())),
        "words_supporter": round(statistics.fmean(len(t.text.split()) for t in replies), 1) if replies else None,
        "words_seeker": round(statistics.fmean(len(t.text.split()) for _, t in seeker), 1) if seeker else None,
        "esconv_words": words.get("esconv"),
    }


def table(f: dict[str, Any]) -> str:
    def pct(n: int, of: int) -> str:
        return f"{n}/{of} ({n / of:.0%})" if of else "0/0"

    a, k = f["agreement_first_try"], f["agreement_kept"]
    after = " (kept lines, checked after the run)" if f.get("fidelity_after_the_fact") else ""
    ref = f["esconv_words"] or {}
    sup_ref, seek_ref = (ref.get("supporter") or {}).get("turn"), (ref.get("seeker") or {}).get("turn")
    rows = [
        ("dialogues (ok)", f["dialogues_ok"]),
        ("declared = realized, first try (kappa)", f"{a['accuracy']} ({a['kappa']}) of {a['n']}"),
        ("declared = realized, kept reply (kappa)", f"{k['accuracy']} ({k['kappa']}) of {k['n']}"),
        ("replies rewritten by the strategy check", f["strategy_rewrites"]),
        ("seeker role slips", pct(f["role_slips"], f["seeker_turns"])),
        ("slips kept (every attempt failed)", pct(f["slips_kept"], f["seeker_turns"])),
        ("fixed fallback lines", f["role_fallbacks"]),
        ("seeker lines copying the persona card", f["card_verbatim_lines"]),
        (f"leak rate / drift rate{after}", f"{f['leak_rate']} / {f['drift_rate']}"),
        ("dialogues whose seeker slipped on most turns", f["dialogues_seeker_slipped"]),
        ("dialogues reaching the core", pct(f["reached_core"], f["dialogues_ok"])),
        ("mean supporter reply at which the core came", f["core_at_reply_mean"]),
        ("end reasons", ", ".join(f"{r} {n}" for r, n in f["end_reasons"].items())),
        ("words per supporter reply (ESConv per turn)", f"{f['words_supporter']} ({sup_ref})"),
        ("words per seeker turn (ESConv per turn)", f"{f['words_seeker']} ({seek_ref})"),
    ]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="A run folder (dialogues.jsonl, summary.json).")
    ap.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    ap.add_argument("--fidelity", action="store_true",
                    help="For a run made without --fidelity: leak and drift of the kept seeker lines, checked now.")
    args = ap.parse_args(argv)
    if not (args.run / "dialogues.jsonl").is_file():
        print(f"{args.run}: no dialogues.jsonl (not a run folder)", file=sys.stderr)
        return 2
    f = figures(args.run, fidelity=args.fidelity)
    print(table(f))
    if args.json:
        args.json.write_text(json.dumps(f, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
