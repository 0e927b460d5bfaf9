"""Bad input ends as one line on stderr and exit code 2, and nothing already written is touched."""

import json

import pytest

from conftest import one_line_error, persona_dict, run_cli

_one_line_error = one_line_error


def _write(tmp_path, rows, name="p.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


@pytest.mark.parametrize(
    "rows,needles",
    [
        ([persona_dict(), "{not json"], [":2:", "not valid JSON"]),
        (
            [persona_dict(), {k: v for k, v in persona_dict(id="b").items() if k != "situation"}],
            [":2:", "field 'situation'", "missing"],
        ),
        ([persona_dict(problem_type="space travel")], [":1:", "field 'problem_type'"]),
        ([persona_dict(disclosure={"surface": "abc", "context": "defg"})], [":1:", "field 'disclosure.core'"]),
        ([persona_dict(), persona_dict()], [":2:", "duplicate id"]),
    ],
)
def test_bad_persona_file(tmp_path, rows, needles):
    p = _write(tmp_path, rows)
    out = tmp_path / "run"
    r = run_cli("simulate", "--personas", p, "--n", "1", "--out", out)
    line = _one_line_error(r, str(p), *needles)
    assert not out.exists(), line


def test_missing_and_empty_persona_file(tmp_path):
    _one_line_error(
        run_cli("simulate", "--personas", tmp_path / "nope.jsonl", "--n", "1", "--out", tmp_path / "r"), "not found"
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    _one_line_error(run_cli("simulate", "--personas", empty, "--n", "1", "--out", tmp_path / "r"), "empty")


def test_unknown_backend_and_missing_options(tmp_path, persona_file):
    _one_line_error(
        run_cli("simulate", "--personas", persona_file, "--n", "1", "--out", tmp_path / "r", "--backend", "magic"),
        "backend",
    )
    _one_line_error(
        run_cli(
            "simulate",
            "--personas",
            persona_file,
            "--n",
            "1",
            "--out",
            tmp_path / "r",
            "--backend",
            "openai",
            "--model",
            "m",
        ),
        "--base-url",
    )
    _one_line_error(run_cli("simulate", "--personas", persona_file, "--out", tmp_path / "r"), "--n")


def test_unreachable_base_url(tmp_path, persona_file):
    from conftest import free_port

    out = tmp_path / "run"
    r = run_cli(
        "simulate",
        "--personas",
        persona_file,
        "--n",
        "2",
        "--out",
        out,
        "--backend",
        "openai",
        "--base-url",
        f"http://127.0.0.1:{free_port()}/v1",
        "--model",
        "m",
        "--max-attempts",
        "3",
        "--timeout",
        "2",
        "-q",
        timeout=120,
    )
    _one_line_error(r, "cannot connect", "gave up after 3 attempts")
    # the run folder is kept and resumable; no dialogue was half-written
    assert (out / "manifest.json").exists()
    assert (out / "dialogues.jsonl").read_text() == ""


def test_existing_run_is_not_overwritten(tmp_path, persona_file):
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text('{"keep": true}')
    r = run_cli("simulate", "--personas", persona_file, "--n", "1", "--out", out, "--model", "smollm2-135m")
    _one_line_error(r, "already holds a run", "--resume")
    assert (out / "manifest.json").read_text() == '{"keep": true}'
