"""Keep the dialogues of a corpus that pass thresholds; every dropped one is written with its reasons.

Thresholds (all optional, all must pass):

- ``min_turns`` / ``max_turns``: supporter turns in the dialogue (the unit of ``simulate --max-turns``);
- ``drop_failed``: drop dialogues with ``status: failed``;
- ``min_strategies``: distinct ESConv strategies among the supporter turns;
- ``min_disclosure``: deepest layer the seeker reached (0 surface, 1 context, 2 core), for dialogues
  that record it (a dialogue without disclosure layers fails this check);
- ``max_role_fallbacks``: seeker turns whose line is a fixed fallback (`Turn.role_fallback`; in runs made before
  #26, the persona card's own words);
- ``drop_seeker_slipped``: drop dialogues whose seeker slipped on more than half of its turns
  (`Dialogue.seeker_slipped`: kept slips and fallback lines, read from the turns, so older runs are judged too);
- ``strategy_agreement``: ``dialogues`` drops a dialogue with any supporter turn whose realized strategy
  differs from the declared one, or with none labelled; ``turns`` keeps the dialogue but removes those
  supporter turns (their seeker neighbours stay, as consecutive turns). The realized strategy is what the
  turns store; `label_realized` first labels every reply with the strategy recognizer (the ``filter``
  command's default) or the LLM classifier;
- ``min_scores``: judge scores per dimension (``overall=4``); ``mean`` is the mean of all
  dimensions. Needs judgements (``evaluate --judge`` writes ``judgements.jsonl``); a dialogue
  without a usable judgement fails with the judge's error as its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.evaluate.readers import Corpus
from socialsim.evaluate.rubrics import RUBRICS, dimensions
from socialsim.io import iter_jsonl, write_jsonl_records
from socialsim.schema import Dialogue, write_jsonl

LABELLERS = ("recognizer", "llm", "stored")
"""Who makes the realized strategies `--strategy-agreement` compares (`label_realized`)."""


def label_realized(corpus: Corpus, labeller: str, llm: Any = None, *, seed: int = 0) -> Corpus:
    """The corpus with every supporter reply's realized strategy made by ``labeller``: 'recognizer' (the strategy
    recognizer, reply and context, with ``realized_probs``), 'llm' (the LLM classifier on ``llm``; a reply it cannot
    label keeps its stored label) or 'stored' (the labels the turns already hold, e.g. simulate's). Raises
    `UserError` for another labeller or a missing recognizer model."""
    if labeller not in LABELLERS:
        raise UserError(f"option --strategy-labeller: {labeller!r} is not one of {', '.join(LABELLERS)}")
    if labeller == "stored":
        return corpus
    if labeller == "recognizer":
        from socialsim.evaluate.strategy_agreement import relabel_recognized

        dialogues, _ = relabel_recognized(corpus.dialogues)
    else:
        from socialsim.evaluate.strategy_agreement import relabel_realized

        if llm is None:
            raise UserError("option --strategy-labeller llm: needs a model (--backend, --model)")
        dialogues, _ = relabel_realized(llm, corpus.dialogues, seed=seed)
    return replace(corpus, dialogues=dialogues)


def known_dimensions() -> set[str]:
    return {d["name"] for r in RUBRICS.values() for d in dimensions(r)} | {"mean"}


@dataclass
class Thresholds:
    min_turns: int | None = None
    max_turns: int | None = None
    drop_failed: bool = True
    min_strategies: int | None = None
    min_disclosure: int | None = None
    max_role_fallbacks: int | None = None
    drop_seeker_slipped: bool = False
    strategy_agreement: str | None = None
    """None, "turns" or "dialogues" (see the module docstring)."""
    min_scores: dict[str, float] = field(default_factory=dict)


def parse_min_scores(specs: list[str]) -> dict[str, float]:
    """``["overall=4", "empathy=3.5"]`` → ``{"overall": 4.0, "empathy": 3.5}``; raises `UserError`."""
    out: dict[str, float] = {}
    valid = known_dimensions()
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep:
            raise UserError(f"option --min-score: expected DIMENSION=VALUE such as overall=4, got {spec!r}")
        if name not in valid:
            raise UserError(f"option --min-score: unknown dimension {name!r} (one of: {', '.join(sorted(valid))})")
        try:
            v = float(value)
        except ValueError:
            raise UserError(f"option --min-score: {spec!r}: the value must be a number from 1 to 5") from None
        if not 1 <= v <= 5:
            raise UserError(f"option --min-score: {spec!r}: the value must be a number from 1 to 5")
        out[name] = v
    return out


def load_judgements(path: str | Path) -> dict[str, dict[str, Any]]:
    """Pointwise judgements from ``judgements.jsonl`` (written by ``evaluate --judge``), by dialogue id."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such judgements file (evaluate --judge --report DIR writes DIR/judgements.jsonl)")
    out: dict[str, dict[str, Any]] = {}
    for lineno, obj in iter_jsonl(path):
        if obj.get("kind", "pointwise") != "pointwise":
            continue
        if not isinstance(obj.get("dialogue_id"), str):
            raise UserError(f"{path}:{lineno}: field 'dialogue_id': required field is missing")
        scores = obj.get("scores")
        if scores is not None and not (
            isinstance(scores, dict) and all(isinstance(v, int | float) for v in scores.values())
        ):
            raise UserError(f"{path}:{lineno}: field 'scores': expected an object of numbers")
        out[obj["dialogue_id"]] = obj
    return out


def reject_reasons(d: Dialogue, th: Thresholds, judgement: dict[str, Any] | None = None) -> list[str]:
    """Why `d` fails `th` (empty: keep it)."""
    reasons: list[str] = []
    support = [t for t in d.turns if t.speaker == "supporter"]
    if th.drop_failed and d.status == "failed":
        reasons.append(f"status failed ({d.failure_reason or 'no reason given'})")
    if th.min_turns is not None and len(support) < th.min_turns:
        reasons.append(f"{len(support)} supporter turns < --min-turns {th.min_turns}")
    if th.max_turns is not None and len(support) > th.max_turns:
        reasons.append(f"{len(support)} supporter turns > --max-turns {th.max_turns}")
    if th.min_strategies is not None:
        n = len({t.strategy for t in support if t.strategy is not None})
        if n < th.min_strategies:
            reasons.append(f"{n} distinct strategies < --min-strategies {th.min_strategies}")
    if th.min_disclosure is not None:
        if not any(t.disclosure_layer is not None for t in d.turns):
            reasons.append("no disclosure layers recorded (--min-disclosure needs simulated dialogues)")
        elif d.max_disclosure < th.min_disclosure:
            reasons.append(f"disclosure layer {d.max_disclosure} < --min-disclosure {th.min_disclosure}")
    if th.max_role_fallbacks is not None:
        n = sum(1 for t in d.turns if t.role_fallback)
        if n > th.max_role_fallbacks:
            reasons.append(f"{n} role fallbacks > --max-role-fallbacks {th.max_role_fallbacks}")
    if th.drop_seeker_slipped and d.seeker_slipped:
        n = sum(1 for t in d.turns if t.speaker == "seeker")
        reasons.append(f"seeker slipped on {d.seeker_slips} of {n} turns (--drop-seeker-slipped)")
    if th.strategy_agreement == "dialogues":
        labelled = [t for t in support if t.realized_strategy is not None and t.strategy is not None]
        if not any(t.realized_strategy is not None for t in support):
            reasons.append("no realized strategies recorded (--strategy-agreement: label them with "
                           "--strategy-labeller recognizer or llm)")
        elif not labelled:
            reasons.append("no declared strategies to compare the realized ones with (--strategy-agreement)")
        else:
            n = sum(1 for t in labelled if t.realized_strategy != t.strategy)
            if n:
                reasons.append(f"{n} supporter turns with a realized strategy other than the declared one "
                               "(--strategy-agreement dialogues)")
    if th.min_scores:
        scores = (judgement or {}).get("scores")
        if not scores:
            why = (judgement or {}).get("error") or "not judged"
            reasons.append(f"no judge scores ({why})")
        else:
            for dim, minimum in th.min_scores.items():
                value = sum(scores.values()) / len(scores) if dim == "mean" else scores.get(dim)
                if value is None:
                    reasons.append(f"judge score '{dim}' missing (scored: {', '.join(scores)})")
                elif value < minimum:
                    reasons.append(f"judge {dim} {value:g} < --min-score {dim}={minimum:g}")
    return reasons


@dataclass
class FilterResult:
    kept: list[Dialogue]
    rejects: list[dict[str, Any]]

    def reason_counts(self) -> Counter[str]:
        c: Counter[str] = Counter()
        for r in self.rejects:
            for reason in r["reasons"]:
                c[reason.split(" (")[0] if reason.startswith(("status", "no judge")) else _kind(reason)] += 1
        return c


def _kind(reason: str) -> str:
    for word in ("--min-turns", "--max-turns", "--min-strategies", "--min-disclosure", "--max-role-fallbacks",
                 "--drop-seeker-slipped", "--strategy-agreement"):
        if word in reason:
            return word
    if reason.startswith("judge "):
        return "--min-score " + reason.split()[1]
    return reason


def disagreeing(t: Any) -> bool:
    """A supporter turn whose realized strategy was labelled and differs from the declared one."""
    return t.speaker == "supporter" and t.realized_strategy is not None and t.realized_strategy != t.strategy


def filter_corpus(corpus: Corpus, th: Thresholds, judgements: dict[str, dict[str, Any]] | None = None) -> FilterResult:
    if th.strategy_agreement not in (None, "turns", "dialogues"):
        raise UserError(f"option --strategy-agreement: {th.strategy_agreement!r}: use 'turns' or 'dialogues'")
    if th.min_scores and judgements is None:
        raise UserError("--min-score needs judge scores: give --judgements FILE (from evaluate --judge) or --judge")
    kept: list[Dialogue] = []
    rejects: list[dict[str, Any]] = []
    for i, d in enumerate(corpus.dialogues):
        if th.strategy_agreement == "turns":
            d = d.model_copy(update={"turns": [t for t in d.turns if not disagreeing(t)]})
        reasons = reject_reasons(d, th, (judgements or {}).get(d.id))
        if reasons:
            rejects.append({"index": i, "id": d.id, "source": corpus.meta[i].source, "reasons": reasons})
        else:
            kept.append(d)
    return FilterResult(kept=kept, rejects=rejects)


def write_filtered(result: FilterResult, out: str | Path, rejects_path: str | Path | None = None) -> tuple[Path, Path]:
    """Write the kept dialogues (JSONL) and the rejects (JSONL: index, id, source, reasons)."""
    out = Path(out)
    rej = Path(rejects_path) if rejects_path else out.with_name(out.stem + ".rejects.jsonl")
    for p in (out, rej):
        if not p.parent.is_dir():
            raise UserError(f"{p.parent}: no such folder for {p.name}")
    write_jsonl(result.kept, out)
    write_jsonl_records(rej, result.rejects)
    return out, rej
