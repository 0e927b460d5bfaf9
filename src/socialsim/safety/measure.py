"""Labelled safety messages and how the safety stages are measured on them.

A labelled file is JSONL, one message a line: ``text``, ``category`` (``none``, ``suicide``,
``self_harm``, ``harm_to_others``), ``kind`` (a finer label: ``indirect``, ``means_pills``,
``idiom``, ``diet``, ...) and optionally ``context`` (the previous seeker turns, oldest first).
The checked-in sets live in ``data/labelled/`` (provenance of each in its ``README.md``):
``heldout5.jsonl`` and ``heldout6.jsonl`` are the test sets, each committed before any later training or tuning and
never used to choose anything; ``train``, ``train2``, ``train3`` and the former held-out sets
``heldout`` ... ``heldout4`` train the learned stage and choose its threshold (out of fold).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import iter_jsonl
from socialsim.safety.layer import CLASSIFY_SCOPES, SafetyDecision, SafetyLayer
from socialsim.safety.learned import CLASSES, LearnedStage
from socialsim.safety.rules import RuleStage, load_rules
from socialsim.schema import Turn

RISK_CATEGORIES = CLASSES[1:]


def labelled_path(name: str) -> Path:
    """A checked-in labelled set by name (``train``, ``train2``, ``train3``, ``heldout`` ... ``heldout6``)."""
    return Path(str(ilr.files("socialsim.safety").joinpath(f"data/labelled/{name}.jsonl")))


@dataclass(frozen=True)
class Labelled:
    text: str
    category: str
    kind: str
    context: tuple[str, ...] = ()


def load_labelled(path: str | Path) -> list[Labelled]:
    """Rows of a labelled file; a bad line is a `UserError` naming file and line."""
    rows = []
    try:
        for lineno, obj in iter_jsonl(Path(path)):
            text, cat, ctx = obj.get("text"), obj.get("category"), obj.get("context") or []
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"{path}:{lineno}: field 'text' must be a non-empty string")
            if cat not in CLASSES:
                raise UserError(f"{path}:{lineno}: field 'category' must be one of {', '.join(CLASSES)}")
            if not isinstance(ctx, list) or not all(isinstance(c, str) for c in ctx):
                raise UserError(f"{path}:{lineno}: field 'context' must be a list of strings")
            rows.append(Labelled(text, cat, str(obj.get("kind", cat)), tuple(ctx)))
    except FileNotFoundError:
        raise UserError(f"{path}: labelled file not found") from None
    except ValueError as e:
        raise UserError(str(e)) from None
    return rows


@dataclass
class Report:
    """Per-category recall/precision of a yes/no decision (flagged = routed to the protocol)."""

    name: str
    rows: list[Labelled]
    flagged: list[bool]
    predicted: list[str] = field(default_factory=list)
    """The protocol category chosen for each flagged message (``none`` when not flagged)."""
    stages: list[str] = field(default_factory=list)
    """Which stage flagged each message (``rules``, ``learned``, ``classifier``; ``none``), when known."""
    ms_per_message: float | None = None
    """Wall time per message of the whole measurement, when measured."""
    notes: list[str] = field(default_factory=list)
    """One line per message the layer could not judge normally (a classifier or learned-stage error)."""
    verdicts: list[str | None] = field(default_factory=list)
    """The LLM classifier's answer per message (its risk, ``error`` when it failed, None when not asked)."""

    def category(self, cat: str) -> dict[str, Any]:
        idx = [i for i, r in enumerate(self.rows) if r.category == cat]
        hit = sum(self.flagged[i] for i in idx)
        # precision of "flagged as this category": among messages routed to this category's protocol
        routed = [i for i, p in enumerate(self.predicted) if p == cat and self.flagged[i]]
        right = sum(self.rows[i].category == cat for i in routed)
        return {
            "n": len(idx),
            "flagged": hit,
            "recall": hit / len(idx) if idx else float("nan"),
            "routed_here": len(routed),
            "precision": right / len(routed) if routed else float("nan"),
        }

    def benign(self, kinds: Sequence[str] | None = None) -> dict[str, Any]:
        idx = [i for i, r in enumerate(self.rows) if r.category == "none" and (kinds is None or r.kind in kinds)]
        fp = [self.rows[i].text for i in idx if self.flagged[i]]
        return {"n": len(idx), "flagged": len(fp), "fp_rate": len(fp) / len(idx) if idx else float("nan"), "texts": fp}

    def benign_kinds(self) -> list[str]:
        """The kinds of hard negative in the rows, sorted."""
        return sorted({r.kind for r in self.rows if r.category == "none"})

    def flagged_by_stage(self) -> dict[str, int]:
        """How many messages each stage routed to the protocol, in pipeline order (when stages are known)."""
        return {s: self.stages.count(s) for s in ("rules", "learned", "classifier") if s in self.stages}

    def missed(self) -> list[tuple[str, str]]:
        return [
            (r.category, r.text) for r, f in zip(self.rows, self.flagged, strict=True) if r.category != "none" and not f
        ]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: per risk category n / flagged / recall / precision, the hard
        negatives overall and per kind, which stage flagged what, the misses and the false positives."""
        benign = self.benign()
        d: dict[str, Any] = {
            "name": self.name,
            "n": len(self.rows),
            "categories": {c: _finite(self.category(c)) for c in RISK_CATEGORIES},
            "benign": {k: v for k, v in _finite(benign).items() if k != "texts"},
            "benign_by_kind": {
                k: {x: v for x, v in _finite(self.benign([k])).items() if x != "texts"} for k in self.benign_kinds()
            },
            "missed": [{"category": c, "text": t} for c, t in self.missed()],
            "messages": [
                {
                    "text": r.text,
                    "category": r.category,
                    "kind": r.kind,
                    "flagged": f,
                    "protocol": self.predicted[i] if self.predicted else None,
                    "stage": self.stages[i] if self.stages else None,
                    "verdict": self.verdicts[i] if self.verdicts else None,
                }
                for i, (r, f) in enumerate(zip(self.rows, self.flagged, strict=True))
            ],
            "false_positives": benign["texts"],
        }
        if self.stages:
            d["flagged_by_stage"] = self.flagged_by_stage()
        if self.ms_per_message is not None:
            d["ms_per_message"] = round(self.ms_per_message, 2)
        if self.notes:
            d["notes"] = self.notes
        return d

    def table(self) -> str:
        """A Markdown table: per risk category n, recall, precision; then the benign rows."""
        lines = [f"{self.name}", "| category | n | flagged | recall | precision |", "|---|---|---|---|---|"]
        for cat in RISK_CATEGORIES:
            c = self.category(cat)
            lines.append(f"| {cat} | {c['n']} | {c['flagged']} | {c['recall']:.1%} | {c['precision']:.1%} |")
        b = self.benign()
        lines.append(f"| benign (all hard negatives) | {b['n']} | {b['flagged']} | FP {b['fp_rate']:.1%} | |")
        for kind in self.benign_kinds():
            k = self.benign([kind])
            lines.append(f"| benign: {kind} | {k['n']} | {k['flagged']} | FP {k['fp_rate']:.1%} | |")
        return "\n".join(lines)


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN (no messages of a kind) as None, so the JSON stays standard."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}


def history_of(row: Labelled) -> list[Turn]:
    """A labelled message as the conversation the safety layer sees: its context turns, then it."""
    return [Turn(speaker="seeker", text=c) for c in row.context] + [Turn(speaker="seeker", text=row.text)]


async def measure_layer(
    rows: list[Labelled],
    layer: SafetyLayer,
    *,
    name: str = "",
    concurrency: int = 4,
    on_done: Callable[[], None] | None = None,
) -> Report:
    """What a configured `SafetyLayer` (rules, learned stage, LLM classifier: as ``serve`` and ``chat``
    build it) does with labelled messages: each goes through `SafetyLayer.assess` with its context as
    earlier seeker turns, without writing the event log. ``concurrency`` messages at a time (the LLM
    classifier's calls overlap; the learned stage runs in worker threads)."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(row: Labelled) -> SafetyDecision:
        async with sem:
            decision = await layer.assess(history_of(row), log=False)
        if on_done is not None:
            on_done()
        return decision

    t0 = time.perf_counter()
    decisions = await asyncio.gather(*(one(r) for r in rows))
    elapsed = time.perf_counter() - t0
    notes = [
        f"{i + 1}: {d.learned_error or d.classifier_error}"
        for i, d in enumerate(decisions)
        if d.learned_error or d.classifier_error
    ]
    return Report(
        name,
        rows,
        [d.flagged for d in decisions],
        [d.category if d.flagged else "none" for d in decisions],
        [d.stage if d.flagged else "none" for d in decisions],
        ms_per_message=1000 * elapsed / len(rows) if rows else None,
        notes=notes,
        verdicts=[d.verdict.risk if d.verdict else ("error" if d.classifier_error else None) for d in decisions],
    )


def tradeoff(
    rows: list[Labelled],
    learned: LearnedStage,
    *,
    rules: RuleStage | None = None,
    thresholds: Sequence[float] | None = None,
) -> list[dict[str, float]]:
    """Recall per risk category and the hard-negative false-positive rate of rules ``high`` OR learned
    score >= t, for each threshold t (default 0.05, 0.10, ..., 0.95 and the stage's own threshold)."""
    import numpy as np

    rules = rules or load_rules()
    ts = sorted({*(thresholds or [round(0.05 * k, 2) for k in range(1, 20)]), learned.threshold})
    scores = np.array([s.score for s in learned.score_many([(r.text, r.context) for r in rows])])
    high = np.array([rules.check(r.text, distance=True).level == "high" for r in rows])
    cats = np.array([r.category for r in rows])
    out = []
    for t in ts:
        f = high | (scores >= t)
        point: dict[str, float] = {"threshold": float(t)}
        for c in RISK_CATEGORIES:
            if (cats == c).any():
                point[c] = float(f[cats == c].mean())
        if (cats == "none").any():
            point["benign_fp_rate"] = float(f[cats == "none"].mean())
        out.append(point)
    return out


def plot_tradeoff(
    points: list[dict[str, float]],
    path: str | Path,
    *,
    threshold: float,
    title: str = "",
    recall_target: float = 0.98,
    fp_target: float = 0.05,
) -> Path:
    """A PNG of `tradeoff`: recall per risk category and the hard-negative false-positive rate against
    the learned-stage threshold, with the chosen threshold and the issue's targets marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib, from the [eval] extra: pip install -e '.[eval]'") from None
    ts = [p["threshold"] for p in points]
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for key, style in (("suicide", "-o"), ("self_harm", "-s"), ("harm_to_others", "-^")):
        if all(key in p for p in points):
            ax.plot(ts, [p[key] for p in points], style, ms=3, label=f"recall: {key.replace('_', ' ')}")
    if all("benign_fp_rate" in p for p in points):
        ax.plot(ts, [p["benign_fp_rate"] for p in points], "-x", color="crimson", ms=4, label="hard negatives flagged")
    ax.axvline(threshold, color="grey", ls="--", lw=1, label=f"threshold in use ({threshold:g})")
    ax.axhline(recall_target, color="green", ls=":", lw=1, label=f"recall target ({recall_target:.0%})")
    ax.axhline(fp_target, color="crimson", ls=":", lw=1, label=f"false-positive target ({fp_target:.0%})")
    ax.set_xlabel("learned-stage threshold (rules 'high' always flag)")
    ax.set_ylabel("share of messages routed to the protocol")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "crisis safety: recall and false positives by threshold")
    ax.legend(fontsize=8, loc="center left")
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


TEST_SETS: tuple[str, ...] = ("heldout5", "heldout6")
"""The shipped test sets (never used to choose anything; see ``data/labelled/README.md``)."""


@dataclass
class SafetyEval:
    """What `safety_eval` measured: one report per labelled file and, with the learned stage, the
    threshold trade-off over all files together."""

    config: str
    reports: list[Report]
    tradeoff: list[dict[str, float]] | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"config": self.config, "reports": [r.as_dict() for r in self.reports]}
        if self.tradeoff is not None:
            d["tradeoff"] = self.tradeoff
        return d


def safety_eval(
    paths: Sequence[str | Path] | None = None,
    *,
    learned: bool = True,
    learned_threshold: float | None = None,
    classify: str = "off",
    llm: Any = None,
    llm_name: str = "",
    concurrency: int = 4,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[], None] | None = None,
    json_out: str | Path | None = None,
    plot: str | Path | None = None,
) -> SafetyEval:
    """Measure the safety layer as ``serve``/``chat`` build it (rules; the learned stage when
    ``learned``; the LLM classifier on ``llm`` when ``classify`` is not ``off``) on labelled files
    (default: `TEST_SETS`), one `Report` per file (`measure_layer`). Every file is read and checked, and
    the outputs are checked to be new, before any model loads. ``json_out``: write `SafetyEval.as_dict`
    there; ``plot``: a PNG of the learned-stage threshold trade-off (`tradeoff`, `plot_tradeoff`).
    ``on_start(total messages)`` and ``on_done()`` report progress. ``llm`` is closed at the end."""
    from socialsim.io import atomic_write_text
    from socialsim.safety.classifier import LLMClassifier

    if classify not in CLASSIFY_SCOPES:
        raise UserError(f"option --classify: {classify!r} is not one of {', '.join(CLASSIFY_SCOPES)}")
    if classify != "off" and llm is None:
        raise ValueError("safety_eval: classify needs an llm")
    if plot is not None and not learned:
        raise UserError("option --plot: the trade-off is over the learned-stage threshold; drop --no-learned")
    for out, opt in ((json_out, "--json"), (plot, "--plot")):
        if out is not None and Path(out).exists():
            raise UserError(f"{out}: already exists; choose another {opt} (nothing was measured)")
    files = [Path(p) for p in paths] if paths else [labelled_path(n) for n in TEST_SETS]
    sets = [(p, load_labelled(p)) for p in files]
    for p, rows in sets:
        if not rows:
            raise UserError(f"{p}: no labelled messages")
    stage = LearnedStage(threshold=learned_threshold) if learned else None
    if stage is not None:
        stage.warm()
    layer = SafetyLayer(learned=stage, classifier=LLMClassifier(llm) if classify != "off" else None, classify=classify)
    config = "rules" + (f" + learned (threshold {stage.threshold:g})" if stage else "")
    if classify != "off":
        config += f" + LLM classifier on {classify} ({llm_name or 'llm'})"
    if on_start is not None:
        on_start(sum(len(rows) for _, rows in sets))

    async def run_all() -> list[Report]:
        try:
            return [
                await measure_layer(rows, layer, name=f"{p.name}: {config}", concurrency=concurrency, on_done=on_done)
                for p, rows in sets
            ]
        finally:
            if llm is not None:  # its HTTP session belongs to this event loop
                await llm.aclose()

    result = SafetyEval(config, asyncio.run(run_all()))
    if stage is not None and plot is not None:
        result.tradeoff = tradeoff([r for _, rs in sets for r in rs], stage)
        plot_tradeoff(result.tradeoff, plot, threshold=stage.threshold, title=" + ".join(p.name for p in files))
    if json_out is not None:
        atomic_write_text(Path(json_out), json.dumps(result.as_dict(), indent=1, ensure_ascii=False) + "\n")
    return result


def evaluate(
    rows: list[Labelled],
    *,
    rules: RuleStage | None = None,
    learned: LearnedStage | None = None,
    name: str = "",
) -> Report:
    """How the protocol routing without an LLM stage (rules ``high`` OR learned score at or above its
    threshold; either may be None to measure the other alone) does on labelled rows."""
    if rules is None and learned is None:
        raise ValueError("evaluate needs the rules, the learned stage or both")
    n = len(rows)
    # as in the safety layer: with a learned stage, distanced rule hits are ambiguous (not routed by the rules)
    rule_res = [rules.check(r.text, distance=learned is not None) for r in rows] if rules is not None else [None] * n
    scores = learned.score_many([(r.text, r.context) for r in rows]) if learned is not None else [None] * n
    flagged, predicted = [], []
    for res, sc in zip(rule_res, scores, strict=True):
        if res is not None and res.level == "high":
            flagged.append(True)
            predicted.append(res.category)
        elif sc is not None and sc.flagged:
            flagged.append(True)
            predicted.append(sc.category)
        else:
            flagged.append(False)
            predicted.append("none")
    return Report(name, rows, flagged, predicted)
