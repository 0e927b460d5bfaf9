"""Labelled safety messages and how the safety layer is measured on them, per tier.

A labelled file is JSONL, one message a line: ``text``, ``category`` (``none``, ``suicide``,
``self_harm``, ``harm_to_others``), ``kind`` (a finer label: ``indirect``, ``means_pills``,
``idiom``, ``diet``, ...) and optionally ``context`` (the previous seeker turns, oldest first).
The checked-in sets live in ``data/labelled/`` (provenance of each in its ``README.md``):
``heldout5.jsonl`` and ``heldout6.jsonl`` are the test sets, each committed before any later training or tuning and
never used to choose anything; ``train``, ``train2``, ``train3`` and the former held-out sets
``heldout`` ... ``heldout4`` train the learned stage and choose its thresholds.

Real files are read as labelled messages too (`load_messages` tells the formats apart by content):

- an **ESConv split file** (JSONL whose lines have a ``dialog``): every seeker turn is a ``none``
  message of kind ``esconv``, with the seeker turns before it as context;
- the **C-SSRS Reddit CSV** (``User,Post,Label``): every post is a message, category ``suicide`` for
  users labelled ``Indicator``, ``Ideation``, ``Behavior`` or ``Attempt`` and ``none`` for ``Supportive``
  users (who write about suicide to help others), kind ``cssrs:<Label>``; by default only the users of
  the validation split (`socialsim.safety.corpora.cssrs_split`), whom the learned stage never trained on.

Each message gets a tier from the layer: ``protocol`` (the fixed crisis reply), ``check_in`` (the
reply asks about safety) or ``none``. Crisis recall counts a message that reaches either.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources as ilr
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import iter_jsonl
from socialsim.safety.layer import SafetyDecision, SafetyLayer
from socialsim.safety.learned import CLASSES, TIERS, LearnedStage
from socialsim.safety.rules import RuleStage
from socialsim.schema import Turn

RISK_CATEGORIES = CLASSES[1:]
STAGES: tuple[str, ...] = ("rules", "learned", "classifier", "followup")
"""The stages that can decide a tier, in pipeline order."""
CSSRS_SPLITS: tuple[str, ...] = ("valid", "train", "all")
CSSRS_RISK_LABELS: tuple[str, ...] = ("Indicator", "Ideation", "Behavior", "Attempt")


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


def _rate(k: int, n: int) -> float:
    return k / n if n else float("nan")


def _shares(tiers: Sequence[str]) -> dict[str, Any]:
    """n, how many reach protocol / check-in / either, and their shares."""
    n, prot, chk = len(tiers), tiers.count("protocol"), tiers.count("check_in")
    return {
        "n": n,
        "protocol": prot,
        "check_in": chk,
        "reached": prot + chk,
        "protocol_rate": _rate(prot, n),
        "check_in_rate": _rate(chk, n),
        "reached_rate": _rate(prot + chk, n),
    }


@dataclass
class Report:
    """What the safety layer decided for labelled messages: a tier per message (``protocol``,
    ``check_in``, ``none``), with the stage that decided it and the learned score."""

    name: str
    rows: list[Labelled]
    tiers: list[str]
    predicted: list[str] = field(default_factory=list)
    """The risk category given to each message at ``check_in`` or ``protocol`` (``none`` otherwise)."""
    stages: list[str] = field(default_factory=list)
    """Which stage decided each message's tier (``rules``, ``learned``, ``classifier``, ``followup``, or
    ``none`` when no stage raised it), when known."""
    scores: list[float | None] = field(default_factory=list)
    """The learned stage's score per message (None where it was not asked or failed), when known."""
    ms_per_message: float | None = None
    """Wall time per message of the whole measurement, when measured."""
    notes: list[str] = field(default_factory=list)
    """One line per message the layer could not judge normally (a classifier or learned-stage error)."""
    verdicts: list[str | None] = field(default_factory=list)
    """The LLM classifier's answer per message (its risk, ``error`` when it failed, None when not asked)."""

    def __post_init__(self) -> None:
        bad = set(self.tiers) - set(TIERS)
        if bad or len(self.tiers) != len(self.rows):
            raise ValueError(f"Report: one tier of {TIERS} per row (got {len(self.tiers)} for {len(self.rows)}; {bad})")

    @property
    def flagged(self) -> list[bool]:
        """Per message: routed to the protocol (tier ``protocol``)."""
        return [t == "protocol" for t in self.tiers]

    def _idx(self, category: str, kinds: Sequence[str] | None = None) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r.category == category and (kinds is None or r.kind in kinds)]

    def kinds(self, category: str) -> list[str]:
        """The kinds of the messages of a category, sorted."""
        return sorted({r.kind for r in self.rows if r.category == category})

    def category(self, cat: str, kinds: Sequence[str] | None = None) -> dict[str, Any]:
        """A risk category (or some of its kinds): n; how many reach ``protocol``, ``check_in`` and either,
        and their shares; ``recall`` = the share reaching either (crisis recall); ``flagged`` = at
        protocol; the precision of the category the layer gave (among all messages it gave this category
        at either tier)."""
        idx = self._idx(cat, kinds)
        d = _shares([self.tiers[i] for i in idx])
        routed = [i for i, p in enumerate(self.predicted) if p == cat and self.tiers[i] != "none"]
        right = sum(self.rows[i].category == cat for i in routed)
        d.update(
            flagged=d["protocol"],
            recall=d["reached_rate"],
            routed_here=len(routed),
            precision=_rate(right, len(routed)),
        )
        return d

    def benign(self, kinds: Sequence[str] | None = None) -> dict[str, Any]:
        """The ``none`` messages (or some kinds of them): n, how many the layer took over with the protocol
        and checked in on, their rates (``fp_rate`` = the protocol rate), and their texts."""
        idx = self._idx("none", kinds)
        d = _shares([self.tiers[i] for i in idx])
        d.update(
            flagged=d["protocol"],
            fp_rate=d["protocol_rate"],
            texts=[self.rows[i].text for i in idx if self.tiers[i] == "protocol"],
            check_in_texts=[self.rows[i].text for i in idx if self.tiers[i] == "check_in"],
        )
        return d

    def benign_kinds(self) -> list[str]:
        """The kinds of ``none`` message in the rows, sorted."""
        return self.kinds("none")

    def by_stage(self) -> dict[str, dict[str, int]]:
        """Per stage, in pipeline order, how many messages it sent to ``protocol`` and to ``check_in``."""
        out = {}
        for s in STAGES:
            ts = [t for t, st in zip(self.tiers, self.stages, strict=True) if st == s and t != "none"]
            if ts:
                out[s] = {"protocol": ts.count("protocol"), "check_in": ts.count("check_in")}
        return out

    def flagged_by_stage(self) -> dict[str, int]:
        """How many messages each stage routed to the protocol, in pipeline order (when stages are known)."""
        return {s: v["protocol"] for s, v in self.by_stage().items() if v["protocol"]}

    def missed(self) -> list[tuple[str, str]]:
        """(category, text) of each crisis message at tier ``none``."""
        return [
            (r.category, r.text)
            for r, t in zip(self.rows, self.tiers, strict=True)
            if r.category != "none" and t == "none"
        ]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: per risk category and per kind within it, and for the ``none``
        messages overall and per kind: n, protocol, check_in, reached (either) and their rates; which stage
        decided what; the misses; and every message's tier, stage and learned score."""
        benign = self.benign()
        cats = {}
        for c in RISK_CATEGORIES:
            d = _finite(self.category(c))
            d["kinds"] = {k: _finite(_shares([self.tiers[i] for i in self._idx(c, [k])])) for k in self.kinds(c)}
            cats[c] = d
        out: dict[str, Any] = {
            "name": self.name,
            "n": len(self.rows),
            "categories": cats,
            "benign": {k: v for k, v in _finite(benign).items() if k not in ("texts", "check_in_texts")},
            "benign_by_kind": {
                k: _finite(_shares([self.tiers[i] for i in self._idx("none", [k])])) for k in self.benign_kinds()
            },
            "missed": [{"category": c, "text": t} for c, t in self.missed()],
            "messages": [
                {
                    "text": r.text,
                    "category": r.category,
                    "kind": r.kind,
                    "tier": self.tiers[i],
                    "stage": self.stages[i] if self.stages else None,
                    "score": None if not self.scores or self.scores[i] is None else round(self.scores[i], 4),
                    "predicted": self.predicted[i] if self.predicted and self.tiers[i] != "none" else None,
                    "verdict": self.verdicts[i] if self.verdicts else None,
                }
                for i, r in enumerate(self.rows)
            ],
            "false_positives": benign["texts"],
            "check_ins": benign["check_in_texts"],
        }
        if self.stages:
            out["by_stage"] = self.by_stage()
        if self.ms_per_message is not None:
            out["ms_per_message"] = round(self.ms_per_message, 2)
        if self.notes:
            out["notes"] = self.notes
        return out

    def table(self) -> str:
        """A Markdown table: per risk category (and its kinds) and for the ``none`` messages (and their
        kinds): n, share at protocol, share at check-in, share reaching either."""
        lines = [self.name, "| messages | n | protocol | check-in | protocol or check-in |", "|---|---|---|---|---|"]

        def row(label: str, d: dict[str, Any]) -> None:
            cells = [f"{d[k]} ({d[k + '_rate']:.1%})" for k in ("protocol", "check_in", "reached")]
            lines.append(f"| {label} | {d['n']} | " + " | ".join(cells) + " |")

        for cat in RISK_CATEGORIES:
            if self._idx(cat):
                row(cat, self.category(cat))
                for kind in self.kinds(cat):
                    row(f"{cat}: {kind}", self.category(cat, [kind]))
        if self._idx("none"):
            row("none (all)", self.benign())
            for kind in self.benign_kinds():
                row(f"none: {kind}", self.benign([kind]))
        return "\n".join(lines)


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN (no messages of a kind) as None, so the JSON stays standard."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}


def history_of(row: Labelled) -> list[Turn]:
    """A labelled message as the conversation the safety layer sees: its context turns, then it."""
    return [Turn(speaker="seeker", text=c) for c in row.context] + [Turn(speaker="seeker", text=row.text)]


# -- reading real files --------------------------------------------------------------------------

FORMATS: tuple[str, ...] = ("labelled", "esconv", "cssrs")
_WRONG_FILE = (
    "not a labelled JSONL file (text, category, kind), an ESConv split file (a 'dialog' per line) or the "
    "C-SSRS Reddit CSV (User,Post,Label)"
)


def detect_format(path: str | Path) -> str:
    """``labelled``, ``esconv`` or ``cssrs``, from the file's first line (a ``.csv`` file is C-SSRS);
    anything else is a `UserError` naming the file."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: file not found")
    if not p.is_file():
        raise UserError(f"{p}: not a file")
    try:
        with p.open(encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip()), "")
    except UnicodeDecodeError:
        raise UserError(f"{p}: {_WRONG_FILE} (not UTF-8 text)") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read it ({e.strerror or e})") from None
    if not first:
        raise UserError(f"{p}: empty file (no messages)")
    header = [c.strip().strip('"').lower() for c in first.split(",")]
    if p.suffix.lower() == ".csv" or {"user", "post", "label"} <= set(header):
        return "cssrs"
    try:
        obj = json.loads(first)
    except ValueError:
        raise UserError(f"{p}: {_WRONG_FILE} (line 1 is not JSON)") from None
    if isinstance(obj, dict) and "dialog" in obj:
        return "esconv"
    if isinstance(obj, dict) and "text" in obj:
        return "labelled"
    raise UserError(f"{p}: {_WRONG_FILE} (line 1 has neither 'text' nor 'dialog')")


def esconv_messages(path: str | Path, context_turns: int = 2) -> list[Labelled]:
    """Every seeker turn of an ESConv split file as a ``none`` message of kind ``esconv``, with the
    seeker turns before it (at most ``context_turns``) as context."""
    from socialsim.safety.corpora import esconv_seeker_turns

    return [Labelled(t, "none", "esconv", tuple(c)) for t, c in esconv_seeker_turns(path, context_turns)]


def cssrs_messages(path: str | Path, split: str = "valid") -> list[Labelled]:
    """Every post of the C-SSRS Reddit CSV's users in ``split`` (``valid``: the users the learned stage
    never trained on; ``train``; ``all``) as a message: category ``suicide`` for users labelled
    Indicator, Ideation, Behavior or Attempt, ``none`` for Supportive users; kind ``cssrs:<Label>``."""
    from socialsim.safety.corpora import cssrs_split, read_cssrs

    if split not in CSSRS_SPLITS:
        raise UserError(f"option --cssrs-split: {split!r} is not one of {', '.join(CSSRS_SPLITS)}")
    users = read_cssrs(path)
    which = cssrs_split(users)
    return [
        Labelled(post, "suicide" if u.label in CSSRS_RISK_LABELS else "none", f"cssrs:{u.label}")
        for u in users
        if split == "all" or which[u.user] == split
        for post in u.posts
        if post.strip()
    ]


def load_messages(path: str | Path, *, cssrs_split: str = "valid") -> tuple[str, list[Labelled]]:
    """(format, messages) of a labelled JSONL file, an ESConv split file or the C-SSRS CSV
    (`detect_format`); every problem is a `UserError` naming the file."""
    fmt = detect_format(path)
    if fmt == "esconv":
        rows = esconv_messages(path)
    elif fmt == "cssrs":
        rows = cssrs_messages(path, cssrs_split)
    else:
        rows = load_labelled(path)
    if not rows:
        raise UserError(
            f"{path}: no messages" + (f" of C-SSRS users in the {cssrs_split} split" if fmt == "cssrs" else "")
        )
    return fmt, rows


# -- measuring -----------------------------------------------------------------------------------


async def measure_layer(
    rows: list[Labelled],
    layer: SafetyLayer,
    *,
    name: str = "",
    concurrency: int = 4,
    on_done: Callable[[], None] | None = None,
) -> Report:
    """What a configured `SafetyLayer` (as `socialsim.safety.build` builds it for ``serve`` and
    ``chat``) does with labelled messages: each goes through `SafetyLayer.assess` with its context as
    earlier seeker turns, without writing the event log, and gets a tier. ``concurrency`` messages at
    a time (the LLM classifier's calls overlap; the learned stage runs in worker threads)."""
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
        [d.tier for d in decisions],
        [d.category if d.tier != "none" else "none" for d in decisions],
        [d.stage for d in decisions],
        [d.learned.score if d.learned is not None else None for d in decisions],
        ms_per_message=1000 * elapsed / len(rows) if rows else None,
        notes=notes,
        verdicts=[d.verdict.risk if d.verdict else ("error" if d.classifier_error else None) for d in decisions],
    )


def tier_at(tier: str, stage: str, score: float | None, check_in: float, protocol: float) -> str:
    """A message's tier had the learned stage's check-in threshold been ``check_in``: a message the
    learned stage decided (or that no stage raised) gets its tier from its score; one another stage
    decided keeps its tier."""
    if score is None or stage not in ("learned", "none"):
        return tier
    if score >= protocol:
        return "protocol"
    return "check_in" if score >= check_in else "none"


def tradeoff(
    reports: Sequence[Report],
    *,
    check_in_threshold: float,
    protocol_threshold: float,
    thresholds: Sequence[float] | None = None,
) -> list[dict[str, float]]:
    """Crisis recall per risk category (share reaching protocol or check-in) and the ``none`` messages'
    check-in and protocol rates, over the messages of ``reports`` together, had the learned stage's
    check-in threshold been t, for each t (default 0.05, 0.10, ... up to the protocol threshold, and the
    two thresholds in use); the protocol threshold stays. With ``none`` messages of several kinds, their
    rates per kind too (``none_check_in_rate:<kind>``, ``none_protocol_rate:<kind>``). From the measured
    decisions (`tier_at`): at the threshold in use the figures are the reports' own."""
    pts = thresholds or [round(0.05 * k, 2) for k in range(1, 20)]
    ts = sorted({*(t for t in pts if t <= protocol_threshold), check_in_threshold, protocol_threshold})
    msgs = [
        (
            r.rows[i].category,
            r.rows[i].kind,
            r.tiers[i],
            r.stages[i] if r.stages else "none",
            r.scores[i] if r.scores else None,
        )
        for r in reports
        for i in range(len(r.rows))
    ]
    none_kinds = sorted({kind for cat, kind, *_ in msgs if cat == "none"})
    out = []
    for t in ts:
        tiers = [(cat, kind, tier_at(tier, st, sc, t, protocol_threshold)) for cat, kind, tier, st, sc in msgs]
        point: dict[str, float] = {"check_in_threshold": float(t)}
        for c in RISK_CATEGORIES:
            got = [x for cat, _, x in tiers if cat == c]
            if got:
                point[c] = (len(got) - got.count("none")) / len(got)
        for kind in [None, *none_kinds] if len(none_kinds) > 1 else [None]:
            none = [x for cat, k, x in tiers if cat == "none" and kind in (None, k)]
            if none:
                suffix = f":{kind}" if kind else ""
                point["none_protocol_rate" + suffix] = none.count("protocol") / len(none)
                point["none_check_in_rate" + suffix] = none.count("check_in") / len(none)
        out.append(point)
    return out


def plot_tradeoff(
    points: list[dict[str, float]],
    path: str | Path,
    *,
    check_in_threshold: float,
    protocol_threshold: float,
    title: str = "",
    recall_target: float = 0.90,
    check_in_target: float = 0.05,
    protocol_target: float = 0.005,
) -> Path:
    """A PNG of `tradeoff`: crisis recall (protocol or check-in) per risk category and the ``none``
    messages' check-in and protocol rates (per kind when there are two to four kinds, e.g. ESConv turns
    and C-SSRS Supportive posts) against the check-in threshold, with both thresholds in use and the
    issue's targets marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib, from the [eval] extra: pip install -e '.[eval]'") from None
    ts = [p["check_in_threshold"] for p in points]
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for key, style in (("suicide", "-o"), ("self_harm", "-s"), ("harm_to_others", "-^")):
        if all(key in p for p in points):
            ax.plot(ts, [p[key] for p in points], style, ms=3, label=f"recall: {key.replace('_', ' ')}")
    kinds = [k.split(":", 1)[1] for k in points[0] if k.startswith("none_check_in_rate:")] if points else []
    if not 1 < len(kinds) <= 4:  # many kinds of hard negative: their rates pooled
        kinds = [""] if all("none_check_in_rate" in p for p in points) else []
    for kind, marker in zip(kinds, "xd*v", strict=False):
        key = f":{kind}" if kind else ""
        name = f"none ({kind})" if kind else "none"
        ax.plot(ts, [p["none_check_in_rate" + key] for p in points], "-" + marker, color="purple", ms=4,
                label=f"{name}: check-in")  # fmt: skip
        ax.plot(ts, [p["none_protocol_rate" + key] for p in points], "--" + marker, color="crimson", ms=4,
                label=f"{name}: protocol")  # fmt: skip
    ax.axvline(
        check_in_threshold, color="grey", ls="--", lw=1, label=f"check-in threshold in use ({check_in_threshold:g})"
    )
    ax.axvline(protocol_threshold, color="black", ls="-.", lw=1, label=f"protocol threshold ({protocol_threshold:g})")
    ax.axhline(recall_target, color="green", ls=":", lw=1, label=f"recall target ({recall_target:.0%})")
    ax.axhline(check_in_target, color="purple", ls=":", lw=1, label=f"check-in target ({check_in_target:.0%})")
    ax.axhline(protocol_target, color="crimson", ls=":", lw=1, label=f"protocol target ({protocol_target:.1%})")
    ax.set_xlabel("learned-stage check-in threshold (protocol threshold and other stages unchanged)")
    ax.set_ylabel("share of messages")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "crisis safety: recall and ordinary messages by check-in threshold")
    ax.legend(fontsize=8, loc="center left")
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


TEST_SETS: tuple[str, ...] = ("heldout5", "heldout6")
"""The shipped test sets (never used to choose anything; see ``data/labelled/README.md``)."""


@dataclass
class SafetyEval:
    """What `safety_eval` measured: one report per input file and, with ``plot``, the check-in
    threshold trade-off over all files together."""

    config: str
    reports: list[Report]
    tradeoff: list[dict[str, float]] | None = None
    notes: list[str] = field(default_factory=list)
    """Lines about the layer as built (e.g. the learned stage off because it is not installed)."""

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"config": self.config, "reports": [r.as_dict() for r in self.reports]}
        if self.notes:
            d["notes"] = self.notes
        if self.tradeoff is not None:
            d["tradeoff"] = self.tradeoff
        return d


def safety_eval(
    paths: Sequence[str | Path] | None = None,
    *,
    learned: bool | None = None,
    check_in_threshold: float | None = None,
    protocol_threshold: float | None = None,
    classify: str | None = None,
    cssrs_split: str = "valid",
    llm: Any = None,
    llm_name: str = "",
    concurrency: int = 4,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    json_out: str | Path | None = None,
    plot: str | Path | None = None,
) -> SafetyEval:
    """Measure the safety layer exactly as ``serve`` and ``chat`` build it (`socialsim.safety.build`:
    the same defaults, options and stages; the LLM classifier on ``llm`` when ``classify`` is not off)
    on files of messages (`load_messages`: labelled JSONL, an ESConv split file, the C-SSRS CSV;
    default: `TEST_SETS`), one `Report` per file (`measure_layer`). Every file is read and checked, and
    the outputs are checked to be new, before any model loads. ``json_out``: write `SafetyEval.as_dict`
    there; ``plot``: a PNG of the check-in threshold trade-off (`tradeoff`, `plot_tradeoff`).
    ``on_start(total messages)``, ``on_done()`` report progress, ``on_note(line)`` a note about the layer
    (default: stderr). ``llm`` is closed at the end."""
    from socialsim.io import atomic_write_text
    from socialsim.safety.build import DEFAULT_CLASSIFY, LayerOptions, build_layer, describe_layer, load_learned

    options = LayerOptions(
        learned=learned,
        check_in_threshold=check_in_threshold,
        protocol_threshold=protocol_threshold,
        classify=classify or DEFAULT_CLASSIFY,
    )
    options.check()
    if options.classify != "off" and llm is None:
        raise ValueError("safety_eval: classify needs an llm")
    if plot is not None and learned is False:
        raise UserError(
            "option --plot: the trade-off is over the learned stage's check-in threshold; drop --no-learned"
        )
    for out, opt in ((json_out, "--json"), (plot, "--plot")):
        if out is not None and Path(out).exists():
            raise UserError(f"{out}: already exists; choose another {opt} (nothing was measured)")
    files = [Path(p) for p in paths] if paths else [labelled_path(n) for n in TEST_SETS]
    sets = []
    for p in files:
        fmt, rows = load_messages(p, cssrs_split=cssrs_split)
        sets.append((f"{p.name} ({cssrs_split} users)" if fmt == "cssrs" and cssrs_split != "all" else p.name, rows))
    notes: list[str] = []

    def note(line: str) -> None:
        notes.append(line)
        (on_note or (lambda x: print(x, file=sys.stderr, flush=True)))(line)

    stage = load_learned(options, note=note)
    if plot is not None and stage is None:
        raise UserError(
            "option --plot: the trade-off is over the learned stage's check-in threshold, which is not installed"
        )
    if stage is not None:
        stage.warm()
    layer = build_layer(options, learned=stage, llm=llm)
    config = describe_layer(layer, llm_name or "llm")
    if on_start is not None:
        on_start(sum(len(rows) for _, rows in sets))

    async def run_all() -> list[Report]:
        try:
            return [
                await measure_layer(rows, layer, name=f"{name}: {config}", concurrency=concurrency, on_done=on_done)
                for name, rows in sets
            ]
        finally:
            if llm is not None:  # its HTTP session belongs to this event loop
                await llm.aclose()

    result = SafetyEval(config, asyncio.run(run_all()), notes=notes)
    if stage is not None and plot is not None:
        result.tradeoff = tradeoff(
            result.reports, check_in_threshold=stage.check_in_threshold, protocol_threshold=stage.protocol_threshold
        )
        plot_tradeoff(
            result.tradeoff,
            plot,
            check_in_threshold=stage.check_in_threshold,
            protocol_threshold=stage.protocol_threshold,
            title=" + ".join(p.name for p in files),
        )
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
    """Tiers without an LLM stage, in one batch, as `SafetyLayer` decides a first message: ``protocol`` for a
    rules ``high`` hit or a learned score at or above the protocol threshold, ``check_in`` for a learned
    score at or above the check-in threshold (without a learned stage: for an ambiguous rule hit), else
    ``none`` (either stage may be None to measure the other alone)."""
    if rules is None and learned is None:
        raise ValueError("evaluate needs the rules, the learned stage or both")
    n = len(rows)
    # as in the safety layer: with a learned stage, distanced rule hits are ambiguous (not routed by the rules)
    rule_res = [rules.check(r.text, distance=learned is not None) for r in rows] if rules is not None else [None] * n
    scores = learned.score_many([(r.text, r.context) for r in rows]) if learned is not None else [None] * n
    tiers, predicted, stages = [], [], []
    for res, sc in zip(rule_res, scores, strict=True):
        if res is not None and res.level == "high":
            tiers.append("protocol")
            predicted.append(res.category)
            stages.append("rules")
        elif sc is not None and sc.tier != "none":
            tiers.append(sc.tier)
            predicted.append(sc.category)
            stages.append("learned")
        elif sc is None and res is not None and res.level == "ambiguous":  # as the layer without a learned stage
            tiers.append("check_in")
            predicted.append(res.category)
            stages.append("rules")
        else:
            tiers.append("none")
            predicted.append("none")
            stages.append("none")
    return Report(name, rows, tiers, predicted, stages, [sc.score if sc is not None else None for sc in scores])
