"""Bad input to the evaluation commands ends as one line ``error: ...`` on stderr and exit code 2."""

import json
import os
import subprocess
import sys

import pytest

from socialsim.schema import write_jsonl
from test_evaluate_metrics import tiny


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "socialsim.cli.evaluate", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "160"},
        timeout=300,
    )


def _one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "name,content,needles",
    [
        ("empty.json", "", ["empty.json", "empty"]),
        ("none.json", "[]", ["none.json", "no dialogues"]),
        ("schema.json", '[{"situation": "x"}]', ["schema.json", "dialogue [0]", "field 'dialog'"]),
        (
            "strat.json",
            '[{"dialog": [{"speaker": "listener", "annotation": {"strategy": "Hugs"}, "content": "x"}]}]',
            ["strat.json", "dialog[0].annotation.strategy", "Hugs"],
        ),
        ("bad.jsonl", '{"persona_id": "p"}\n', ["bad.jsonl:1", "field 'backend'"]),
        ("broken.jsonl", "{\n", ["broken.jsonl:1", "not valid JSON"]),
        ("bad.tsv", "1.0 0 0 hi EOS 1.0 9 1 [Questions] ok?\n", ["bad.tsv:1", "field 'speaker'"]),
    ],
)
def test_evaluate_bad_corpus(tmp_path, name, content, needles):
    p = tmp_path / name
    p.write_text(content)
    _one_line_error(_cli("evaluate", p, "--diversity", "none", "--report", tmp_path / "rep", cwd=tmp_path), *needles)
    assert not (tmp_path / "rep").exists()


def test_evaluate_bad_paths_and_options(tmp_path):
    good = tmp_path / "good.jsonl"
    write_jsonl(tiny().dialogues, good)
    _one_line_error(_cli("evaluate", tmp_path / "nope", cwd=tmp_path), "nope", "no such file")
    _one_line_error(_cli("evaluate", good, "-r", tmp_path / "ref.json", cwd=tmp_path), "ref.json", "no such file")
    _one_line_error(_cli("evaluate", good, "--diversity", "magic", cwd=tmp_path), "--diversity", "magic")
    _one_line_error(_cli("evaluate", good, "--rubric", "vibes", cwd=tmp_path), "--rubric", "vibes")
    _one_line_error(_cli("evaluate", good, "--judge", "--backend", "magic", cwd=tmp_path), "--backend", "magic")
    _one_line_error(_cli("evaluate", good, "--judge", "--backend", "openai", cwd=tmp_path), "--model")
    _one_line_error(
        _cli("evaluate", good, "--judge", "--backend", "openai", "--model", "m", cwd=tmp_path), "--base-url"
    )


def test_filter_bad_input(tmp_path):
    good = tmp_path / "good.jsonl"
    write_jsonl(tiny().dialogues, good)
    out = tmp_path / "kept.jsonl"
    _one_line_error(_cli("filter", good, "--out", out, "--min-score", "overall", cwd=tmp_path), "--min-score")
    _one_line_error(_cli("filter", good, "--out", out, "--min-score", "overall=4", cwd=tmp_path), "--judgements")
    _one_line_error(_cli("filter", good, "--out", tmp_path / "no" / "k.jsonl", cwd=tmp_path), "--out", "no")
    _one_line_error(
        _cli("filter", good, "--out", out, "--min-turns", "5", "--max-turns", "2", cwd=tmp_path), "--min-turns"
    )
    bad = tmp_path / "j.jsonl"
    bad.write_text('{"dialogue_id": "d1", "scores": "high"}\n')
    _one_line_error(
        _cli("filter", good, "--out", out, "--judgements", bad, "--min-score", "overall=4", cwd=tmp_path),
        "j.jsonl:1",
        "field 'scores'",
    )
    assert not out.exists()


def test_respond_metrics_bad_input(tmp_path):
    tsv = tmp_path / "refs.tsv"
    tsv.write_text("1.0 0 0 hi EOS 1.0 1 1 [Questions] How are you?\n1.0 0 0 yo EOS 1.0 1 1 [Other] Hey\n")
    hyps = tmp_path / "h.txt"
    hyps.write_text("only one\n")
    _one_line_error(_cli("respond-metrics", hyps, "--references", tsv, cwd=tmp_path), "1 hypotheses but 2")
    _one_line_error(_cli("respond-metrics", tmp_path / "none.jsonl", cwd=tmp_path), "none.jsonl", "no such file")
    _one_line_error(_cli("respond-metrics", hyps, "--tokenize", "magic", cwd=tmp_path), "--tokenize")
    _one_line_error(_cli("respond-metrics", hyps, cwd=tmp_path), "h.txt:1", "field 'reference'")
    two = tmp_path / "two.jsonl"
    two.write_text(json.dumps({"response": "How are you?"}) + "\n" + json.dumps({"response": "Hey", "strategy": "Hug"}))
    _one_line_error(_cli("respond-metrics", two, "--references", tsv, cwd=tmp_path), "two.jsonl:2", "'strategy'")


def test_respond_metrics_works(tmp_path):
    for mod in ("sacrebleu", "rouge_score", "nltk"):
        pytest.importorskip(mod)
    tsv = tmp_path / "refs.tsv"
    tsv.write_text("1.0 0 0 hi EOS 1.0 1 1 [Questions] How are you?\r\n1.0 0 0 yo EOS 1.0 1 1 [Other] Hey there\r\n")
    hyps = tmp_path / "h.jsonl"
    hyps.write_text(
        json.dumps({"response": "[Questions] How are you?"}) + "\n" + json.dumps({"response": "Hey there"}) + "\n"
    )
    out = tmp_path / "m.json"
    r = _cli("respond-metrics", hyps, "--references", tsv, "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "BLEU-2" in r.stdout and "ROUGE-L" in r.stdout
    m = json.loads(out.read_text())
    assert m["bleu"]["1"] == pytest.approx(100.0) and m["strategy_accuracy"] == pytest.approx(100.0)
    assert m["tokenizer"] == "nltk"
