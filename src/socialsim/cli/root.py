"""The root ``socialsim`` typer app: every command of every stage, registered in one place."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from socialsim import __version__
from socialsim.cli.app import OneLineTyper
from socialsim.cli.build import build_app
from socialsim.cli.chatbot_eval import chatbot_app
from socialsim.cli.evaluate import evaluate_cmd, filter_cmd, respond_metrics_cmd
from socialsim.cli.export import export, train
from socialsim.cli.personas import app as personas_app
from socialsim.cli.safety import safety_eval_cmd
from socialsim.cli.serve import chat_command, serve_command
from socialsim.cli.simulate import demo, merge, simulate
from socialsim.cli.strategy_agreement import strategy_agreement_cmd
from socialsim.cli.ui import app as ui_app

app = OneLineTyper(
    help=(
        "Simulate emotional-support conversations (SocialSim): persona-driven seekers who disclose "
        "layer by layer, and supporters who reason about emotion, cause, need and ESConv strategy "
        "before every reply."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _version(value: bool) -> None:
    if value:
        console.print(f"socialsim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


app.command()(demo)
app.command()(simulate)
app.command()(merge)
app.command()(export)
app.command()(train)
app.add_typer(chatbot_app, name="chatbot-eval")
app.add_typer(personas_app, name="personas")
app.command("evaluate")(evaluate_cmd)
app.command("filter")(filter_cmd)
app.command("respond-metrics")(respond_metrics_cmd)
app.command("serve")(serve_command)
app.command("chat")(chat_command)
app.command("safety-eval")(safety_eval_cmd)
app.add_typer(ui_app, name="ui")
app.add_typer(build_app, name="build")
app.command("strategy-agreement")(strategy_agreement_cmd)
