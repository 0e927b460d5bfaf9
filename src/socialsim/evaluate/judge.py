"""The LLM judge: pointwise 1–5 scores and order-swapped pairwise comparisons of dialogues.

- Any `socialsim.llm.LLM` judges (embedded model or any OpenAI-compatible server). Verdicts are
  asked for with `generate_structured`, so they are constrained by the rubric's JSON schema where
  the backend can, parsed into the rubric's pydantic model, repaired, and retried with a new seed
  (and a slightly higher temperature) up to ``attempts`` times. A verdict that stays unparseable
  is kept in the results with its error and last raw output, never dropped.
- Pairwise: each pair (a, b) is judged twice, with a shown as A and then with a shown as B, so a
  judge that prefers a position cannot decide the outcome. Per dimension, a wins (or loses) only
  when both orders agree; agreeing ties are ties, and disagreeing verdicts count as ties (and as
  inconsistent, a measure of the judge's position bias).
- All calls go out together (``asyncio.gather``) and the LLM's semaphore bounds how many are in
  flight; identical calls come from the LLM's cache. Seeds derive from the dialogue ids, so a
  rerun with the cache answers instantly.
- Long dialogues are cut in the middle to ``transcript_chars`` characters each (beginning and end
  kept), so they fit the judge's context.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from socialsim.agents.common import derive_seed
from socialsim.errors import BackendError, RetriesExhausted, StructuredOutputError
from socialsim.evaluate.rubrics import dimensions, pairwise_model, rubric_model
from socialsim.llm.base import ChatRequest
from socialsim.llm.structured import generate_structured, grammar_schema
from socialsim.schema import Dialogue
from socialsim.templating import PromptSet

OUTCOMES = ("win", "tie", "loss")


class JudgePrompts(PromptSet):
    """The judge's Jinja2 templates (``evaluate/templates``); files in `override_dir` replace them by name."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        super().__init__("socialsim.evaluate", (), override_dir)


def transcript(d: Dialogue, max_chars: int = 4000, *, show_strategies: bool = False) -> str:
    """``Seeker: ...`` / ``Supporter: ...`` lines; when longer than `max_chars`, whole utterances
    are kept from the beginning and the end and the middle is replaced by a marker."""
    lines = []
    for t in d.turns:
        who = "Seeker" if t.speaker == "seeker" else "Supporter"
        tag = f" [{t.strategy.value}]" if show_strategies and t.strategy is not None else ""
        lines.append(f"{who}{tag}: {' '.join(t.text.split())}")
    if sum(len(x) + 1 for x in lines) <= max_chars:
        return "\n".join(lines)
    budget = max(200, max_chars - 60) // 2
    head: list[str] = []
    used = 0
    for x in lines:
        if used + len(x) + 1 > budget:
            break
        head.append(x)
        used += len(x) + 1
    tail: list[str] = []
    used = 0
    for x in reversed(lines[len(head) :]):
        if used + len(x) + 1 > budget:
            break
        tail.insert(0, x)
        used += len(x) + 1
    if not head and not tail:  # one huge utterance: cut it
        return lines[0][: max_chars - 20] + " [...]"
    omitted = len(lines) - len(head) - len(tail)
    return "\n".join([*head, f"[... {omitted} utterances omitted ...]", *tail])


def combine(first: str, second: str) -> tuple[str, bool]:
    """Combine one dimension's two verdicts into a's outcome.

    `first` is the winner label ("A", "B", "tie") when a was shown as A; `second` the label when
    a was shown as B. Returns (outcome for a: "win", "tie" or "loss"; whether the orders agreed).
    """
    unswapped = {"A": "B", "B": "A", "tie": "tie"}[second]
    if first == unswapped:
        return {"A": "win", "B": "loss", "tie": "tie"}[first], True
    return "tie", False


@dataclass
class PointwiseResult:
    corpus: str
    dialogue_id: str
    rubric: str
    scores: dict[str, int] | None = None
    reasons: dict[str, str] | None = None
    error: str | None = None
    raw: str | None = None
    calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "pointwise", **asdict(self)}


@dataclass
class PairwiseResult:
    rubric: str
    a_corpus: str
    a_id: str
    b_corpus: str
    b_id: str
    #: winner labels as the judge gave them, with a shown as A
    first: dict[str, str] | None = None
    #: winner labels as the judge gave them, with a shown as B (so "A" there means b)
    second: dict[str, str] | None = None
    #: per dimension, a's outcome: win, tie or loss (None when a verdict failed)
    outcome: dict[str, str] | None = None
    consistent: dict[str, bool] | None = None
    reasons: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    raw: str | None = None
    calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "pairwise", **asdict(self)}


@dataclass
class JudgeResults:
    rubric: str
    pointwise: list[PointwiseResult] = field(default_factory=list)
    pairwise: list[PairwiseResult] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def failures(self) -> int:
        return sum(1 for r in self.pointwise if r.error) + sum(1 for r in self.pairwise if r.error)


class Judge:
    """Scores dialogues on a rubric (``esconv`` or ``esc-eval``) with any LLM."""

    def __init__(
        self,
        llm: Any,
        rubric: str = "esconv",
        *,
        prompts_dir: str | Path | None = None,
        temperature: float = 0.0,
        max_tokens: int = 768,
        attempts: int = 3,
        transcript_chars: int = 4000,
        reason_chars: int = 160,
        seed: int = 0,
        show_strategies: bool = False,
    ) -> None:
        self.llm = llm
        self.rubric_name = rubric
        self.rubric = rubric_model(rubric)
        self.pair_model = pairwise_model(self.rubric)
        self.dimensions = dimensions(self.rubric)
        self.prompts = JudgePrompts(prompts_dir)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.attempts = attempts
        self.transcript_chars = transcript_chars
        self.reason_chars = reason_chars
        self.seed = seed
        self.show_strategies = show_strategies

    # -- prompts --------------------------------------------------------------------------------
    def _transcript(self, d: Dialogue) -> str:
        return transcript(d, self.transcript_chars, show_strategies=self.show_strategies)

    def pointwise_messages(self, d: Dialogue) -> list[dict[str, str]]:
        user = self.prompts.render("judge_pointwise.j2", transcript=self._transcript(d), dimensions=self.dimensions)
        return [
            {"role": "system", "content": self.prompts.render("judge_system.j2")},
            {"role": "user", "content": user},
        ]

    def pairwise_messages(self, a: Dialogue, b: Dialogue) -> list[dict[str, str]]:
        user = self.prompts.render(
            "judge_pairwise.j2",
            transcript_a=self._transcript(a),
            transcript_b=self._transcript(b),
            dimensions=self.dimensions,
        )
        return [
            {"role": "system", "content": self.prompts.render("judge_system.j2")},
            {"role": "user", "content": user},
        ]

    def _request(self, messages: list[dict[str, str]], model: type[BaseModel], *seed_parts: object) -> ChatRequest:
        return ChatRequest.of(
            messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=derive_seed(self.seed, "judge", self.rubric_name, *seed_parts),
            json_schema=grammar_schema(model, max_string=self.reason_chars),
        )

    # -- one judgement --------------------------------------------------------------------------
    async def score(self, corpus: str, d: Dialogue) -> PointwiseResult:
        """Pointwise 1–5 scores of one dialogue; a verdict that stays unparseable is returned with its error."""
        req = self._request(self.pointwise_messages(d), self.rubric, "pointwise", d.id)
        res = PointwiseResult(corpus=corpus, dialogue_id=d.id, rubric=self.rubric_name)
        try:
            verdict, completions = await generate_structured(self.llm, req, self.rubric, attempts=self.attempts)
        except StructuredOutputError as e:
            res.error, res.raw, res.calls = str(e), e.raw, self.attempts
            return res
        except BackendError as e:
            if isinstance(e, RetriesExhausted):
                raise
            res.error = f"backend: {e}"
            return res
        dump = verdict.model_dump()
        res.scores = {k: int(v["score"]) for k, v in dump.items()}
        res.reasons = {k: str(v["reason"]) for k, v in dump.items()}
        res.calls = len(completions)
        return res

    async def _verdict(
        self, a: Dialogue, b: Dialogue, order: str
    ) -> tuple[dict[str, Any] | None, str | None, str, int]:
        req = self._request(self.pairwise_messages(a, b), self.pair_model, "pairwise", a.id, b.id, order)
        try:
            verdict, completions = await generate_structured(self.llm, req, self.pair_model, attempts=self.attempts)
        except StructuredOutputError as e:
            return None, f"order {order}: {e}", e.raw, self.attempts
        except BackendError as e:
            if isinstance(e, RetriesExhausted):
                raise
            return None, f"order {order}: backend: {e}", "", 0
        return verdict.model_dump(), None, "", len(completions)

    async def compare(
        self,
        a_corpus: str,
        a: Dialogue,
        b_corpus: str,
        b: Dialogue,
        *,
        on_call: Callable[[], None] | None = None,
    ) -> PairwiseResult:
        """Judge a against b in both orders and combine the verdicts per dimension."""

        async def one(x: Dialogue, y: Dialogue, order: str) -> tuple[dict[str, Any] | None, str | None, str, int]:
            out = await self._verdict(x, y, order)
            if on_call is not None:
                on_call()
            return out

        (v1, e1, raw1, c1), (v2, e2, raw2, c2) = await asyncio.gather(one(a, b, "ab"), one(b, a, "ba"))
        res = PairwiseResult(
            rubric=self.rubric_name, a_corpus=a_corpus, a_id=a.id, b_corpus=b_corpus, b_id=b.id, calls=c1 + c2
        )
        if v1 is not None:
            res.first = {k: v["winner"] for k, v in v1.items()}
        if v2 is not None:
            res.second = {k: v["winner"] for k, v in v2.items()}
        if v1 is None or v2 is None:
            res.error = "; ".join(e for e in (e1, e2) if e)
            res.raw = raw1 or raw2
            return res
        res.outcome, res.consistent = {}, {}
        for dim in self.dimensions:
            name = dim["name"]
            res.outcome[name], res.consistent[name] = combine(v1[name]["winner"], v2[name]["winner"])
            res.reasons[name] = [str(v1[name]["reason"]), str(v2[name]["reason"])]
        return res

    # -- many -----------------------------------------------------------------------------------
    async def run(
        self,
        items: Sequence[tuple[str, Dialogue]] = (),
        pairs: Sequence[tuple[tuple[str, Dialogue], tuple[str, Dialogue]]] = (),
        *,
        on_call: Callable[[], None] | None = None,
    ) -> JudgeResults:
        """Score `items` (corpus name, dialogue) and compare `pairs` ((name, a), (name, b)), all
        calls at once under the LLM's concurrency limit. `on_call` runs after each judge call."""

        async def scored(c: str, d: Dialogue) -> PointwiseResult:
            r = await self.score(c, d)
            if on_call is not None:
                on_call()
            return r

        point_tasks = [scored(c, d) for c, d in items]
        pair_tasks = [self.compare(ca, a, cb, b, on_call=on_call) for (ca, a), (cb, b) in pairs]
        results = await asyncio.gather(*point_tasks, *pair_tasks)
        out = JudgeResults(rubric=self.rubric_name)
        out.pointwise = [r for r in results if isinstance(r, PointwiseResult)]
        out.pairwise = [r for r in results if isinstance(r, PairwiseResult)]
        stats = getattr(self.llm, "stats", None)
        if stats is not None and hasattr(stats, "as_dict"):
            out.stats = stats.as_dict()
        return out


def run_judge(
    judge: Judge,
    items: Sequence[tuple[str, Dialogue]] = (),
    pairs: Sequence[tuple[tuple[str, Dialogue], tuple[str, Dialogue]]] = (),
    *,
    progress: bool = True,
    console: Any = None,
) -> JudgeResults:
    """Run `Judge.run` in a fresh event loop with a rich progress bar (on `console`, stderr by default)."""
    total = len(items) + 2 * len(pairs)

    async def main() -> JudgeResults:
        try:
            if not progress or total == 0:
                return await judge.run(items, pairs)
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(
                TextColumn(f"[bold]judging ({judge.rubric_name})"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=console or Console(stderr=True),
            )
            with bar:
                task = bar.add_task("judge", total=total, info="")

                def tick() -> None:
                    s = getattr(judge.llm, "stats", None)
                    info = f"calls {s.calls} · cached {s.cached}" if s is not None else ""
                    bar.update(task, advance=1, info=info)

                return await judge.run(items, pairs, on_call=tick)
        finally:
            await judge.llm.backend.aclose()

    results = asyncio.run(main())
    every = [*results.pointwise, *results.pairwise]
    if every and all(r.error for r in every):
        backend_errors = [r.error for r in every if r.error and "backend: " in r.error]
        if backend_errors:  # nothing was judged because the backend refuses: say so once
            raise BackendError(f"the judge backend refused every request: {backend_errors[0].split('backend: ', 1)[1]}")
    return results


# -- pairing and summaries ----------------------------------------------------------------------


def make_pairs(
    a: Sequence[tuple[Dialogue, str | None]],
    b: Sequence[tuple[Dialogue, str | None]],
    n: int,
    seed: int = 0,
) -> list[tuple[int, int]]:
    """Up to `n` (index in a, index in b) pairs: a seeded sample of a, each matched with an unused
    dialogue of b with the same problem type when there is one, else any unused one."""
    rng = random.Random(seed)
    order_a = list(range(len(a)))
    rng.shuffle(order_a)
    pool = list(range(len(b)))
    rng.shuffle(pool)
    pairs = []
    for i in order_a[:n]:
        if not pool:
            break
        problem = a[i][1]
        j = next((k for k in pool if problem is not None and b[k][1] == problem), pool[0])
        pool.remove(j)
        pairs.append((i, j))
    return pairs


def pointwise_summary(results: Sequence[PointwiseResult]) -> dict[str, dict[str, Any]]:
    """Per corpus: judged, failed, and per dimension the mean score and the counts of 1..5."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        s = out.setdefault(r.corpus, {"judged": 0, "failed": 0, "dimensions": {}})
        s["judged"] += 1
        if r.scores is None:
            s["failed"] += 1
            continue
        for dim, v in r.scores.items():
            d = s["dimensions"].setdefault(dim, {"counts": [0] * 5, "mean": 0.0, "n": 0})
            d["counts"][v - 1] += 1
            d["n"] += 1
    for s in out.values():
        for d in s["dimensions"].values():
            d["mean"] = sum((i + 1) * c for i, c in enumerate(d["counts"])) / d["n"] if d["n"] else 0.0
    return out


def pairwise_summary(results: Sequence[PairwiseResult]) -> dict[str, Any]:
    """Per dimension: a's win/tie/loss counts, how many verdict pairs disagreed, and failed pairs."""
    dims: dict[str, Counter[str]] = {}
    failed = 0
    label = ""
    for r in results:
        label = label or f"{r.a_corpus} vs {r.b_corpus}"
        if r.outcome is None:
            failed += 1
            continue
        for dim, o in r.outcome.items():
            c = dims.setdefault(dim, Counter())
            c[o] += 1
            if not (r.consistent or {}).get(dim, True):
                c["inconsistent"] += 1
    return {
        "pairs": len(results),
        "failed": failed,
        "label": label,
        "dimensions": {
            k: {"win": c["win"], "tie": c["tie"], "loss": c["loss"], "inconsistent": c["inconsistent"]}
            for k, c in dims.items()
        },
    }
