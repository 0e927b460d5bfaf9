"""What every typer app of socialsim shares: one-line errors and the exit codes of
`socialsim.errors` (0 done, 1 other failure, 2 bad input, 3 stopped but resumable)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import typer
from rich.console import Console

from socialsim.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_RESUMABLE, ParamError, Stopped, UserError

err_console = Console(stderr=True)


class OneLineTyper(typer.Typer):
    """A typer app whose usage errors (bad option values, unknown options) are `UserError`s too, so
    `socialsim.cli.app.run_app` prints them as one line with exit code 2."""

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
        if rc == 130:  # typer turns Ctrl-C into exit code 130: ours is 3 (stopped but resumable)
            raise KeyboardInterrupt
        if isinstance(rc, int) and rc:
            sys.exit(rc)
        return rc


def _stop_now(signum: int, frame: Any) -> None:
    err_console.print("interrupted again: stopping now", markup=False)
    os._exit(EXIT_RESUMABLE)


def _exit_resumable(message: str) -> None:
    """Print ``message`` and exit 3. Leaving can still wait on a model call in flight (interpreter
    exit joins worker threads); a further Ctrl-C then ends the process at once, without a traceback.
    What is finished is already in the run store, which is committed per dialogue."""
    signal.signal(signal.SIGINT, _stop_now)
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    sys.exit(EXIT_RESUMABLE)


def run_app(app: typer.Typer) -> None:
    """Run a typer app: a `UserError` becomes ``error: <one line>`` and exit code 2 (a `ParamError`
    names the option of its parameter), `Stopped` and
    Ctrl-C exit 3 (resumable), any other exception one line and exit 1."""
    try:
        app()
    except ParamError as e:  # the library names a parameter: say which option it is
        from socialsim.cli.options import option_name

        err_console.print(
            f"error: option {option_name(e.param)}: {e.problem}; see --help",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_BAD_INPUT)
    except UserError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)
    except Stopped as e:
        _exit_resumable(f"stopped: {e}")
    except KeyboardInterrupt:
        _exit_resumable("interrupted: finished work is saved; run again with --resume to continue")
    except Exception as e:
        if os.environ.get("SOCIALSIM_DEBUG"):
            raise
        first = (str(e).splitlines() or [""])[0]
        err_console.print(
            f"failed: {e.__class__.__name__}: {first} "
            "(a bug or a broken install; SOCIALSIM_DEBUG=1 shows the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_FAILURE)
