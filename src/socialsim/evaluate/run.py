"""One evaluation, start to end: read the corpora, measure them side by side, optionally judge a
seeded sample (pointwise, and order-swapped pairs with the reference), write the HTML + JSON report
and the judgements. The ``evaluate`` and ``filter`` commands are thin shells over this module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialsim.evaluate.judge import Judge, JudgeResults, make_pairs, run_judge
from socialsim.evaluate.metrics import CorpusMetrics, compare, sample_indices
from socialsim.evaluate.readers import Corpus, load_corpus
from socialsim.io import write_jsonl_records


def unique_names(corpora: Sequence[Corpus]) -> None:
    """Rename corpora in place so that no two share a name (``name (2)``, ``name (3)``...)."""
    seen: dict[str, int] = {}
    for c in corpora:
        if c.name in seen:
            seen[c.name] += 1
            c.name = f"{c.name} ({seen[c.name]})"
        else:
            seen[c.name] = 1


def default_report_dir(path: Path) -> Path:
    """Where a report goes when no folder is given: ``RUN/report``, or ``./<file stem>-report``."""
    if path.is_dir():
        return path / "report"
    return Path.cwd() / f"{path.stem}-report"


def judge_corpora(
    llm: Any,
    corpora: Sequence[Corpus],
    rubric: str,
    *,
    n: int,
    pairwise: bool,
    transcript_chars: int = 4000,
    seed: int = 0,
    progress: bool = True,
    console: Any = None,
) -> JudgeResults:
    """Judge a seeded sample of `n` dialogues per corpus; with `pairwise` (and a second corpus, the
    reference), also up to `n` problem-type-matched pairs of the first corpus with the second."""
    items = [(c.name, c.dialogues[i]) for c in corpora for i in sample_indices(len(c.dialogues), n, seed)]
    pairs = []
    if pairwise and len(corpora) > 1:
        a, b = corpora[0], corpora[1]
        keyed_a = [(d, m.problem_type) for d, m in zip(a.dialogues, a.meta, strict=True)]
        keyed_b = [(d, m.problem_type) for d, m in zip(b.dialogues, b.meta, strict=True)]
        for i, j in make_pairs(keyed_a, keyed_b, n, seed):
            pairs.append(((a.name, a.dialogues[i]), (b.name, b.dialogues[j])))
    judge = Judge(llm, rubric, transcript_chars=transcript_chars, seed=seed)
    return run_judge(judge, items, pairs, progress=progress, console=console)


def judge_every(
    llm: Any,
    corpus: Corpus,
    rubric: str,
    *,
    transcript_chars: int = 4000,
    seed: int = 0,
    progress: bool = True,
    console: Any = None,
) -> JudgeResults:
    """Judge every dialogue of `corpus` (pointwise), e.g. to filter by score."""
    judge = Judge(llm, rubric, transcript_chars=transcript_chars, seed=seed)
    return run_judge(judge, [(corpus.name, d) for d in corpus.dialogues], progress=progress, console=console)


def write_judgements(results: JudgeResults, path: Path) -> Path:
    """Every verdict (pointwise, then pairwise) as one JSON object a line."""
    write_jsonl_records(path, (r.as_dict() for r in [*results.pointwise, *results.pairwise]))
    return path


@dataclass
class Evaluation:
    """What `evaluate_corpora` produced; `judgements` is None when no judge ran."""

    corpora: list[Corpus]
    metrics: list[CorpusMetrics]
    results: JudgeResults | None
    report: dict[str, Path]
    judgements: Path | None
    recognized: dict[str, Any] | None = None
    """The strategy recognizer's figures (`socialsim.evaluate.recognized`), None when it did not run."""


def evaluate_corpora(
    path: Path,
    references: Sequence[Path] = (),
    *,
    llm: Any = None,
    diversity: str = "both",
    sample: int | None = 200,
    seed: int = 0,
    rubric: str = "esconv",
    judge_n: int = 10,
    pairwise: bool = True,
    judge_chars: int = 4000,
    samples: int = 2,
    report_dir: Path | None = None,
    settings: dict[str, Any] | None = None,
    on_metrics: Callable[[list[CorpusMetrics]], None] | None = None,
    on_judged: Callable[[JudgeResults], None] | None = None,
    progress: bool = True,
    console: Any = None,
    recognize: bool = True,
    recognizer: Any = None,
    on_recognized: Callable[[dict[str, Any]], None] | None = None,
) -> Evaluation:
    """Read `path` and the `references`, compare them (the first reference is the reference of the
    strategy JSD), judge with `llm` when one is given, and write ``report.html``, ``report.json``
    and ``judgements.jsonl`` into `report_dir` (default: `default_report_dir`). `on_metrics` sees the
    metrics as soon as they exist (before the judge's slow work), `on_judged` the verdicts.

    With `recognize` (default) every supporter reply of every corpus is labelled by one strategy recognizer
    (`recognizer`, default: `default_recognizer`; see `socialsim.evaluate.recognized`); `on_recognized` sees its
    figures (``{"recognizer": ..., "corpora": {name: ...}}``)."""
    from socialsim.evaluate.report import build_report, write_report

    refs = list(references)
    corpora = [load_corpus(path)] + [load_corpus(r) for r in refs]
    unique_names(corpora)
    if recognize and recognizer is None:  # a missing or broken model fails here, one line, before the slow work
        from socialsim.recognize.strategy import default_recognizer

        recognizer = default_recognizer()
    if recognize and settings is not None:
        settings["strategy_recognizer"] = str(recognizer.path)
    metrics = compare(corpora, reference_index=1 if refs else None, diversity=diversity, sample=sample, seed=seed)
    if on_metrics is not None:
        on_metrics(metrics)
    recognized = None
    if recognize:
        recognized = recognize_with_progress(corpora, recognizer, progress=progress, console=console)
        if on_recognized is not None:
            on_recognized(recognized[1])
    results = None
    if llm is not None:
        results = judge_corpora(
            llm,
            corpora,
            rubric,
            n=judge_n,
            pairwise=pairwise and bool(refs),
            transcript_chars=judge_chars,
            seed=seed,
            progress=progress,
            console=console,
        )
        if on_judged is not None:
            on_judged(results)
    out_dir = report_dir or default_report_dir(path)
    page, data = build_report(
        metrics, corpora, judge=results, samples=samples, settings=settings, recognized=recognized
    )
    paths = write_report(out_dir, page, data)
    judgements = write_judgements(results, out_dir / "judgements.jsonl") if results is not None else None
    return Evaluation(corpora=corpora, metrics=metrics, results=results, report=paths, judgements=judgements,
                      recognized=recognized[1] if recognized else None)


def recognize_with_progress(
    corpora: Sequence[Corpus], recognizer: Any = None, *, progress: bool = True, console: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`recognize_corpora` with a progress bar (replies labelled, per corpus) on ``console``."""
    from socialsim.evaluate.recognized import recognize_corpora

    if recognizer is None:
        from socialsim.recognize.strategy import default_recognizer

        recognizer = default_recognizer()
    if not progress:
        return recognize_corpora(corpora, recognizer)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def step(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"recognizing strategies: {name}", total=total)
            bar.update(tasks[name], completed=done)

        return recognize_corpora(corpora, recognizer, on_batch=step)
