"""Does disclosure follow behaviour? Two scripted supporters, each against the same seekers on a real model.

    python scripts/scripted_supporters.py                            # 10 seekers, qwen2.5-1.5b (slow: ~30 min)
    python scripts/scripted_supporters.py --model smollm2-135m --n 2 # wiring check (a minute)
    python scripts/scripted_supporters.py --json out.json            # also write the per-dialogue figures

The supporters say fixed reply lists (`socialsim.agents.scripted`): ``listening`` reflects, validates and asks
open questions; ``advising`` advises and informs from the first reply. Each plays against ``--n`` seekers:
personas from the built-in bank (stratified by problem type, ``--seed``), the real seeker agent on
``--model``, the real strategy recognizer and safety layer, and the run default disclosure policy (or
``--disclosure``), for ``--max-turns`` replies (default 6). Printed per supporter: how many dialogues reached
the core by reply ``--by`` (default 6), at which reply each did, and how each ended. The contrast wanted by
issue #26: the listening supporter reaches the core by its 6th reply in >= 8 of 10 dialogues, the advising one
in <= 2 of 10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from socialsim.agents.scripted import SCRIPTS, ScriptedSupporter
from socialsim.llm.factory import build_llm
from socialsim.personas.bank import default_personas, sample_personas
from socialsim.schema import BackendConfig, Dialogue, ExecutionConfig, Persona, SimulationConfig
from socialsim.simulate.dialogue import DialogueConfig, simulate_dialogue
from socialsim.simulate.engine import role_slipped

DEFAULT_POLICY = SimulationConfig.model_fields["disclosure"].default


def core_reply(d: Dialogue) -> int | None:
    """The supporter reply (1-based) after which the seeker first spoke from the core, or None."""
    replies = 0
    for t in d.turns:
        if t.speaker == "supporter":
            replies += 1
        elif replies and t.disclosure_layer == 2:
            return replies
    return None


def core_similarity(d: Dialogue) -> float | None:
    """How close the seeker came to saying its core worry: the highest all-MiniLM-L6-v2 cosine between the
    persona's ``core`` field and a seeker line spoken from the core layer (goodbyes aside); None when no line was.
    (The leak check calls a line at 0.6 or more a saying of that field; a quote of the core's first clause scores
    0.87 median, `socialsim.agents.fidelity`.)"""
    from socialsim.embeddings import embed

    lines = [t.text for t in d.turns if t.speaker == "seeker" and t.disclosure_layer == 2]
    if str(d.end_reason) in ("seeker_goodbye", "seeker_dismissed"):
        lines = lines[:-1]
    if not lines or not d.persona.disclosure.core:
        return None
    v = embed([d.persona.disclosure.core, *lines])
    return round(float(max(v[1:] @ v[0])), 3)


async def play(
    llm: Any,
    personas: list[Persona],
    *,
    max_turns: int,
    disclosure: str,
    seed: int,
    quiet: bool,
    scripts: tuple[str, ...] = tuple(SCRIPTS),
    seeker_format: str = "text",
) -> dict[str, list[dict[str, Any]]]:
    """Each script against each persona, one dialogue after the other (persona by persona, so a run cut short
    has both scripts on the same seekers); per script, one record per dialogue."""
    cfg = DialogueConfig(max_turns=max_turns, disclosure=disclosure, seeker_format=seeker_format)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in scripts}
    for k, p in enumerate(personas):
        for name in scripts:
            replies = SCRIPTS[name]
            rows = out[name]
            t0 = time.monotonic()
            d = await simulate_dialogue(
                llm, p, seed=seed + k, dialogue_id=f"{name}-{k}", config=cfg, supporter=ScriptedSupporter(replies)
            )
            row = {
                "script": name, "persona": p.id, "status": d.status, "end_reason": d.end_reason,
                "core_at": core_reply(d), "replies": sum(t.speaker == "supporter" for t in d.turns),
                "layers": [t.disclosure_layer for t in d.turns if t.speaker == "seeker"],
                "realized": [t.realized_strategy.value if t.realized_strategy else None
                             for t in d.turns if t.speaker == "supporter"],
                "seeker": [t.text for t in d.turns if t.speaker == "seeker"],
                "slips": [role_slipped(t) for t in d.turns if t.speaker == "seeker"],
                "core_sim": core_similarity(d),
                "rejected": [[f"{r.check}: {r.text}" for r in t.rejected] for t in d.turns if t.speaker == "seeker"],
                "seconds": round(time.monotonic() - t0, 1),
            }  # fmt: skip
            rows.append(row)
            if not quiet:
                print(f"{name:9s} {k + 1:2d}/{len(personas)} {p.id:24s} layers {row['layers']} core at "
                      f"{row['core_at']} (core said: sim {row['core_sim']}) end {row['end_reason']} "
                      f"slips {sum(row['slips'])}/{len(row['slips'])} "
                      f"({row['seconds']} s)", file=sys.stderr, flush=True)
    return out


def summary(rows: list[dict[str, Any]], by: int) -> dict[str, Any]:
    """How many dialogues reached the core by reply ``by``, at which replies, and how they ended."""
    at = [r["core_at"] for r in rows]
    ends: dict[str, int] = {}
    for r in rows:
        ends[str(r["end_reason"])] = ends.get(str(r["end_reason"]), 0) + 1
    return {
        "dialogues": len(rows),
        f"core_by_reply_{by}": sum(1 for a in at if a is not None and a <= by),
        "core_at": at,
        "end_reasons": ends,
        "failed": sum(r["status"] != "ok" for r in rows),
        "role_slips": sum(sum(r["slips"]) for r in rows),
        "core_said_sim": [r["core_sim"] for r in rows],
        "seeker_turns": sum(len(r["slips"]) for r in rows),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-1.5b", help="embedded model for the seeker (default qwen2.5-1.5b)")
    ap.add_argument("--n", type=int, default=10, help="seekers per supporter (default 10)")
    ap.add_argument("--max-turns", type=int, default=6, help="supporter replies per dialogue at most (default 6)")
    ap.add_argument("--by", type=int, default=6, help="count dialogues reaching the core by this reply (default 6)")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--disclosure", default=DEFAULT_POLICY, help=f"disclosure policy (default {DEFAULT_POLICY})")
    names = ",".join(SCRIPTS)
    ap.add_argument("--scripts", default=names, help=f"which supporters, comma-separated (default {names})")
    ap.add_argument("--seeker-format", default="text", choices=["text", "transcript", "chat"],
                    help="how the seeker's prompt holds the chat (default text, as a new run on an embedded model)")
    ap.add_argument("--no-cache", action="store_true", help="do not answer calls from the per-call cache")
    ap.add_argument("--json", type=Path, help="write the summary and every dialogue's record here")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    personas = sample_personas(default_personas(), args.n, seed=args.seed)
    llm = build_llm(BackendConfig(kind="local", model=args.model), ExecutionConfig(cache=not args.no_cache))

    async def go() -> dict[str, list[dict[str, Any]]]:
        try:
            return await play(llm, personas, max_turns=args.max_turns, disclosure=args.disclosure, seed=args.seed,
                              quiet=args.quiet, scripts=tuple(args.scripts.split(",")),
                              seeker_format=args.seeker_format)  # fmt: skip
        finally:
            await llm.aclose()

    rows = asyncio.run(go())
    result = {
        "model": args.model, "n": args.n, "disclosure": args.disclosure, "max_turns": args.max_turns, "by": args.by,
        "summary": {name: summary(r, args.by) for name, r in rows.items()}, "dialogues": rows,
    }  # fmt: skip
    for name, s in result["summary"].items():
        failed = f"; failed {s['failed']}" if s["failed"] else ""
        print(f"{name}: core by reply {args.by} in {s[f'core_by_reply_{args.by}']} of {s['dialogues']} dialogues; "
              f"core at reply {s['core_at']}; ends {s['end_reasons']}; role slips {s['role_slips']}/{s['seeker_turns']}"
              f"{failed}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
