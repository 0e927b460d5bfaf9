"""Probe: does the copy ban (`ChatRequest.avoid_copying`, `socialsim.llm.nocopy`) keep the embedded model's first
attempt at a seeker line from repeating one of its earlier lines or the supporter's, and at what cost?

For every seeker turn of a finished run (not the goodbyes), the seeker's first-attempt request for the history
before it (`Seeker.request`, what `simulate` sends, in the run's seeker format) is sent to the embedded model
twice, the same seed: once as it is (with the ban) and once without it. Both lines go through the seeker's own
checks (`Seeker.judge`). Prints how many first attempts each way a check rejected, and writes every line with its
verdict to ``--out``.

    python scripts/copy_ban_probe.py RUN [RUN ...] [--limit 60] [--model qwen2.5-1.5b] [--out copy_ban_probe.json]

``--vs temperature=T`` compares the request as it is with the same request at temperature T (both with the ban)
instead of without the ban. ``--limit`` counts turns per run. A request already probed (the same history in an
earlier run given, e.g. every first turn of runs with one seed) is probed once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

from socialsim.agents.common import clean_utterance, derive_seed
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import Seeker
from socialsim.llm.local import LocalBackend
from socialsim.schema import Dialogue

SLIPS = ("role", "repeat", "refusal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="+")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--vs", default="no-ban", help="the other way of asking: no-ban or temperature=T")
    ap.add_argument("--out", type=Path, default=Path("copy_ban_probe.json"))
    args = ap.parse_args()
    other = "no ban" if args.vs == "no-ban" else args.vs
    if other != "no ban" and not args.vs.startswith("temperature="):
        ap.error("--vs: no-ban or temperature=T")
    backend = LocalBackend(model_name=args.model, n_threads=2)
    prompts = Prompts()
    rows: list[dict] = []
    counts: dict[str, Counter[str]] = {"ban": Counter(), other: Counter()}
    t0 = time.time()
    for run in args.run:
        probe_run(run, backend, prompts, args, other, rows, counts, t0)
    summarize(rows, counts, args.out)


def probe_run(
    run: Path,
    backend: LocalBackend,
    prompts: Prompts,
    args: argparse.Namespace,
    other: str,
    rows: list[dict],
    counts: dict[str, Counter[str]],
    t0: float,
) -> None:
    """Probe the first ``args.limit`` seeker turns of one run, appending to ``rows`` and ``counts``."""
    manifest = json.loads((run / "manifest.json").read_text())
    fmt = (manifest.get("config") or {}).get("seeker_format") or "text"
    first = len(rows)
    probed = {(r["dialogue"], r["turn"], r["prompt"]) for r in rows}
    for line in (run / "dialogues.jsonl").read_text().splitlines():
        d = Dialogue.model_validate_json(line)
        seeker = Seeker(None, d.persona, prompts, seed=d.seed, prompt_format=fmt)  # type: ignore[arg-type]
        for i, turn in enumerate(d.turns):
            if turn.speaker != "seeker" or len(rows) - first >= args.limit:
                continue
            if i == len(d.turns) - 1 and d.end_reason == "goodbye":
                continue
            history, layer = d.turns[:i], turn.disclosure_layer or 0
            before, earlier = seeker.said_before(history)
            req = seeker.request(
                history,
                layer,
                False,
                False,
                None,
                temperature=args.temperature,
                seed=derive_seed(d.seed, "probe", d.id, i),
            )
            prompt = req.prompt if req.prompt is not None else repr(req.messages)
            if (d.id, i, prompt) in probed:
                continue
            probed.add((d.id, i, prompt))
            row: dict = {
                "dialogue": d.id,
                "turn": i,
                "layer": layer,
                "before": before,
                "earlier": earlier,
                "prompt": prompt,
            }
            if other == "no ban":
                alt = dataclasses.replace(req, avoid_copying=())
            else:
                alt = dataclasses.replace(req, temperature=float(other.split("=", 1)[1]))
            for kind, r in (("ban", req), (other, alt)):
                text = clean_utterance(backend.complete_sync(r).text, max_sentences=2)
                row[kind] = verdict(seeker, text, before, layer, earlier)
                counts[kind][row[kind]["verdict"]] += 1
            rows.append(row)
            print(
                f"[{len(rows)} {time.time() - t0:.0f}s] ban {row['ban']['verdict']:8} | {other} "
                f"{row[other]['verdict']:8} | {row['ban']['text'][:70]} | {row[other]['text'][:50]}",
                flush=True,
            )


def verdict(seeker: Seeker, text: str, before: str | None, layer: int, earlier: list[str]) -> dict:
    """A first attempt through the seeker's checks: its text, verdict ('ok' or the check), reason, voice score and
    words. Also `seeker_completion_probe.py`'s."""
    problem, score = seeker.judge(text, before, layer, False, earlier)
    return {
        "text": text,
        "verdict": "ok" if problem is None else problem[0],
        "reason": None if problem is None else problem[1],
        "voice": score,
        "words": len(text.split()),
    }


def summarize(rows: list[dict], counts: dict[str, Counter[str]], out: Path) -> None:
    """Print, per way of asking, how many first attempts a check rejected (role, repeat and refusal count as slips)
    and the mean words a line; write the summary and every row to ``out``. Also `seeker_completion_probe.py`'s."""
    n = len(rows)
    summary = {}
    for kind, c in counts.items():
        slips = sum(v for k, v in c.items() if k in SLIPS)
        words = sum(r[kind]["words"] for r in rows) / max(n, 1)
        summary[kind] = {"turns": n, "slips": slips, "verdicts": dict(c), "mean_words": round(words, 1)}
        print(f"{kind:10} slips {slips}/{n} ({slips / max(n, 1):.0%}) verdicts {dict(c)} words {words:.1f}")
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
