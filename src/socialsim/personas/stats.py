"""What a persona bank covers, how diverse it is, and which personas are near-duplicates.

* Coverage: counts by problem type × emotion, age band, gender, occupation, locale and risk.
  Ages that an importer wrote as placeholders (``life_stage`` contains
  `socialsim.personas.importers.AGE_PLACEHOLDER_MARK`) count in the band "unknown".
* Diversity: the mean pairwise cosine distance between persona embeddings (all-MiniLM-L6-v2, see
  `socialsim.embeddings`) of `persona_text`: the situation and the three disclosure layers.
  0 means all personas say the same; the default bank scores about 0.77.
* Near-duplicates: pairs whose cosine similarity is at or above
  `socialsim.embeddings.NEAR_DUPLICATE_THRESHOLD` (0.92) on that same text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socialsim.io import atomic_open
from socialsim.personas.importers import AGE_PLACEHOLDER_MARK
from socialsim.schema import EmotionType, Persona, ProblemType

#: (label, lowest age, highest age)
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("12–17", 12, 17),
    ("18–24", 18, 24),
    ("25–34", 25, 34),
    ("35–49", 35, 49),
    ("50–64", 50, 64),
    ("65+", 65, 200),
)
UNKNOWN_BAND = "unknown"


def age_band(age: int) -> str:
    """The label of the band `age` falls in."""
    for label, lo, hi in AGE_BANDS:
        if lo <= age <= hi:
            return label
    return UNKNOWN_BAND


def persona_age_band(p: Persona) -> str:
    """The persona's age band, or "unknown" when its age is an importer's placeholder."""
    if p.life_stage and AGE_PLACEHOLDER_MARK in p.life_stage:
        return UNKNOWN_BAND
    return age_band(p.age)


def persona_text(p: Persona) -> str:
    """The text embedded for diversity and near-duplicate checks: situation and the three layers
    (the text `NEAR_DUPLICATE_THRESHOLD` was chosen on)."""
    d = p.disclosure
    return " ".join((p.situation, d.surface, d.context, d.core))


def locale_group(locale: str | None) -> str:
    """The language-region tag of a locale such as 'en-GB, Leeds' ('en-GB'); 'unknown' if unset."""
    if not locale:
        return "unknown"
    return locale.split(",")[0].strip() or "unknown"


@dataclass
class Coverage:
    n: int
    problem_emotion: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    emotions: Counter[str] = field(default_factory=Counter)
    age_bands: Counter[str] = field(default_factory=Counter)
    genders: Counter[str] = field(default_factory=Counter)
    occupations: Counter[str] = field(default_factory=Counter)
    locales: Counter[str] = field(default_factory=Counter)
    risks: Counter[str] = field(default_factory=Counter)
    intensities: Counter[int] = field(default_factory=Counter)

    def missing_problems(self) -> list[str]:
        return [p.value for p in ProblemType if not self.problems[p.value]]

    def missing_age_bands(self) -> list[str]:
        return [label for label, _, _ in AGE_BANDS if not self.age_bands[label]]


def coverage(personas: list[Persona]) -> Coverage:
    """Count personas along each dimension (no embeddings needed)."""
    c = Coverage(n=len(personas))
    for p in personas:
        c.problem_emotion[(p.problem_type.value, p.emotion_type.value)] += 1
        c.problems[p.problem_type.value] += 1
        c.emotions[p.emotion_type.value] += 1
        c.age_bands[persona_age_band(p)] += 1
        c.genders[p.gender] += 1
        c.occupations[p.occupation.lower()] += 1
        c.locales[locale_group(p.locale)] += 1
        c.risks[p.risk] += 1
        c.intensities[p.initial_intensity] += 1
    return c


@dataclass
class Diversity:
    mean_distance: float
    max_similarity: float
    most_similar: tuple[str, str] | None
    near_duplicates: list[tuple[str, str, float]]
    threshold: float


def diversity(personas: list[Persona], vectors: Any = None) -> Diversity:
    """Mean pairwise embedding distance, the most similar pair and all near-duplicate pairs."""
    import numpy as np

    from socialsim import embeddings

    if vectors is None:
        vectors = embeddings.embed([persona_text(p) for p in personas])
    pairs = embeddings.near_duplicates(vectors)
    max_sim, most = 0.0, None
    if len(personas) >= 2:
        sims = embeddings.cosine_matrix(vectors).copy()
        np.fill_diagonal(sims, -1.0)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        max_sim, most = float(sims[i, j]), (personas[min(i, j)].id, personas[max(i, j)].id)
    return Diversity(
        mean_distance=embeddings.mean_pairwise_distance(vectors),
        max_similarity=max_sim,
        most_similar=most,
        near_duplicates=[(personas[i].id, personas[j].id, s) for i, j, s in pairs],
        threshold=embeddings.NEAR_DUPLICATE_THRESHOLD,
    )


@dataclass
class BankStats:
    source: str
    coverage: Coverage
    diversity: Diversity | None


def bank_stats(personas: list[Persona], source: str = "", *, with_embeddings: bool = True) -> BankStats:
    return BankStats(source, coverage(personas), diversity(personas) if with_embeddings else None)


# -- tables and plots ---------------------------------------------------------------------------------


def _short(text: str, width: int = 5) -> str:
    return text if len(text) <= width else text[: width - 1] + "."


def coverage_tables(stats: BankStats, *, top_occupations: int = 15) -> list[Any]:
    """rich Tables: problem × emotion, then age band, gender, occupation, locale, risk, intensity."""
    from rich.table import Table

    c = stats.coverage
    emotions = [e.value for e in EmotionType if c.emotions[e.value]]
    from rich import box

    pe = Table(
        title=f"Problem type × emotion ({c.n} personas)",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
    )
    pe.add_column("problem type", no_wrap=True)
    for e in emotions:
        pe.add_column(_short(e), justify="right", no_wrap=True)
    pe.add_column("total", justify="right", style="bold", no_wrap=True)
    for pt in ProblemType:
        cells = [str(c.problem_emotion[(pt.value, e)] or "·") for e in emotions]
        style = "red" if not c.problems[pt.value] else None
        pe.add_row(pt.value, *cells, str(c.problems[pt.value]), style=style)
    pe.add_row("total", *[str(c.emotions[e]) for e in emotions], str(c.n), style="bold")
    if emotions:
        pe.caption = "emotions: " + ", ".join(f"{_short(e)}={e}" for e in emotions if _short(e) != e)

    def simple(title: str, counts: Counter[Any], order: list[Any] | None = None, limit: int | None = None) -> Any:
        t = Table(title=title, header_style="bold")
        t.add_column(title.split(" (")[0])
        t.add_column("personas", justify="right")
        t.add_column("share", justify="right")
        keys = order if order is not None else [k for k, _ in counts.most_common()]
        shown = keys[:limit] if limit else keys
        for k in shown:
            t.add_row(str(k), str(counts[k]), f"{100 * counts[k] / max(1, c.n):.0f}%")
        rest = keys[len(shown) :]
        if rest:
            t.add_row(f"other ({len(rest)} distinct)", str(sum(counts[k] for k in rest)), "")
        return t

    bands = [label for label, _, _ in AGE_BANDS] + ([UNKNOWN_BAND] if c.age_bands[UNKNOWN_BAND] else [])
    return [
        pe,
        simple("age band", c.age_bands, bands),
        simple("gender", c.genders),
        simple(f"occupation ({len(c.occupations)} distinct)", c.occupations, limit=top_occupations),
        simple(f"locale ({len(c.locales)} distinct)", c.locales, limit=top_occupations),
        simple("risk", c.risks),
        simple("initial intensity", c.intensities, sorted(c.intensities)),
    ]


def plot_stats(stats: BankStats, path: str | Path) -> Path:
    """A PNG: problem type × emotion heatmap, age-band bars and gender bars (matplotlib, Agg)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from socialsim.errors import UserError

        raise UserError("--plot needs matplotlib, from the [eval] extra: pip install -e '.[eval]'") from None
    import numpy as np

    c = stats.coverage
    problems = [p.value for p in ProblemType]
    emotions = [e.value for e in EmotionType]
    grid = np.array([[c.problem_emotion[(p, e)] for e in emotions] for p in problems])
    fig = plt.figure(figsize=(14, 10), constrained_layout=True)
    gs = fig.add_gridspec(2, 2, height_ratios=[3, 1.2])
    ax = fig.add_subplot(gs[0, :])
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(emotions)), emotions, rotation=45, ha="right")
    ax.set_yticks(range(len(problems)), problems)
    for i in range(len(problems)):
        for j in range(len(emotions)):
            if grid[i, j]:
                ax.text(
                    j,
                    i,
                    str(grid[i, j]),
                    ha="center",
                    va="center",
                    color="w" if grid[i, j] < grid.max() * 0.6 else "k",
                    fontsize=8,
                )
    title = f"{stats.source or 'persona bank'}: {c.n} personas, problem type × emotion"
    if stats.diversity is not None:
        title += f" (diversity {stats.diversity.mean_distance:.3f})"
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.6, label="personas")
    bands = [label for label, _, _ in AGE_BANDS] + ([UNKNOWN_BAND] if c.age_bands[UNKNOWN_BAND] else [])
    ax2 = fig.add_subplot(gs[1, 0])
    ax2.bar(bands, [c.age_bands[b] for b in bands], color="tab:blue")
    ax2.set_title("age band")
    ax2.set_ylabel("personas")
    genders = [g for g, _ in c.genders.most_common()]
    ax3 = fig.add_subplot(gs[1, 1])
    ax3.bar(genders, [c.genders[g] for g in genders], color="tab:orange")
    ax3.set_title("gender")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path
