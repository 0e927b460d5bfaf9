"""``socialsim ui``: browse corpora and run blind pairwise studies in the browser (a thin shell over
`socialsim.ui`). ``socialsim ui RUN ...`` is short for ``socialsim ui serve RUN ...``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from socialsim.errors import UserError

console = Console(soft_wrap=True)  # links and paths are never wrapped
err_console = Console(stderr=True, soft_wrap=True)


class _ServeByDefault(TyperGroup):
    """``socialsim ui PATH ...`` runs ``serve``: a first argument that is no subcommand starts it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ServeByDefault,
    help="Browse runs and corpora, and run blind pairwise human evaluations, in a local web app. "
    "`socialsim ui RUN ...` is short for `socialsim ui serve RUN ...`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
study_app = typer.Typer(help="Create, extend and export blind pairwise studies.", no_args_is_help=True)
app.add_typer(study_app, name="study")

DEFAULT_PORT = 8765


def _ui() -> Any:
    try:
        import socialsim.ui.app as ui_app
    except ImportError as e:  # pragma: no cover - depends on the install
        raise UserError(
            f"the web app needs the [serve] extra: pip install 'socialsim[serve]' ({e.name} missing)"
        ) from None
    return ui_app


@app.command("serve")
def serve(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Run folders, dialogue JSONL files, ESConv JSON or TSV files (any format the readers know)."
        ),
    ] = None,
    study: Annotated[Path | None, typer.Option(help="A study file from `socialsim ui study create` to serve.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port; the chosen one is printed).")] = DEFAULT_PORT,
    browse: Annotated[
        bool | None,
        typer.Option(
            "--browse/--no-browse",
            help="Serve the corpus pages (default: only on a loopback address; annotators elsewhere must not "
            "see which system wrote what).",
        ),
    ] = None,
) -> None:
    """Serve the corpus browser (and a study's annotator and admin pages) on http://127.0.0.1:8765.

    socialsim ui runs/r1 ../shared/data/esconv/FailedESConv.json
    socialsim ui serve --study study.sqlite runs/a runs/b
    """
    ui = _ui()

    def ready(bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        console.print(f"socialsim ui: http://{shown}:{bound}/  (Ctrl-C to stop)", markup=False, highlight=False)

    last = [0.0]

    def indexing(path: str, done: int, total: int) -> None:  # a line every 2 s, and one at the end
        if done == total or time.monotonic() - last[0] >= 2:
            last[0] = time.monotonic()
            err_console.print(f"indexing {path}: {done:,} of {total:,} dialogues", markup=False, highlight=False)

    ui.serve_ui(
        list(paths or []), str(study) if study else None, host=host, port=port, browse=browse, on_ready=ready,
        on_progress=indexing,
    )  # fmt: skip
    console.print("socialsim ui: stopped", markup=False)


def _print_links(base: str, tokens: dict[str, str], admin: str | None) -> None:
    console.print("Personal links (shown once; tokens are stored only as hashes):", markup=False)
    for name, token in tokens.items():
        console.print(
            f"  annotator {name}: {base.rstrip('/')}/s/{token}", markup=False, highlight=False, soft_wrap=True
        )
    if admin:
        console.print(f"  admin: {base.rstrip('/')}/a/{admin}", markup=False, highlight=False)


LinkBaseOpt = Annotated[
    str, typer.Option(help="Address the links are printed for (where `socialsim ui` will serve the study).")
]


@study_app.command("create")
def study_create(
    a: Annotated[
        Path, typer.Option("--a", help="System A: a run folder or corpus file (--match context: replies JSONL).")
    ],
    b: Annotated[Path, typer.Option("--b", help="System B, same kinds as --a.")],
    out: Annotated[Path, typer.Option(help="The study file to write (SQLite; never overwritten).")],
    n: Annotated[int, typer.Option(help="Items (pairs) in the study.")] = 50,
    dimensions: Annotated[
        str, typer.Option(help="Comma-separated dimensions (default: ESConv's human-evaluation ones).")
    ] = "fluency,identification,comforting,suggestion,overall",
    annotator: Annotated[
        list[str] | None, typer.Option(help="An annotator's name; repeat for several (default: one, annotator-1).")
    ] = None,
    match: Annotated[
        str,
        typer.Option(
            help="How items are paired: persona (same persona), problem (same problem type), auto (persona when "
            "the corpora share personas, else problem), context (two chatbots' replies to the same ESConv context)."
        ),
    ] = "auto",
    contexts: Annotated[
        Path | None, typer.Option(help="--match context: the ESConv TSV both `chatbot-eval responses` files answer.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for pairing, left/right sides and each annotator's order.")] = 0,
    name_a: Annotated[str | None, typer.Option(help="Name of A on the admin page (default: its file name).")] = None,
    name_b: Annotated[str | None, typer.Option(help="Name of B on the admin page.")] = None,
    link_base: LinkBaseOpt = f"http://127.0.0.1:{DEFAULT_PORT}",
) -> None:
    """Pair dialogues of two corpora (or two chatbots' replies) into a blind pairwise study and print
    each annotator's personal link and the admin link.

      socialsim ui study create --a runs/base --b runs/tuned --n 50 --annotator ann --annotator bo --out s.sqlite
      socialsim ui serve --study s.sqlite
    """
    from socialsim.ui.study import create_study

    made = create_study(
        a, b, out, n=n, dimensions=dimensions.split(","), annotators=annotator, match=match,
        contexts=contexts, seed=seed, name_a=name_a, name_b=name_b,
    )  # fmt: skip
    console.print(f"Wrote {made.path}: {made.items} items matched by {made.match}", markup=False, highlight=False)
    _print_links(link_base, made.tokens, made.admin_token)
    console.print(f"Serve it with: socialsim ui serve --study {made.path}", markup=False, highlight=False)


@study_app.command("add-annotator")
def study_add_annotator(
    study: Annotated[Path, typer.Argument(help="The study file.")],
    name: Annotated[str, typer.Argument(help="The new annotator's name.")],
    link_base: LinkBaseOpt = f"http://127.0.0.1:{DEFAULT_PORT}",
) -> None:
    """Add an annotator to a study and print their personal link."""
    from socialsim.ui.study import Study

    s = Study.open(study)
    try:
        token = s.add_annotator(name)
    finally:
        s.close()
    _print_links(link_base, {name: token}, None)


@study_app.command("export")
def study_export(
    study: Annotated[Path, typer.Argument(help="The study file.")],
    out: Annotated[
        Path, typer.Option(help="Where to write: .json (summary and answers) or .csv (one row per answer).")
    ],
) -> None:
    """Write a study's results and answers as JSON or CSV."""
    from socialsim.ui.results import write_export

    write_export(study, out)
    console.print(f"Wrote {out}", markup=False, highlight=False)
