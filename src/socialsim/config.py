"""Run configuration files: every option of ``simulate``, ``evaluate`` and ``train`` can come from a
YAML file given with ``--config run.yaml``.

Precedence, highest first: the command line, then the file, then the environment's ecosystem
defaults (`ENV_DEFAULTS`: ``OPENAI_BASE_URL`` for ``--base-url``; the API key itself is read from the
variable ``--api-key-env`` names, ``OPENAI_API_KEY`` by default), then the built-in defaults.

Keys are option names with ``_`` or ``-`` (``max_turns`` or ``max-turns``; ``format`` for
``--format``); an unknown key is one line naming the file, its line and the key (exit code 2).
``--dump-config`` prints the effective configuration as YAML, in a form ``--config`` takes back.

The mechanism is click's ``default_map``: the file's values become the command's defaults, so
whatever the command line gives still wins and every value goes through the option's own type checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from socialsim.errors import UserError

#: Option (parameter name) → the environment variable the ecosystem uses for it.
ENV_DEFAULTS: dict[str, str] = {"base_url": "OPENAI_BASE_URL"}
#: Parameters that steer the config itself and never come from a file.
NOT_FROM_FILE = ("config", "dump_config")


def read_config_file(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """(key → value, key → line) of a YAML mapping; one-line `UserError` for anything else."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found (--config)") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the config file ({e.__class__.__name__})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise UserError(f"{path}: expected a mapping of option names to values (e.g. 'n: 100')")
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return {str(k): v for k, v in data.items()}, lines


def file_defaults(path: str | Path | None, params: dict[str, Any]) -> dict[str, Any]:
    """The ``default_map`` for a command whose parameters are `params` (name → click parameter):
    the file's values under their parameter names, plus `ENV_DEFAULTS` not set in the file."""
    values: dict[str, Any] = {}
    if path is not None:
        data, lines = read_config_file(path)
        flags = {o.lstrip("-").replace("-", "_"): name for name, p in params.items() for o in getattr(p, "opts", [])}
        for key, value in data.items():
            norm = key.replace("-", "_")
            name = norm if norm in params else flags.get(norm)
            if name is None or name in NOT_FROM_FILE:
                known = ", ".join(sorted(n for n in params if n not in NOT_FROM_FILE))
                raise UserError(f"{path}:{lines.get(key, 1)}: unknown key '{key}' (options of this command: {known})")
            values[name] = value
    for name, env in ENV_DEFAULTS.items():
        if name in params and name not in values and os.environ.get(env):
            values[name] = os.environ[env]
    for name, value in values.items():  # a repeatable option (e.g. --base-url) takes one value as is
        if getattr(params[name], "multiple", False) and value is not None and not isinstance(value, list | tuple):
            values[name] = [value]
    return values


def install_config(ctx: Any, path: str | Path | None) -> None:
    """Make the file's values (and environment defaults) the defaults of `ctx`'s command. Called by
    the eager ``--config`` option before any other option is read."""
    params = {p.name: p for p in ctx.command.params if p.name}
    defaults = file_defaults(path, params)
    if defaults:
        ctx.default_map = {**(ctx.default_map or {}), **defaults}


def effective_config(ctx: Any) -> dict[str, Any]:
    """The values `ctx`'s command runs with, in the command's option order, as plain YAML-able data
    (paths as strings)."""
    out: dict[str, Any] = {}
    for p in ctx.command.params:
        name = p.name
        if name is None or name in NOT_FROM_FILE or name not in ctx.params or getattr(p, "hidden", False):
            continue  # a hidden option is an older spelling of a shown one, which the dump holds
        value = ctx.params[name]
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list | tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
            if getattr(p, "multiple", False) and len(value) <= 1:
                # given once (or not at all): written as one value or none, read back the same way
                value = value[0] if value else None
        out[name] = value
    return out


def dump_config(ctx: Any) -> str:
    """`effective_config` as YAML."""
    import yaml

    return yaml.safe_dump(effective_config(ctx), sort_keys=False, allow_unicode=True)
