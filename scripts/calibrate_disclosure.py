"""The ``observed`` disclosure policy run over ESConv's human dialogues (valid split; nothing is fitted).

    python scripts/calibrate_disclosure.py                       # the figures in docs/method/disclosure.md
    python scripts/calibrate_disclosure.py --grid                # and how they move with the main thresholds
    python scripts/calibrate_disclosure.py --split path/to/valid.jsonl --features /tmp/f.json

Each dialogue's consecutive utterances by one speaker are one turn (a supporter turn is one reply, as in a
simulation). For every supporter reply: the strategy recognizer's probabilities (context: the turns before it)
and the answered signal against the seeker turn just before it (`answered_score`, batched here). Then the
policy (`ObservedDisclosure`, the shipped constants) reads, reply by reply:

- human: each dialogue's own replies, in order, until the seeker would leave;
- advice only: each dialogue's replies whose gold labels are all Providing Suggestions or Information (in
  their own contexts; dialogues with at least 2, repeated to 8 replies): a supporter who only advises;
- listening only: the same with replies labelled only Reflection, Restatement, Affirmation or Question.

Printed: the share of streams reaching the core by the 6th reply, at all, the reply at which they do, and how
they end; and the answered signal's separation of a reply's own seeker turn from a random one (AUC).
Features are cached in ``--features`` (recognizer and embeddings take a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import socialsim.agents.disclosure as dis
from socialsim.agents.disclosure import Evidence, ObservedDisclosure, answered_from_cosine
from socialsim.recognize.strategy_build import default_split, split_dialogs

ADVICE = {"Providing Suggestions", "Information"}
LISTENING = {"Reflection of feelings", "Restatement or Paraphrasing", "Affirmation and Reassurance", "Question"}
BY = 6


def merged_turns(dialog: Sequence[tuple[str, str, str | None]]) -> list[dict[str, Any]]:
    """Consecutive utterances of one speaker as one turn: speaker, text, gold labels."""
    turns: list[dict[str, Any]] = []
    for speaker, text, strategy in dialog:
        if turns and turns[-1]["speaker"] == speaker:
            turns[-1]["text"] += " " + text
            turns[-1]["gold"].append(strategy)
        else:
            turns.append({"speaker": speaker, "text": text, "gold": [strategy]})
    return turns


def features(split: Path, cache: Path | None) -> tuple[list[list[dict[str, Any]]], list[float], list[float]]:
    """Per dialogue, its turns; supporter turns carry ``probs`` and ``cos`` (to the seeker turn before; None
    without one). Also the cosines of replies to their own seeker turn and to a random one (for the AUC)."""
    if cache is not None and cache.is_file():
        data = json.loads(cache.read_text())
        return data["dialogues"], data["own"], data["random"]
    from socialsim.embeddings import embed
    from socialsim.recognize.strategy import default_recognizer

    dialogues = [merged_turns(d) for d in split_dialogs(split)]
    replies, contexts, where = [], [], []
    for di, turns in enumerate(dialogues):
        for ti, t in enumerate(turns):
            if t["speaker"] == "supporter":
                replies.append(t["text"])
                contexts.append([(x["speaker"], x["text"]) for x in turns[:ti]])
                where.append((di, ti))
    for (di, ti), p in zip(where, default_recognizer().predict(replies, contexts), strict=True):
        dialogues[di][ti]["probs"] = p.as_json()
    pairs = [(di, ti) for di, ti in where if ti > 0 and dialogues[di][ti - 1]["speaker"] == "seeker"]
    vr = embed([dialogues[di][ti]["text"] for di, ti in pairs])
    vs = embed([dialogues[di][ti - 1]["text"] for di, ti in pairs])
    own = [float(x) for x in (vr * vs).sum(1)]
    perm = list(range(len(pairs)))
    random.Random(0).shuffle(perm)
    rand = [float(x) for x in (vr * vs[perm]).sum(1)]
    for (di, ti), c in zip(pairs, own, strict=True):
        dialogues[di][ti]["cos"] = c
    if cache is not None:
        cache.write_text(json.dumps({"dialogues": dialogues, "own": own, "random": rand}))
    return dialogues, own, rand


def evidence(t: dict[str, Any]) -> Evidence:
    c = t.get("cos")
    return Evidence(probs=t["probs"], answered=None if c is None else answered_from_cosine(c))


def play(stream: Sequence[Evidence]) -> tuple[int | None, str]:
    """(the reply at which the core opened, 1-based, or None; how the stream ended: heard, dismissed, ran out)."""
    policy, core = ObservedDisclosure(), None
    for k, ev in enumerate(stream, 1):
        if policy.observe(Evidence(probs=ev.probs, answered=ev.answered, layer=policy.layer)) == 2 and core is None:
            core = k
        leave = policy.leaving()
        if leave is not None:
            return core, leave
    return core, "ran out"


def streams(dialogues: list[list[dict[str, Any]]]) -> dict[str, list[list[Evidence]]]:
    def only(labels: set[str], turns: list[dict[str, Any]]) -> list[Evidence]:
        return [evidence(t) for t in turns if t["speaker"] == "supporter" and set(t["gold"]) <= labels]

    out: dict[str, list[list[Evidence]]] = {"human": [], "advice only": [], "listening only": []}
    for turns in dialogues:
        out["human"].append([evidence(t) for t in turns if t["speaker"] == "supporter"])
        for name, labels in (("advice only", ADVICE), ("listening only", LISTENING)):
            s = only(labels, turns)
            if len(s) >= 2:
                out[name].append((s * 8)[:8])
    return out


def figures(runs: list[tuple[int | None, str]]) -> dict[str, Any]:
    cores = [c for c, _ in runs if c is not None]
    n = len(runs)
    return {
        "streams": n,
        f"core by reply {BY}": round(sum(c <= BY for c in cores) / n, 3),
        "core at all": round(len(cores) / n, 3),
        "mean reply at core": round(statistics.mean(cores), 2) if cores else None,
        "median reply at core": statistics.median(cores) if cores else None,
        "heard": round(sum(e == "heard" for _, e in runs) / n, 3),
        "dismissed": round(sum(e == "dismissed" for _, e in runs) / n, 3),
    }


def auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(a random own-turn cosine > a random other-turn cosine), ties half (rank formula)."""
    ranked = sorted([(x, 1) for x in pos] + [(x, 0) for x in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # 1-based average rank of the tie block
        rank_sum += mid * sum(lab for _, lab in ranked[i:j])
        i = j
    n1, n0 = len(pos), len(neg)
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


@contextmanager
def constants(**values: float) -> Iterator[None]:
    old = {k: getattr(dis, k) for k in values}
    for k, v in values.items():
        setattr(dis, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(dis, k, v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", type=Path, default=default_split("valid"), help="ESConv split (default: valid)")
    ap.add_argument("--features", type=Path, default=Path("/tmp/socialsim-disclosure-features.json"))
    ap.add_argument("--grid", action="store_true", help="also vary the layer-2 threshold and the advice weight")
    args = ap.parse_args()
    dialogues, own, rand = features(args.split, args.features)
    by_name = streams(dialogues)
    print(f"answered signal: AUC {auc(own, rand):.3f} (own seeker turn vs a random one, {len(own)} replies); "
          f"cosine median own {statistics.median(own):.2f}, random {statistics.median(rand):.2f}")
    for name, ss in by_name.items():
        print(f"{name:15s}", json.dumps(figures([play(s) for s in ss])))
    if args.grid:
        print(f"\ncore by reply {BY}: human / advice only, as OBSERVED_LAYER_2 (rows) and DIRECT_WEIGHT (columns) move")
        weights = (1.0, 2.0, 3.0)
        print("        " + "".join(f"{w:>16}" for w in weights))
        for t2 in (2.0, 2.5, 3.0, 4.0):
            cells = []
            for w in weights:
                with constants(OBSERVED_LAYER_2=t2, DIRECT_WEIGHT=w):
                    h = figures([play(s) for s in by_name["human"]])[f"core by reply {BY}"]
                    a = figures([play(s) for s in by_name["advice only"]])[f"core by reply {BY}"]
                cells.append(f"{h:.2f} / {a:.2f}")
            print(f"{t2:>6}  " + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
