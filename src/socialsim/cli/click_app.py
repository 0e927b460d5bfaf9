"""The root ``socialsim`` app as a click command, for the documentation site's CLI reference (mkdocs-click)."""

from __future__ import annotations

import typer.main

from socialsim.cli.root import app

command = typer.main.get_command(app)
