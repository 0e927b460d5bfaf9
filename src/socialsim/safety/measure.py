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

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import iter_jsonl
from socialsim.safety.learned import CLASSES, LearnedStage
from socialsim.safety.rules import RuleStage

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

    def missed(self) -> list[tuple[str, str]]:
        return [
            (r.category, r.text) for r, f in zip(self.rows, self.flagged, strict=True) if r.category != "none" and not f
        ]

    def table(self) -> str:
        """A Markdown table: per risk category n, recall, precision; then the benign rows."""
        lines = [f"{self.name}", "| category | n | flagged | recall | precision |", "|---|---|---|---|---|"]
        for cat in RISK_CATEGORIES:
            c = self.category(cat)
            lines.append(f"| {cat} | {c['n']} | {c['flagged']} | {c['recall']:.1%} | {c['precision']:.1%} |")
        b = self.benign()
        lines.append(f"| benign (all hard negatives) | {b['n']} | {b['flagged']} | FP {b['fp_rate']:.1%} | |")
        for kind in sorted({r.kind for r in self.rows if r.category == "none"}):
            k = self.benign([kind])
            lines.append(f"| benign: {kind} | {k['n']} | {k['flagged']} | FP {k['fp_rate']:.1%} | |")
        return "\n".join(lines)


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
