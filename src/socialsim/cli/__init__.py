"""The ``socialsim`` command line: one typer shell per stage over the library.

The library never imports this package; a command parses its options, calls one library function and
prints. Every bad input ends as one line on stderr and exit code 2 (see `socialsim.errors.UserError`).
Submodules are imported lazily so ``python -m socialsim.cli.evaluate`` (and the like) run cleanly.
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    """Entry point: run the app, turning `UserError` into one line and exit code 2."""
    from socialsim.cli.app import run_app
    from socialsim.cli.root import app

    run_app(app)


def __getattr__(name: str) -> Any:
    if name == "app":
        from socialsim.cli.root import app

        return app
    raise AttributeError(f"module 'socialsim.cli' has no attribute {name!r}")
