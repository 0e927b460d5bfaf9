"""What every typer app of socialsim shares: the one-line error contract (exit code 2)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

err_console = Console(stderr=True)


def run_app(app: typer.Typer) -> None:
    """Run a typer app; a `UserError` becomes ``error: <one line>`` on stderr and exit code 2."""
    from socialsim.errors import UserError

    try:
        app()
    except UserError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished work is saved; run again with --resume to continue", markup=False)
        sys.exit(130)
