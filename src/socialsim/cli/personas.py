"""``personas``: list, show, validate, inspect, import and build persona banks.

Run as ``python -m socialsim.cli.personas ...`` or ``socialsim personas ...``.
Bad input ends as one line on stderr (``error: file:line: field '...': ...``) and exit code 2,
and no output file is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from socialsim.cli.groups import BackendGroup, BackendOptions, use
from socialsim.cli.options import quiet_model_loading
from socialsim.cli.personas_build import BUILDER_ROLE, build
from socialsim.errors import UserError

app = typer.Typer(
    help=(
        "Persona banks: the help-seekers the simulator plays. List, show and validate a bank, see what it "
        "covers and how diverse it is, import personas from ESConv, ESC-Eval role cards, CSV or JSONL, and "
        "build new ones with an LLM. FILE may be 'default' for the built-in bank of 127 personas."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

FileArg = Annotated[
    str,
    typer.Argument(
        help="Persona file: JSONL (one persona per line) or a JSON array of personas; 'default' for the built-in bank.",
        show_default=False,
    ),
]


def _path(spec: str) -> Path:
    from socialsim.personas.bank import default_bank_path

    return default_bank_path() if spec == "default" else Path(spec)


def _load(spec: str) -> list[Any]:
    from socialsim.personas.bank import load_personas

    return load_personas(_path(spec))


# -- list / show / validate ------------------------------------------------------------------------------


@app.command("list")
def list_(
    file: FileArg,
    problem: Annotated[
        str | None, typer.Option(help="Only personas with this problem type, e.g. 'grief' or 'job crisis'.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many rows.")] = None,
) -> None:
    """One row per persona: id, name, age, gender, occupation, problem type, emotion and intensity."""
    personas = _load(file)
    if problem is not None:
        personas = [p for p in personas if p.problem_type.value == problem.strip().lower()]
    shown = personas[:limit] if limit else personas
    t = Table(title=f"{file}: {len(personas)} personas", header_style="bold")
    for col in ("id", "name", "age", "gender", "occupation", "problem type", "emotion", "int."):
        t.add_column(col, justify="right" if col in ("age", "int.") else "left", overflow="fold")
    for p in shown:
        t.add_row(
            escape(p.id),
            escape(p.name),
            str(p.age),
            escape(p.gender),
            escape(p.occupation),
            p.problem_type.value,
            p.emotion_type.value,
            str(p.initial_intensity),
        )
    console.print(t)
    if len(shown) < len(personas):
        console.print(f"[dim]… {len(personas) - len(shown)} more (raise --limit)[/]")


@app.command()
def show(
    persona_id: Annotated[str, typer.Argument(metavar="ID", help="The persona's id (see `list`).", show_default=False)],
    file: Annotated[
        str, typer.Option("--file", "-f", help="Persona file to look in; 'default' is the built-in bank.")
    ] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print the persona as one JSON line instead.")] = False,
) -> None:
    """Print one persona in full: who they are, their situation and their three disclosure layers."""
    import difflib

    personas = _load(file)
    by_id = {p.id: p for p in personas}
    if persona_id not in by_id:
        close = [i for i in by_id if i.startswith(persona_id)][:3] or difflib.get_close_matches(
            persona_id, list(by_id), n=3
        )
        hint = f"did you mean {', '.join(close)}?" if close else f"ids look like {personas[0].id}"
        raise UserError(f"{_path(file)}: no persona with id {persona_id!r}; {hint} (see `list {file}`)")
    p = by_id[persona_id]
    if as_json:
        print(p.model_dump_json(exclude_none=True))
        return
    console.rule(f"[bold]{escape(p.id)}[/]")
    rows: list[tuple[str, str]] = [
        ("who", f"{p.name}, {p.age}, {p.gender}, {p.occupation}"),
        ("problem", f"{p.problem_type.value} · {p.emotion_type.value} {p.initial_intensity}/5 · {p.experience_type}"),
        ("situation", p.situation),
        ("0 surface", p.disclosure.surface),
        ("1 context", p.disclosure.context),
        ("2 core", p.disclosure.core),
    ]
    for key in ("life_stage", "locale", "talk_style"):
        if getattr(p, key):
            rows.append((key.replace("_", " "), getattr(p, key)))
    if p.personality:
        rows.append(("personality", ", ".join(f"{k} {v.value}" for k, v in p.personality.model_dump().items())))
    for key in ("coping_tried", "support_preferences"):
        if getattr(p, key):
            rows.append((key.replace("_", " "), "; ".join(getattr(p, key))))
    if p.risk != "none":
        rows.append(("risk", p.risk))
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    for k, v in rows:
        t.add_row(k, escape(str(v)))
    console.print(t)


@app.command()
def validate(file: FileArg) -> None:
    """Check every persona against the schema (and that ids are unique). Exit 0 when all are valid;
    otherwise one line naming file, line and field, and exit 2."""
    from socialsim.personas.stats import coverage

    personas = _load(file)
    c = coverage(personas)
    console.print(
        f"{_path(file)}: {len(personas)} personas, all valid · {len(c.problems)} problem types, "
        f"{len(c.emotions)} emotions, {len([b for b in c.age_bands if c.age_bands[b]])} age bands"
    )


# -- stats -----------------------------------------------------------------------------------------------


@app.command()
def stats(
    file: FileArg,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also write a PNG: a problem-type × emotion heatmap with age-band and gender bars."),
    ] = None,
    embeddings: Annotated[
        bool,
        typer.Option(
            help="Measure diversity (mean pairwise embedding distance) and list near-duplicates, with "
            "all-MiniLM-L6-v2 on CPU (a few seconds per hundred personas). --no-embeddings: coverage only."
        ),
    ] = True,
    top: Annotated[int, typer.Option(min=1, help="Rows shown in the occupation and locale tables.")] = 15,
) -> None:
    """Coverage tables (problem type × emotion, age band, gender, occupation, locale, risk,
    intensity), diversity and near-duplicate pairs of a persona file."""
    from socialsim.personas.stats import bank_stats, coverage_tables, plot_stats

    personas = _load(file)
    if plot is not None and plot.suffix.lower() != ".png":
        raise UserError(f"option --plot: {plot}: give a .png file name")
    quiet_model_loading()
    s = bank_stats(personas, source=str(file), with_embeddings=embeddings)
    tables = coverage_tables(s, top_occupations=top)
    # the problem × emotion matrix needs ~140 columns; wrapping it would make it unreadable
    Console(width=max(console.width, 150), force_terminal=console.is_terminal).print(tables[0])
    for t in tables[1:]:
        console.print(t)
    c = s.coverage
    missing = c.missing_problems()
    console.print(
        f"problem types covered: {27 - len(missing)}/27"
        + (f" (missing: {', '.join(missing)})" if missing else "")
        + f" · age bands covered: {6 - len(c.missing_age_bands())}/6"
    )
    if s.diversity is not None:
        d = s.diversity
        console.print(
            "diversity (mean pairwise cosine distance of situation + disclosure layers): "
            f"[bold]{d.mean_distance:.4f}[/]"
            f" · most similar pair {d.most_similar[0] if d.most_similar else '-'} / "
            f"{d.most_similar[1] if d.most_similar else '-'} at {d.max_similarity:.3f}"
        )
        if d.near_duplicates:
            console.print(f"[red]near-duplicates (similarity ≥ {d.threshold}): {len(d.near_duplicates)} pairs[/]")
            for a, b, sim in d.near_duplicates[:50]:
                console.print(f"  {escape(a)} ~ {escape(b)}  {sim:.3f}")
        else:
            console.print(f"near-duplicates (similarity ≥ {d.threshold}): none")
    if plot is not None:
        console.print(f"plot: {plot_stats(s, plot)}")


# -- import ----------------------------------------------------------------------------------------------

#: How many skipped records `import --skip-invalid` lists (all are counted).
SKIPPED_SHOWN = 5


@app.command("import")
@use(
    backend=BackendGroup(
        BUILDER_ROLE,
        only=("backend", "base_url", "model", "model_path", "api_key_env", "timeout"),
        require_model="the model that writes the core layers",
    )
)
def import_(
    *,
    src: Annotated[Path, typer.Argument(help="The file to import from.", show_default=False)],
    source_format: Annotated[
        str,
        typer.Option(
            "--from",
            help="Source format. esconv: ESConv's JSON (one persona seed per dialogue; layers from the seeker's "
            "own messages; demographics 'unknown'). rolecards: ESC-Eval-style cards, blocks of 'Age: …', "
            "'Gender: …', 'Occupation: …', 'Problem: …' lines separated by blank lines (or ESC-Eval's JSON with "
            "the card under 'base'; one record is one card even when blank lines separate its fields). socialsim: "
            "SocialSim's released user profiles (a JSON list; surface from Situation, context from the Event fields, "
            "core from the emotional words and Goals, Big Five from Personality, Topic/Subtopic kept). "
            "csv: a header of persona field names (disclosure.surface, "
            "disclosure.context, disclosure.core; lists separated by ';'). jsonl: persona JSON lines.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option(help="The persona JSONL file to write.", show_default=False)],
    force: Annotated[bool, typer.Option(help="Replace --out if it already exists.")] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            help="Leave bad records out (each is listed, none silently) instead of stopping at the first one."
        ),
    ] = False,
    placeholder_age: Annotated[
        int,
        typer.Option(
            help="Age written when the source gives none (the schema needs a number); such personas are marked in "
            "life_stage and counted as age 'unknown' by `stats`."
        ),
    ] = 30,
    id_prefix: Annotated[
        str | None,
        typer.Option(help="Prefix of generated ids (default: esconv-<file name> or card-<file name>)."),
    ] = None,
    fallback_problem_type: Annotated[
        str | None,
        typer.Option(
            help="rolecards/socialsim: problem type for records without a 'Problem type:' line (or a known topic) "
            "that no keyword rule matches (without it such a record is an error)."
        ),
    ] = None,
    fallback_emotion: Annotated[
        str | None,
        typer.Option(
            help="rolecards/socialsim: emotion for records without an 'Emotion:' line that no keyword rule matches."
        ),
    ] = None,
    core_from: Annotated[
        str,
        typer.Option(
            help="'rule': the core layer by the importer's fixed rules. 'llm': then rewrite each core (the worry "
            "said last) with the model of --backend from the rest of the persona, in the seeker's voice; a reply "
            "that is not 10-180 characters in the first person keeps the rule's core (counted)."
        ),
    ] = "rule",
    backend: BackendOptions,
) -> None:
    """Import personas from another format into a validated persona JSONL file.

    Every record is validated; the first bad one stops the import with one line naming file,
    line (or record) and field, and nothing is written. What a source lacks is filled by fixed
    rules, and the fills are counted in the summary (see socialsim.personas.importers).

      python -m socialsim.cli.personas import --from esconv ../shared/data/esconv/FailedESConv.json
      --out esconv_seeds.jsonl --skip-invalid
    """
    from socialsim.personas.importers import IMPORT_KINDS, import_personas, write_personas

    if source_format not in IMPORT_KINDS:
        raise UserError(f"option --from: unknown format {source_format!r}; use one of {', '.join(IMPORT_KINDS)}")
    if out.exists() and not force:
        raise UserError(f"{out}: already exists; choose another --out or add --force to replace it")
    if out.resolve() == src.resolve():
        raise UserError(f"{out}: --out is the source file; choose another --out")
    if core_from not in ("rule", "llm"):
        raise UserError(f"option --core-from: {core_from!r}: use 'rule' or 'llm'")
    llm = None
    if core_from == "llm":
        llm = backend.llm()
    result = import_personas(
        source_format,
        src,
        placeholder_age=placeholder_age,
        id_prefix=id_prefix,
        fallback_problem_type=fallback_problem_type,
        fallback_emotion=fallback_emotion,
        skip_invalid=skip_invalid,
        core_llm=llm,
    )
    if llm is not None:
        llm.close()
    n = write_personas(result.personas, out)
    console.print(f"Imported {n} personas from {src} ({source_format}) into {out}.")
    if result.notes:
        t = Table(title="Filled in by rule (the source does not give these)", header_style="bold")
        t.add_column("what")
        t.add_column("personas", justify="right")
        for what, k in result.notes.most_common():
            t.add_row(escape(what), str(k))
        console.print(t)
    if result.skipped:
        shown = result.skipped[:SKIPPED_SHOWN]
        more = len(result.skipped) - len(shown)
        err_console.print(
            f"[yellow]Skipped {len(result.skipped)} invalid records"
            + (f" (the first {len(shown)} below)" if more else "")
            + ":[/]"
        )
        for line in shown:
            err_console.print(f"  skipped: {line}", markup=False, highlight=False)
        if more:
            err_console.print(f"  … and {more} more", markup=False, highlight=False)


app.command()(build)


def main() -> None:
    """Entry point: run the app; a `UserError` becomes one line on stderr and exit code 2."""
    from socialsim.cli.app import run_app

    run_app(app)


if __name__ == "__main__":  # pragma: no cover
    main()
