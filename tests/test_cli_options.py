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
