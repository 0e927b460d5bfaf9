"""The evaluation report: one self-contained HTML file (figures are matplotlib PNGs embedded as
base64, styles inline, no scripts, no external assets, every text HTML-escaped) and a JSON file
holding the same table and the data behind every figure.

Sections (HTML ids): ``metrics`` (corpus metrics side by side), ``strategies`` (strategy
distribution vs the reference), ``recognized`` (every corpus's replies labelled by the strategy recognizer:
distribution, Jensen–Shannon distance to ESConv, declared vs recognized agreement; see
`socialsim.evaluate.recognized`), ``transitions``, ``lengths`` (length histograms), ``coverage``
(problem types), ``disclosure``, ``judge-scores``, ``pairwise``, ``samples`` (a few dialogues),
``about`` (definitions and settings). A section without data says why (e.g. the judge was not run).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from socialsim.evaluate.judge import JudgeResults, pairwise_summary, pointwise_summary
from socialsim.evaluate.metrics import LAYER_NAMES, STRATEGIES, CorpusMetrics, table_rows
from socialsim.evaluate.readers import Corpus
from socialsim.io import atomic_write_text
from socialsim.taxonomy import SHORT, TAXONOMY
from socialsim.templating import make_env

if TYPE_CHECKING:
    from socialsim.evaluate.recognized import Recognized

SECTIONS = (
    ("metrics", "Corpus metrics"),
    ("strategies", "Strategy distribution"),
    ("recognized", "Recognized strategies (one recognizer for every corpus)"),
    ("transitions", "Strategy transitions"),
    ("lengths", "Lengths"),
    ("coverage", "Persona coverage"),
    ("disclosure", "Disclosure depth"),
    ("fidelity", "Fidelity (strategies, disclosure, seeker)"),
    ("judge-scores", "Judge scores"),
    ("pairwise", "Pairwise comparison"),
    ("samples", "Sample dialogues"),
    ("about", "Definitions and settings"),
)
COLORS = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        from socialsim.errors import UserError

        raise UserError("the report needs the [eval] extra (matplotlib): pip install -e '.[eval]'") from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def confusion_png(confusion: list[list[int]], labels: list[str], *, xlabel: str, ylabel: str, title: str) -> str:
    """A strategy confusion matrix (rows: ``ylabel``, columns: ``xlabel``) as a base64 PNG heatmap with counts."""
    from socialsim.taxonomy import SHORT

    fig = _figure(5.2, 4.4)
    ax = fig.add_subplot()
    ax.imshow(confusion, cmap="Blues")
    ticks = [SHORT.get(x, x) for x in labels]
    ax.set_xticks(range(len(ticks)), ticks, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(ticks)), ticks, fontsize=7)
    for i, row in enumerate(confusion):
        for j, k in enumerate(row):
            if k:
                ax.text(j, i, str(k), ha="center", va="center", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


# -- figures: each returns (base64 PNG or None, the data behind it) ----------------------------


def fig_strategies(metrics: Sequence[CorpusMetrics]) -> tuple[str | None, dict[str, Any]]:
    data = {
        "labels": list(STRATEGIES),
        "reference": next((m.reference for m in metrics if m.reference), None),
        "series": {m.name: [m.strategy_distribution[s] for s in STRATEGIES] for m in metrics},
        "counts": {m.name: [m.strategy_counts[s] for s in STRATEGIES] for m in metrics},
        "jsd": {m.name: m.strategy_jsd for m in metrics},
    }
    shown = [m for m in metrics if sum(m.strategy_counts.values())]
    if not shown:
        return None, data
    fig = _figure(10, 4)
    ax = fig.add_subplot()
    width = 0.8 / len(shown)
    for i, m in enumerate(shown):
        xs = [k + (i - (len(shown) - 1) / 2) * width for k in range(len(STRATEGIES))]
        label = m.name + (" (reference)" if m.name == data["reference"] else "")
        if m.strategy_jsd is not None and m.name != data["reference"]:
            label += f" · JSD {m.strategy_jsd:.3f}"
        ax.bar(xs, [100 * m.strategy_distribution[s] for s in STRATEGIES], width, label=label, color=_color(i))
    ax.set_xticks(range(len(STRATEGIES)), [SHORT[s] for s in STRATEGIES], rotation=20)
    ax.set_ylabel("% of supporter turns")
    ax.legend(fontsize=8)
    return _png(fig), data


def fig_transitions(metrics: Sequence[CorpusMetrics]) -> tuple[str | None, dict[str, Any]]:
    data = {"labels": list(STRATEGIES), "counts": {m.name: m.transitions for m in metrics}}
    shown = [m for m in metrics if sum(map(sum, m.transitions))][:4]
    if not shown:
        return None, data
    fig = _figure(4.2 * len(shown), 4.2)
    for i, m in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), i + 1)
        rows = [[c / max(1, sum(r)) for c in r] for r in m.transitions]
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(m.name, fontsize=9)
        ticks = [SHORT[s][:6] for s in STRATEGIES]
        ax.set_xticks(range(len(STRATEGIES)), ticks, rotation=90, fontsize=7)
        ax.set_yticks(range(len(STRATEGIES)), ticks if i == 0 else [""] * len(STRATEGIES), fontsize=7)
        ax.set_xlabel("next strategy", fontsize=8)
        if i == 0:
            ax.set_ylabel("strategy", fontsize=8)
    return _png(fig), data


def _hist(values: Sequence[int], width: int, cap: int) -> tuple[list[int], list[int]]:
    edges = list(range(0, cap + width, width))
    counts = [0] * len(edges)
    for v in values:
        counts[min(v, cap) // width] += 1
    return edges, counts


LENGTH_PANELS = (
    ("seeker_words", "words per seeker utterance", 5, 100),
    ("supporter_words", "words per supporter utterance", 5, 100),
    ("utterances", "utterances per dialogue", 2, 60),
)


def fig_lengths(metrics: Sequence[CorpusMetrics]) -> tuple[str | None, dict[str, Any]]:
    data: dict[str, Any] = {}
    for key, title, width, cap in LENGTH_PANELS:
        panel: dict[str, Any] = {"title": title, "bin_width": width, "last_bin_includes_above": cap, "series": {}}
        for m in metrics:
            edges, counts = _hist(m.lengths.get(key, []), width, cap)
            panel["bin_starts"] = edges
            panel["series"][m.name] = counts
        data[key] = panel
    fig = _figure(12, 3.6)
    for p, (key, title, _width, _cap) in enumerate(LENGTH_PANELS):
        ax = fig.add_subplot(1, 3, p + 1)
        panel = data[key]
        for i, m in enumerate(metrics):
            counts = panel["series"][m.name]
            total = sum(counts)
            if not total:
                continue
            ax.step(panel["bin_starts"], [100 * c / total for c in counts], where="post", label=m.name, color=_color(i))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("% of items", fontsize=8)
        if p == 0:
            ax.legend(fontsize=7)
    return _png(fig), data


def fig_coverage(metrics: Sequence[CorpusMetrics]) -> tuple[str | None, dict[str, Any]]:
    data = {m.name: m.problem_types for m in metrics}
    shown = [m for m in metrics if m.problem_types_covered]
    if not shown:
        return None, data
    labels = sorted({p for m in shown for p in m.problem_types if p != "unknown"})
    fig = _figure(10, 0.35 * len(labels) + 1.5)
    ax = fig.add_subplot()
    height = 0.8 / len(shown)
    for i, m in enumerate(shown):
        total = max(1, sum(m.problem_types.values()))
        ys = [k + (i - (len(shown) - 1) / 2) * height for k in range(len(labels))]
        ax.barh(ys, [100 * m.problem_types.get(p, 0) / total for p in labels], height, label=m.name, color=_color(i))
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("% of dialogues")
    ax.legend(fontsize=8)
    return _png(fig), data


def fig_disclosure(metrics: Sequence[CorpusMetrics]) -> tuple[str | None, dict[str, Any]]:
    data = {m.name: m.disclosure for m in metrics}
    shown = [m for m in metrics if m.disclosure]
    if not shown:
        return None, data
    fig = _figure(7, 0.6 * len(shown) + 1.4)
    ax = fig.add_subplot()
    for i, m in enumerate(shown):
        total = max(1, sum(m.disclosure.values()))  # type: ignore[union-attr]
        left = 0.0
        for k, layer in enumerate(LAYER_NAMES):
            share = 100 * m.disclosure[layer] / total  # type: ignore[index]
            ax.barh(i, share, left=left, color=("#cbd5e0", "#90cdf4", "#2b6cb0")[k], label=layer if i == 0 else None)
            left += share
    ax.set_yticks(range(len(shown)), [m.name for m in shown], fontsize=8)
    ax.set_xlabel("% of dialogues by deepest layer the seeker reached")
    fig.legend(fontsize=8, ncols=3, loc="outside upper center")
    return _png(fig), data


def fig_judge_scores(summary: dict[str, dict[str, Any]]) -> tuple[str | None, dict[str, Any]]:
    dims = list(dict.fromkeys(d for s in summary.values() for d in s["dimensions"]))
    if not dims:
        return None, summary
    cols = min(4, len(dims))
    rows = (len(dims) + cols - 1) // cols
    fig = _figure(3.2 * cols, 2.6 * rows)
    names = list(summary)
    width = 0.8 / max(1, len(names))
    for k, dim in enumerate(dims):
        ax = fig.add_subplot(rows, cols, k + 1)
        for i, name in enumerate(names):
            d = summary[name]["dimensions"].get(dim)
            if not d or not d["n"]:
                continue
            xs = [s + 1 + (i - (len(names) - 1) / 2) * width for s in range(5)]
            ax.bar(xs, [100 * c / d["n"] for c in d["counts"]], width, color=_color(i), label=name)
        ax.set_title(dim, fontsize=9)
        ax.set_xticks(range(1, 6))
        ax.set_ylim(0, 100)
        ax.set_ylabel("% of dialogues", fontsize=7)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncols=min(4, len(labels)) or 1, loc="outside upper center")
    return _png(fig), summary


def fig_pairwise(summary: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    dims = list(summary.get("dimensions", {}))
    if not dims:
        return None, summary
    fig = _figure(8, 0.45 * len(dims) + 1.4)
    ax = fig.add_subplot()
    for k, dim in enumerate(dims):
        c = summary["dimensions"][dim]
        total = max(1, c["win"] + c["tie"] + c["loss"])
        left = 0.0
        for outcome, color in (("win", "#38a169"), ("tie", "#a0aec0"), ("loss", "#e53e3e")):
            share = 100 * c[outcome] / total
            ax.barh(k, share, left=left, color=color, label=outcome if k == 0 else None)
            left += share
    ax.set_yticks(range(len(dims)), dims, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"% of pairs ({summary.get('label', '')}; outcome of the first corpus)")
    fig.legend(fontsize=8, ncols=3, loc="outside upper center")
    return _png(fig), summary


# -- HTML: rendered from templates/report.html.j2 (autoescaped) ---------------------------------


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = make_env("socialsim.evaluate")
    env.autoescape = True
    return env


def _sample(corpus: Corpus, index: int, scores: dict[str, int] | None, max_turns: int) -> dict[str, Any]:
    """One sample dialogue as the template shows it."""
    d = corpus.dialogues[index]
    m = corpus.meta[index]
    bits = [f"corpus {corpus.name}", f"id {d.id}"]
    if m.problem_type:
        bits.append(m.problem_type)
    if m.emotion_type:
        bits.append(m.emotion_type)
    bits.append(f"status {d.status}" + (f" ({d.failure_reason})" if d.failure_reason else ""))
    if d.end_reason:
        bits.append(f"end {d.end_reason}")
    turns = []
    for t in d.turns[:max_turns]:
        tags = []
        if t.strategy is not None:
            tags.append(t.strategy.value)
        if t.disclosure_layer is not None:
            tags.append(f"layer {LAYER_NAMES[t.disclosure_layer]}")
        if t.role_fallback:
            tags.append("role fallback")
        who = "Seeker" if t.speaker == "seeker" else "Supporter"
        turns.append({"speaker": t.speaker, "who": who, "tags": tags, "text": t.text})
    return {
        "bits": bits,
        "situation": m.situation,
        "scores": ", ".join(f"{k} {v}" for k, v in scores.items()) if scores else "",
        "turns": turns,
        "more": max(0, len(d.turns) - max_turns),
    }


def _call_stats(stats: dict[str, Any]) -> str:
    if not stats:
        return "no call statistics"
    return (
        f"judge calls {stats.get('calls', 0)} (cached {stats.get('cached_calls', 0)}, retried "
        f"{stats.get('retries', 0)}) · tokens {stats.get('prompt_tokens', 0)} in / "
        f"{stats.get('completion_tokens', 0)} out · cost ${stats.get('cost_usd', 0):.4f}"
    )


def _judge_view(judge: JudgeResults, point: dict[str, Any], pair: dict[str, Any]) -> dict[str, Any]:
    """The judge sections' tables as the template shows them."""
    failed_rows = [
        [r.corpus, r.dialogue_id, r.error or "", (r.raw or "")[:200]] for r in judge.pointwise if r.error
    ] + [
        [f"{r.a_corpus} vs {r.b_corpus}", f"{r.a_id} vs {r.b_id}", r.error or "", (r.raw or "")[:200]]
        for r in judge.pairwise
        if r.error
    ]
    mean_rows = [
        [name, s["judged"], s["failed"], *[f"{d['mean']:.2f}" for d in s["dimensions"].values()]]
        for name, s in point.items()
    ]
    return {
        "rubric": judge.rubric,
        "call_stats": _call_stats(judge.stats),
        "dims": list(next(iter(point.values()))["dimensions"]) if point else [],
        "mean_rows": mean_rows,
        "failed_rows": failed_rows,
        "pair": {
            "label": pair.get("label", ""),
            "pairs": pair.get("pairs", 0),
            "failed": pair.get("failed", 0),
            "rows": [
                [dim, c["win"], c["tie"], c["loss"], c["inconsistent"]] for dim, c in pair.get("dimensions", {}).items()
            ],
        },
    }


def build_report(
    metrics: Sequence[CorpusMetrics],
    corpora: Sequence[Corpus],
    *,
    judge: JudgeResults | None = None,
    samples: int = 2,
    sample_turns: int = 16,
    title: str = "socialsim evaluation",
    settings: dict[str, Any] | None = None,
    recognized: tuple[dict[str, Recognized], dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Render the HTML report and its JSON twin. `metrics` and `corpora` align by position. `recognized`: the
    strategy recognizer's labels and figures (`recognize_corpora`); without them the report says it did not run
    and the fidelity section uses the realized strategies the turns store."""
    names = [m.name for m in metrics]
    rows = table_rows(metrics)
    figures: dict[str, Any] = {}
    pngs: dict[str, str | None] = {}
    for key, fn in (
        ("strategy_distribution", fig_strategies),
        ("strategy_transitions", fig_transitions),
        ("lengths", fig_lengths),
        ("problem_types", fig_coverage),
        ("disclosure_depth", fig_disclosure),
    ):
        pngs[key], figures[key] = fn(metrics)
    point = pointwise_summary(judge.pointwise) if judge else {}
    pair = pairwise_summary(judge.pairwise) if judge else {}
    pngs["judge_scores"], figures["judge_scores"] = fig_judge_scores(point) if judge else (None, None)
    pngs["pairwise"], figures["pairwise"] = fig_pairwise(pair) if judge else (None, None)
    score_of = {(r.corpus, r.dialogue_id): r.scores for r in (judge.pointwise if judge else []) if r.scores}
    sample_refs = [(c, i) for c in corpora for i in range(min(samples, len(c.dialogues)))]
    data: dict[str, Any] = {
        "title": title,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpora": names,
        "table": {"columns": ["metric", *names], "rows": [[label, *cells] for label, cells in rows]},
        "metrics": [m.as_dict() for m in metrics],
        "figures": figures,
        "judge": None,
        "samples": [{"corpus": c.name, "dialogue": c.dialogues[i].model_dump(mode="json")} for c, i in sample_refs],
        "settings": settings or {},
    }
    if judge is not None:
        data["judge"] = {
            "rubric": judge.rubric,
            "pointwise": point,
            "pairwise": pair,
            "failures": judge.failures(),
            "stats": judge.stats,
        }

    ref = data["figures"]["strategy_distribution"]["reference"]
    strategy_rows = [
        [s, *[f"{100 * m.strategy_distribution[s]:.1f}% ({m.strategy_counts[s]})" for m in metrics]] for s in STRATEGIES
    ]
    from socialsim.evaluate.fidelity import fidelity_section

    fidelity, data["fidelity"] = fidelity_section(corpora, recognized[0] if recognized else None)
    from socialsim.evaluate.recognized import recognized_section

    data["recognized"] = recognized[1] if recognized else None
    recognized_view = recognized_section(corpora, data["recognized"])
    from socialsim.evaluate import metrics as metrics_module
    from socialsim.evaluate import response_metrics as response_module

    page = (
        _env()
        .get_template("report.html.j2")
        .render(
            title=title,
            generated=data["generated"],
            names=names,
            sections=SECTIONS,
            section_titles=dict(SECTIONS),
            metric_rows=[[label, *cells] for label, cells in rows],
            pngs=pngs,
            reference=ref,
            strategy_rows=strategy_rows,
            fidelity=fidelity,
            recognized=recognized_view,
            judge=_judge_view(judge, point, pair) if judge is not None else None,
            samples=[_sample(c, i, score_of.get((c.name, c.dialogues[i].id)), sample_turns) for c, i in sample_refs],
            about={
                "metrics": metrics_module.__doc__ or "",
                "settings": json.dumps(settings, indent=2) if settings else "",
                "responses": response_module.__doc__ or "",
                "strategies": [[i.label, i.short, i.definition, i.description] for i in TAXONOMY.values()],
            },
        )
    )
    return page, data


def write_report(out_dir: str | Path, page: str, data: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.html`` and ``report.json`` into `out_dir` (created if needed)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from socialsim.errors import UserError

        raise UserError(f"{out}: cannot create the report folder ({e.strerror})") from None
    paths = {"html": out / "report.html", "json": out / "report.json"}
    for key, text in (("html", page), ("json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")):
        atomic_write_text(paths[key], text)
    return paths
