"""Evaluate a supporter chatbot (any backend, or a model trained with `socialsim train`).

(a) Response metrics: the chatbot answers ESConv-format test contexts; its replies are scored
    against the references (`socialsim.evaluate.response_metrics`).
(b) Interactive evaluation: the chatbot plays the supporter against simulated seekers from a
    held-out persona set; the judge scores the dialogues; several chatbots side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from socialsim.agents.common import derive_seed
from socialsim.agents.plain import PlainSupporter
from socialsim.agents.prompts import Prompts
from socialsim.agents.supporter import Supporter
from socialsim.errors import StructuredOutputError
from socialsim.io import write_jsonl_records
from socialsim.llm.client import LLM
from socialsim.schema import Dialogue, Persona

Mode = Literal["plain", "pipeline"]


def make_supporter(llm: LLM, mode: Mode, seed: int) -> Any:
    """``plain``: the model replies directly (a trained chatbot); ``pipeline``: thought, then reply."""
    if mode == "plain":
        return PlainSupporter(llm, seed=seed)
    return Supporter(llm, Prompts(), seed=seed)


def _progress(total: int, label: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    return bar, bar.add_task(label, total=total)


def respond_to_contexts(
    llm: LLM, examples: Sequence[Any], *, mode: Mode = "plain", seed: int = 0, progress: bool = True
) -> list[dict[str, Any]]:
    """One reply per ESConv example (`readers.ResponseExample`): rows for a hypotheses JSONL,
    ``{"line", "response", "strategy", "reference"}``. A reply that stays empty is kept with an
    ``error`` and an empty response, never dropped."""
    bar, task = _progress(len(examples), "responding") if progress else (None, None)

    async def one(ex: Any) -> dict[str, Any]:
        sup = make_supporter(llm, mode, derive_seed(seed, "respond", ex.line))
        row: dict[str, Any] = {"line": ex.line, "reference": ex.reference}
        try:
            t = await sup.respond(list(ex.context), turn_index=len(ex.context))
            row.update(response=t.text, strategy=t.strategy.value if t.strategy else None)
        except StructuredOutputError as e:
            row.update(response="", strategy=None, error=str(e))
        if bar is not None:
            bar.update(task, advance=1)
        return row

    async def main() -> list[dict[str, Any]]:
        try:
            return list(await asyncio.gather(*(one(ex) for ex in examples)))
        finally:
            await llm.backend.aclose()

    if bar is None:
        return asyncio.run(main())
    with bar:
        return asyncio.run(main())


def realized_strategy_scores(
    rows: list[dict[str, Any]], examples: Sequence[Any], rec: Any = None
) -> dict[str, Any]:
    """The realized strategy of each reply (the strategy recognizer reads the reply and its ESConv context; ``rec``
    default `default_recognizer`) scored against ESConv's gold strategy of the same context (the reference
    response's tag): `label_scores` (accuracy, chance agreement, Cohen's kappa, macro-F1, per strategy, confusion
    with gold rows). Adds ``realized_strategy`` and ``realized_probs`` to each row with a reply; empty replies (a
    failed context) and contexts without a gold strategy are left out of the scores (``n`` says how many count)."""
    from socialsim.evaluate.strategy_agreement import label_scores

    if rec is None:
        from socialsim.recognize.strategy import default_recognizer

        rec = default_recognizer()
    todo = [(r, ex) for r, ex in zip(rows, examples, strict=True) if r.get("response", "").strip()]
    preds = rec.predict([r["response"] for r, _ in todo], [[(t.speaker, t.text) for t in ex.context] for _, ex in todo])
    pairs = []
    for (r, ex), p in zip(todo, preds, strict=True):
        r["realized_strategy"], r["realized_probs"] = p.strategy.value, p.as_json()
        if ex.strategy is not None:
            pairs.append((ex.strategy, p.strategy))
    return {
        **label_scores(pairs),
        "replies": len(rows),
        "recognizer": str(rec.path),
        "reference": "ESConv's gold strategy of each context's reference response",
    }


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    write_jsonl_records(path, rows)


@dataclass
class Contender:
    """A chatbot under test: a name, its LLM and how it is driven."""

    name: str
    llm: LLM
    mode: Mode = "plain"


def simulate_with(
    contender: Contender,
    seeker_llm: LLM,
    personas: Sequence[Persona],
    *,
    max_turns: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> list[Dialogue]:
    """The contender supports one simulated seeker per persona (the seeker is the same for every
    contender: same LLM, same seeds)."""
    from socialsim.simulate.dialogue import DialogueConfig, simulate_dialogue
    from socialsim.simulate.run import seeker_format_for

    # the seeker's prompt format a new run would take on the seeker's backend
    cfg = DialogueConfig(max_turns=max_turns, seeker_format=seeker_format_for(getattr(seeker_llm.backend, "kind", "")))

    bar, task = _progress(len(personas), f"dialogues with {contender.name}") if progress else (None, None)

    async def main() -> list[Dialogue]:
        out = []
        try:
            for i, p in enumerate(personas):  # one at a time: both sides may be in-process models
                s = derive_seed(seed, "interactive", i)
                d = await simulate_dialogue(
                    seeker_llm,
                    p,
                    seed=s,
                    dialogue_id=f"{contender.name}-{i:04d}",
                    config=cfg,
                    supporter=make_supporter(contender.llm, contender.mode, s),
                    supporter_llm=contender.llm,
                )
                out.append(d)
                if bar is not None:
                    bar.update(task, advance=1)
        finally:
            await contender.llm.backend.aclose()
            await seeker_llm.backend.aclose()
        return out

    if bar is None:
        return asyncio.run(main())
    with bar:
        return asyncio.run(main())


def dialogue_figures(ds: Sequence[Dialogue]) -> dict[str, Any]:
    sup = [t for d in ds for t in d.turns if t.speaker == "supporter"]
    depth = [d.max_disclosure for d in ds]
    return {
        "dialogues": len(ds),
        "failed": sum(d.status == "failed" for d in ds),
        "seeker_goodbye": sum(d.end_reason == "seeker_goodbye" for d in ds),
        "supporter_turns": len(sup),
        "words_per_reply": round(sum(len(t.text.split()) for t in sup) / max(1, len(sup)), 1),
        "strategies_tagged": round(sum(t.strategy is not None for t in sup) / max(1, len(sup)), 2),
        "mean_disclosure_depth": round(sum(depth) / max(1, len(depth)), 2),
    }


def interactive_eval(
    contenders: Sequence[Contender],
    seeker_llm: LLM,
    personas: Sequence[Persona],
    judge_llm: LLM | None,
    *,
    rubric: str = "esconv",
    max_turns: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Simulate and judge every contender on the same personas; returns a comparison per model
    (dialogue figures, judge means per dimension, judge failures) and the dialogues."""
    from socialsim.evaluate.judge import Judge, pointwise_summary, run_judge

    result: dict[str, Any] = {"rubric": rubric, "personas": [p.id for p in personas], "models": {}}
    dialogues: dict[str, list[Dialogue]] = {}
    for c in contenders:
        dialogues[c.name] = simulate_with(c, seeker_llm, personas, max_turns=max_turns, seed=seed, progress=progress)
        result["models"][c.name] = {"mode": c.mode, **dialogue_figures(dialogues[c.name])}
    if judge_llm is not None:
        judge = Judge(judge_llm, rubric)
        items = [(name, d) for name, ds in dialogues.items() for d in ds if d.status == "ok"]
        judged = run_judge(judge, items, progress=progress)
        summary = pointwise_summary(judged.pointwise)
        for name in dialogues:
            s = summary.get(name, {"judged": 0, "failed": 0, "dimensions": {}})
            result["models"][name]["judge_failed"] = s["failed"]
            result["models"][name]["judge"] = {k: round(v["mean"], 2) for k, v in s["dimensions"].items()}
        result["judgements"] = [r.as_dict() for r in judged.pointwise]
    result["dialogues"] = {k: [d.model_dump(mode="json") for d in v] for k, v in dialogues.items()}
    return result
