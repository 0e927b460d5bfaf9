"""Declared vs realized strategy of a corpus under each labeller, side by side.

    python scripts/labeller_agreement.py RUN                   # the run as stored, and the recognizer now
    socialsim strategy-agreement RUN --relabel --labeller llm --model qwen2.5-1.5b --out llm.jsonl
    python scripts/labeller_agreement.py RUN llm.jsonl         # and the LLM classifier's labels beside them

For the kept supporter replies of each corpus (a run folder or a dialogues JSONL, e.g. one written by
``socialsim strategy-agreement --relabel``) that declare a strategy: how often the declared strategy is the
realized one, with the chance agreement and Cohen's kappa (`label_scores`), as each corpus stores it; then the
first corpus labelled again by the current strategy recognizer (reply and context). Nothing is written except
``--json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from socialsim.evaluate.readers import load_dialogues
from socialsim.evaluate.strategy_agreement import agreement_pairs, label_scores, relabel_recognized
from socialsim.schema import Dialogue


def dialogues_of(path: Path) -> list[Dialogue]:
    return [d for d in load_dialogues(path) if d.status == "ok"]


def row(name: str, dialogues: list[Dialogue]) -> dict[str, Any]:
    s = label_scores(agreement_pairs(dialogues))
    return {"labels": name, **{k: s[k] for k in ("n", "accuracy", "chance_agreement", "kappa", "macro_f1")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", type=Path, nargs="+")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = [row(f"{p} (as stored)", dialogues_of(p)) for p in args.corpora]
    again, _ = relabel_recognized(dialogues_of(args.corpora[0]))
    rows.append(row(f"{args.corpora[0]} (strategy recognizer, now)", again))
    for r in rows:
        print(f"{r['labels']}\n  n {r['n']}  agree {r['accuracy']:.2f}  chance {r['chance_agreement']:.2f}  "
              f"kappa {r['kappa']:.2f}  macro-F1 {r['macro_f1']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
