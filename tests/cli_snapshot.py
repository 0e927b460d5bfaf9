"""Every command's options, as data: the snapshot `tests/test_cli_options.py` compares with
``tests/data/cli_options.json`` (option names, types and defaults must not change when the command
line is reorganised; help text may).

Regenerate the file (only when an option is meant to change)::

    python tests/cli_snapshot.py > tests/data/cli_options.json
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).parent / "data" / "cli_options.json"


def _plain(value: Any) -> Any:
    """A default as JSON-able data (paths as strings, enums as their value, tuples as lists)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _param(p: Any) -> dict[str, Any]:
    out = {
        "kind": p.param_type_name,
        "opts": list(p.opts),
        "secondary_opts": list(getattr(p, "secondary_opts", [])),
        "type": p.bare_type() if hasattr(p, "bare_type") else getattr(p.type, "name", type(p.type).__name__),
        "default": _plain(p.default),
        "required": bool(p.required),
        "is_flag": bool(getattr(p, "is_flag", False)),
        "multiple": bool(getattr(p, "multiple", False)),
        "hidden": bool(getattr(p, "hidden", False)),
        "nargs": p.nargs,
        "metavar": p.metavar,
    }
    for bound in ("min", "max"):  # ranges of numbers
        if getattr(p, bound, None) is not None:
            out[bound] = getattr(p, bound)
    return out


def snapshot() -> dict[str, dict[str, dict[str, Any]]]:
    """Command path (e.g. ``socialsim personas build``) → parameter name → its declaration."""
    import typer

    from socialsim.cli.root import app

    out: dict[str, dict[str, dict[str, Any]]] = {}

    def walk(cmd: Any, path: str) -> None:
        out[path] = {p.name: _param(p) for p in cmd.params if p.name}
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "socialsim")
    return out


def dumps(snap: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The snapshot as JSON, one parameter a line (diffs then show which option changed)."""
    lines = ["{"]
    for i, (cmd, params) in enumerate(snap.items()):
        lines.append(f" {json.dumps(cmd)}: {{")
        for j, (name, decl) in enumerate(params.items()):
            comma = "," if j < len(params) - 1 else ""
            lines.append(f"  {json.dumps(name)}: {json.dumps(decl)}{comma}")
        lines.append(" }" + ("," if i < len(snap) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dumps(snapshot()))
