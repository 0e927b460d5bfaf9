"""What every typer app of socialsim shares: the one-line error contract (exit code 2)."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console

from socialsim.errors import UserError

err_console = Console(stderr=True)


class OneLineTyper(typer.Typer):
    """A typer app whose usage errors (bad option values, unknown options) are `UserError`s too, so
    `socialsim.cli_util.run_app` prints them as one line with exit code 2."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:  # typer >= 0.2x vendors click as typer._click
            from typer._click import exceptions as cx
        except ImportError:  # pragma: no cover - older typer on click
            from click import exceptions as cx  # type: ignore[no-redef]

        kwargs.setdefault("standalone_mode", False)
        try:
            rc = super().__call__(*args, **kwargs)
        except cx.NoArgsIsHelpError as e:
            print(e.ctx.get_help() if e.ctx else str(e))
            return 0
        except cx.UsageError as e:
            cmd = f"{e.ctx.command_path}: " if e.ctx else ""
            message = " ".join(e.format_message().split())
            raise UserError(f"{cmd}{message} (see --help)") from None
        except typer.Abort:
            raise KeyboardInterrupt from None
        if isinstance(rc, int) and rc:
            sys.exit(rc)
        return rc


def run_app(app: typer.Typer) -> None:
    """Run a typer app; a `UserError` becomes ``error: <one line>`` on stderr and exit code 2."""
    try:
        app()
    except UserError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished work is saved; run again with --resume to continue", markup=False)
        sys.exit(130)
