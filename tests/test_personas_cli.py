"""`python -m socialsim.cli.personas`: the commands work, and bad input ends as one line on stderr
(file, line, field), exit code 2, and no output file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ESCONV_DIR, persona_dict
from socialsim.personas.bank import load_personas

DATA = Path(__file__).parent / "data"
FAILED_ESCONV = ESCONV_DIR / "FailedESConv.json"


def pcli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "socialsim.cli.personas", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=timeout,
    )


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


BAD_JSONL = [
    ("bad-json", [persona_dict(), "{not json"], [":2:", "not valid JSON"]),
    ("missing-field", [{k: v for k, v in persona_dict().items() if k != "situation"}], [":1:", "field 'situation'"]),
    (
        "unknown-type",
        [persona_dict(), persona_dict(id="b", problem_type="space travel")],
        [":2:", "field 'problem_type'"],
    ),
    ("bad-layer", [persona_dict(disclosure={"surface": "abc", "context": "defg"})], [":1:", "field 'disclosure.core'"]),
]


@pytest.mark.parametrize("name,rows,needles", BAD_JSONL, ids=[c[0] for c in BAD_JSONL])
def test_bad_persona_file_for_validate_stats_and_import(tmp_path, name, rows, needles):
    f = write_rows(tmp_path / f"{name}.jsonl", rows)
    one_line_error(pcli("validate", f), f, *needles)
    png = tmp_path / "plot.png"
    one_line_error(pcli("stats", f, "--plot", png, "--no-embeddings"), f, *needles)
    out = tmp_path / "out.jsonl"
    one_line_error(pcli("import", "--from", "jsonl", f, "--out", out), f, *needles)
    assert not png.exists() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f.name]  # no temporary files either


def test_missing_and_empty_files(tmp_path):
    missing = tmp_path / "nope.jsonl"
    one_line_error(pcli("validate", missing), missing, "not found")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    one_line_error(pcli("list", empty), empty, "empty")
    out = tmp_path / "o.jsonl"
    for kind in ("esconv", "rolecards", "csv"):
        one_line_error(pcli("import", "--from", kind, empty, "--out", out), empty, "empty")
        one_line_error(pcli("import", "--from", kind, missing, "--out", out), missing, "not found")
    assert not out.exists()


@pytest.mark.parametrize(
    "kind,name,text,needles",
    [
        ("csv", "p.csv", "id,name,nickname\na,b,c\n", [":1:", "field 'nickname'", "unknown column"]),
        (
            "csv",
            "p.csv",
            (DATA / "personas_sample.csv").read_text().replace("sleep problems", "space travel"),
            [":2:", "field 'problem_type'"],
        ),
        (
            "rolecards",
            "c.txt",
            "Age: 30\nGender: male\nProblem: He lost his job and is anxious.\n\nAge: old-ish\nProblem: She is sad.\n",
            [":5:", "field 'age'"],
        ),
        (
            "rolecards",
            "c.txt",
            "Age: 30\nMood: low\nProblem: He lost his job and is anxious.\n",
            [":2:", "field 'Mood'"],
        ),
        ("esconv", "e.json", '[{"problem_type": "job crisis"}]', [":record 1:", "field 'emotion_type'"]),
        ("esconv", "e.json", "[{", [":1:", "not valid JSON"]),
    ],
)
def test_bad_import_sources(tmp_path, kind, name, text, needles):
    src = tmp_path / name
    src.write_text(text)
    out = tmp_path / "out.jsonl"
    one_line_error(pcli("import", "--from", kind, src, "--out", out), src, *needles)
    assert not out.exists()


@pytest.mark.skipif(not FAILED_ESCONV.exists(), reason="../shared ESConv data not found")
def test_import_esconv_real_file(tmp_path):
    out = tmp_path / "esconv.jsonl"
    one_line_error(pcli("import", "--from", "esconv", FAILED_ESCONV, "--out", out), "record 43", "field 'situation'")
    assert not out.exists()
    r = pcli("import", "--from", "esconv", FAILED_ESCONV, "--out", out, "--skip-invalid")
    assert r.returncode == 0, r.stderr
    assert "Imported 194 personas" in r.stdout and "age placeholder 30" in r.stdout
    assert r.stderr.count("skipped: ") == 2
    personas = load_personas(out)
    assert len(personas) == 194
    v = pcli("stats", out, "--no-embeddings")
    assert v.returncode == 0 and "unknown" in v.stdout


def test_import_success_for_each_format(tmp_path, persona_file):
    for kind, src, n in (
        ("rolecards", DATA / "rolecards_sample.txt", 6),
        ("rolecards", DATA / "rolecards_esceval.json", 2),
        ("csv", DATA / "personas_sample.csv", 2),
        ("jsonl", persona_file, 2),
    ):
        out = tmp_path / f"{kind}-{src.stem}.jsonl"
        r = pcli("import", "--from", kind, src, "--out", out)
        assert r.returncode == 0, r.stderr
        assert len(load_personas(out)) == n
        # an existing output is not replaced without --force
        before = out.read_bytes()
        one_line_error(pcli("import", "--from", kind, src, "--out", out), out, "already exists")
        assert out.read_bytes() == before
        assert pcli("import", "--from", kind, src, "--out", out, "--force").returncode == 0
    one_line_error(pcli("import", "--from", "xml", persona_file, "--out", tmp_path / "x.jsonl"), "--from", "xml")
    assert not (tmp_path / "x.jsonl").exists()


def test_list_show_validate_default():
    r = pcli("list", "default", "--limit", "5")
    assert r.returncode == 0 and "p001-ongoing-depression" in r.stdout and "122 more" in r.stdout
    r = pcli("show", "p002-job-crisis")
    assert r.returncode == 0 and "Rajesh Kulkarni" in r.stdout and "2 core" in r.stdout
    r = pcli("show", "p002-job-crisis", "--json")
    assert json.loads(r.stdout)["id"] == "p002-job-crisis"
    one_line_error(pcli("show", "p002-job-crisiss"), "no persona with id", "p002-job-crisis")
    r = pcli("validate", "default")
    assert r.returncode == 0 and "127 personas, all valid" in r.stdout


def test_stats_on_default_with_plot(tmp_path):
    pytest.importorskip("sentence_transformers", reason="embeddings need the [eval] extra")
    png = tmp_path / "bank.png"
    r = pcli("stats", "default", "--plot", png)
    assert r.returncode == 0, r.stderr
    for needle in (
        "Problem type × emotion (127 personas)",
        "age band",
        "gender",
        "occupation",
        "locale",
        "risk",
        "problem types covered: 27/27",
        "age bands covered: 6/6",
        "near-duplicates (similarity ≥ 0.92): none",
    ):
        assert needle in r.stdout, needle
    assert "diversity" in r.stdout and png.read_bytes()[:4] == b"\x89PNG"
    one_line_error(pcli("stats", "default", "--plot", tmp_path / "x.jpg"), "--plot")


def test_build_refuses_unrelated_file_and_bad_backend(tmp_path, persona_file):
    before = persona_file.read_bytes()
    one_line_error(pcli("build", "--n", "2", "--out", persona_file), persona_file, "no build progress file")
    assert persona_file.read_bytes() == before
    assert not Path(str(persona_file) + ".progress.json").exists()
    out = tmp_path / "new.jsonl"
    one_line_error(pcli("build", "--n", "2", "--out", out, "--backend", "magic"), "backend")
    one_line_error(pcli("build", "--n", "2", "--out", out, "--backend", "openai"), "--base-url")
    assert not out.exists() and not Path(str(out) + ".progress.json").exists()


def test_every_option_has_help():
    for cmd in ("list", "show", "validate", "stats", "import", "build"):
        r = pcli(cmd, "--help")
        assert r.returncode == 0
    from typer.main import get_command

    from socialsim.cli.personas import app

    group = get_command(app)
    for name, cmd in group.commands.items():
        assert cmd.help, name
        for param in cmd.params:
            assert getattr(param, "help", None), (name, param.name)
