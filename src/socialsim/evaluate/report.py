"""The evaluation report: one self-contained HTML file (figures are matplotlib PNGs embedded as
base64, styles inline, no scripts, no external assets, every text HTML-escaped) and a JSON file
holding the same table and the data behind every figure.

Sections (HTML ids): ``metrics`` (corpus metrics side by side), ``strategies`` (strategy
distribution vs the reference), ``transitions``, ``lengths`` (length histograms), ``coverage``
(problem types), ``disclosure``, ``judge-scores``, ``pairwise``, ``samples`` (a few dialogues),
``about`` (definitions and settings). A section without data says why (e.g. the judge was not run).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socialsim.evaluate.judge import JudgeResults, pairwise_summary, pointwise_summary
from socialsim.evaluate.metrics import LAYER_NAMES, STRATEGIES, CorpusMetrics, table_rows
from socialsim.evaluate.readers import Corpus
from socialsim.io import atomic_write_text

SECTIONS = (
    ("metrics", "Corpus metrics"),
    ("strategies", "Strategy distribution"),
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
SHORT = {
    "Question": "Question",
    "Restatement or Paraphrasing": "Restatement",
    "Reflection of feelings": "Reflection",
    "Self-disclosure": "Self-discl.",
    "Affirmation and Reassurance": "Affirmation",
    "Providing Suggestions": "Suggestions",
    "Information": "Information",
    "Others": "Others",
}


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


# -- HTML ---------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1a202c;background:#f7fafc}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}h2{border-bottom:2px solid #e2e8f0;padding-bottom:4px;margin-top:32px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:8px 20px 16px;margin:16px 0}
table{border-collapse:collapse;font-size:.9em;width:100%}th,td{border:1px solid #e2e8f0;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#edf2f7}td.num{text-align:right}
img{max-width:100%;height:auto}.muted{color:#718096}.note{color:#718096;font-style:italic}
nav a{margin-right:12px;font-size:.9em}.dialogue{border-left:4px solid #cbd5e0;padding:4px 12px;margin:12px 0}
.turn{margin:4px 0}.seeker b{color:#2c7a7b}.supporter b{color:#2f855a}
.tag{font-size:.75em;background:#edf2f7;border-radius:3px;padding:1px 5px;margin-left:4px;color:#4a5568}
"""


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _img(png: str | None, alt: str, missing: str) -> str:
    if png is None:
        return f'<p class="note">{_esc(missing)}</p>'
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{png}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dialogue_html(corpus: Corpus, index: int, scores: dict[str, int] | None, max_turns: int) -> str:
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
    parts = [f'<div class="dialogue"><p class="muted">{_esc(" · ".join(bits))}</p>']
    if m.situation:
        parts.append(f'<p class="muted">situation: {_esc(m.situation)}</p>')
    if scores:
        parts.append(f'<p class="muted">judge: {_esc(", ".join(f"{k} {v}" for k, v in scores.items()))}</p>')
    for t in d.turns[:max_turns]:
        tags = ""
        if t.strategy is not None:
            tags += f'<span class="tag">{_esc(t.strategy.value)}</span>'
        if t.disclosure_layer is not None:
            tags += f'<span class="tag">layer {_esc(LAYER_NAMES[t.disclosure_layer])}</span>'
        if t.role_fallback:
            tags += '<span class="tag">role fallback</span>'
        who = "Seeker" if t.speaker == "seeker" else "Supporter"
        parts.append(f'<div class="turn {t.speaker}"><b>{who}</b>{tags}: {_esc(t.text)}</div>')
    if len(d.turns) > max_turns:
        parts.append(f'<p class="note">… {len(d.turns) - max_turns} more utterances</p>')
    parts.append("</div>")
    return "".join(parts)


def _call_stats(stats: dict[str, Any]) -> str:
    if not stats:
        return "no call statistics"
    return (
        f"judge calls {stats.get('calls', 0)} (cached {stats.get('cached_calls', 0)}, retried "
        f"{stats.get('retries', 0)}) · tokens {stats.get('prompt_tokens', 0)} in / "
        f"{stats.get('completion_tokens', 0)} out · cost ${stats.get('cost_usd', 0):.4f}"
    )


def build_report(
    metrics: Sequence[CorpusMetrics],
    corpora: Sequence[Corpus],
    *,
    judge: JudgeResults | None = None,
    samples: int = 2,
    sample_turns: int = 16,
    title: str = "socialsim evaluation",
    settings: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Render the HTML report and its JSON twin. `metrics` and `corpora` align by position."""
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

    body: list[str] = [f"<h1>{_esc(title)}</h1>"]
    body.append(f'<p class="muted">{_esc(data["generated"])} · corpora: {_esc(", ".join(names))}</p>')
    body.append("<nav>" + "".join(f'<a href="#{sid}">{_esc(t)}</a>' for sid, t in SECTIONS) + "</nav>")

    def section(sid: str, inner: str) -> None:
        title_ = dict(SECTIONS)[sid]
        body.append(f'<section id="{sid}"><h2>{_esc(title_)}</h2>{inner}</section>')

    section("metrics", _table(["metric", *names], [[label, *cells] for label, cells in rows]))
    ref = data["figures"]["strategy_distribution"]["reference"]
    strat_rows = [
        [s, *[f"{100 * m.strategy_distribution[s]:.1f}% ({m.strategy_counts[s]})" for m in metrics]] for s in STRATEGIES
    ]
    section(
        "strategies",
        _img(pngs["strategy_distribution"], "strategy distribution", "No supporter strategies in these corpora.")
        + (f'<p class="muted">Reference: {_esc(ref)}</p>' if ref else '<p class="note">No reference corpus given.</p>')
        + _table(["strategy", *names], strat_rows),
    )
    section(
        "transitions",
        '<p class="muted">Row-normalised: each row is a strategy, each column the next supporter strategy.</p>'
        + _img(pngs["strategy_transitions"], "strategy transitions", "No strategy sequences to show."),
    )
    section("lengths", _img(pngs["lengths"], "length histograms", "No utterances."))
    section(
        "coverage",
        _img(pngs["problem_types"], "problem types", "No problem types recorded in these corpora (e.g. ESConv TSV)."),
    )
    section(
        "disclosure",
        _img(
            pngs["disclosure_depth"],
            "disclosure depth",
            "No disclosure layers recorded: only simulated dialogues record how deep the seeker opened up.",
        ),
    )
    from socialsim.evaluate.fidelity import fidelity_section

    fidelity_html, data["fidelity"] = fidelity_section(corpora)
    section("fidelity", fidelity_html)
    if judge is None:
        section("judge-scores", '<p class="note">The LLM judge was not run (add --judge).</p>')
        section("pairwise", '<p class="note">The LLM judge was not run (add --judge with --reference).</p>')
    else:
        failed_rows = [
            [r.corpus, r.dialogue_id, r.error or "", (r.raw or "")[:200]] for r in judge.pointwise if r.error
        ] + [
            [f"{r.a_corpus} vs {r.b_corpus}", f"{r.a_id} vs {r.b_id}", r.error or "", (r.raw or "")[:200]]
            for r in judge.pairwise
            if r.error
        ]
        failures = (
            "<h3>Unparseable verdicts</h3>" + _table(["corpus", "dialogue", "error", "raw output (start)"], failed_rows)
            if failed_rows
            else '<p class="muted">Every verdict parsed.</p>'
        )
        mean_rows = [
            [name, s["judged"], s["failed"], *[f"{d['mean']:.2f}" for d in s["dimensions"].values()]]
            for name, s in point.items()
        ]
        dims = list(next(iter(point.values()))["dimensions"]) if point else []
        section(
            "judge-scores",
            f'<p class="muted">Rubric: {_esc(judge.rubric)} · {_esc(_call_stats(judge.stats))}</p>'
            + (_table(["corpus", "judged", "failed", *dims], mean_rows) if point else "")
            + _img(pngs["judge_scores"], "judge score distributions", "No pointwise judgements.")
            + failures,
        )
        pair_rows = [
            [dim, c["win"], c["tie"], c["loss"], c["inconsistent"]] for dim, c in pair.get("dimensions", {}).items()
        ]
        section(
            "pairwise",
            (
                f'<p class="muted">{_esc(pair.get("label", ""))}: {pair.get("pairs", 0)} pairs, each judged in both '
                f"orders; a win needs both orders to agree, disagreeing orders count as ties "
                f"(column 'inconsistent'); {pair.get('failed', 0)} pairs failed.</p>"
                + _table(["dimension", "win", "tie", "loss", "inconsistent"], pair_rows)
                if pair.get("pairs")
                else ""
            )
            + _img(pngs["pairwise"], "pairwise win tie loss", "No pairwise comparisons (needs --reference)."),
        )
    section(
        "samples",
        "".join(_dialogue_html(c, i, score_of.get((c.name, c.dialogues[i].id)), sample_turns) for c, i in sample_refs)
        or '<p class="note">No dialogues.</p>',
    )
    from socialsim.evaluate import metrics as metrics_module
    from socialsim.evaluate import response_metrics as response_module

    about = (
        f"<pre>{_esc(metrics_module.__doc__ or '')}</pre>"
        + (f"<h3>Settings</h3><pre>{_esc(json.dumps(settings, indent=2))}</pre>" if settings else "")
        + f"<h3>Response metrics</h3><pre>{_esc(response_module.__doc__ or '')}</pre>"
    )
    section("about", about)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>"
        + "".join(body)
        + "</main></body></html>\n"
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
