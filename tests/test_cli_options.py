"""Every command's options are the ones recorded in tests/data/cli_options.json: the same names, types,
defaults and flags in every command (help text may change). Regenerate the file only when an option is
meant to change: python tests/cli_snapshot.py > tests/data/cli_options.json"""

import json

from cli_snapshot import SNAPSHOT, snapshot


def test_every_command_keeps_its_options():
    want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    got = json.loads(json.dumps(snapshot()))  # the same JSON round trip as the file (tuples → lists)
    assert sorted(got) == sorted(want), "commands added or removed"
    for cmd in want:
        assert sorted(got[cmd]) == sorted(want[cmd]), f"{cmd}: options added or removed"
        for name in want[cmd]:
            assert got[cmd][name] == want[cmd][name], f"{cmd} {name}: declaration changed"


def _own_options(fn):
    """The option strings a command function declares itself (not through an option group)."""
    import inspect
    import typing

    from typer.models import OptionInfo

    out = set()
    for p in inspect.signature(inspect.unwrap(fn), eval_str=True).parameters.values():
        infos = [a for a in getattr(p.annotation, "__metadata__", ()) if isinstance(a, OptionInfo)]
        if typing.get_origin(p.annotation) is typing.Annotated and infos:
            decls = [d for info in infos for d in (info.param_decls or ())]
            if isinstance(infos[0].default, str) and infos[0].default.startswith("-"):
                decls.append(infos[0].default)
            if decls:
                out.update(o for d in decls for o in d.split("/"))
            else:
                out.add("--" + p.name.replace("_", "-"))
    return out


def _commands():
    import typer

    from socialsim.cli.root import app

    def walk(cmd, path):
        if cmd.callback is not None:
            yield path, cmd.callback
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    return list(walk(typer.main.get_command(app), "socialsim"))


def test_no_command_declares_a_shared_group_option_itself():
    from socialsim.cli.groups import BackendGroup, CacheGroup, ConfigGroup, OutputGroup, SafetyGroup

    shared = set()
    for group in (BackendGroup(), CacheGroup(), SafetyGroup(), OutputGroup(), ConfigGroup()):
        for o in group.options():
            shared.add("--" + o.name.replace("_", "-"))
            shared.update(x for d in o.decls for x in d.split("/"))
    for role in ("seeker", "supporter", "classifier"):
        shared.update("--" + o.name.replace("_", "-") for o in BackendGroup("x", prefix=role).options())
    commands = _commands()
    assert len(commands) > 20
    for path, fn in commands:
        own = _own_options(fn) & shared
        assert not own, f"{path} declares {sorted(own)} itself; take the option group instead"
