"""Blind pairwise studies: pairing, blinding, statistics, agreement, and the `socialsim ui` CLI."""

from __future__ import annotations

import json
import socket
from itertools import combinations

import pytest

pytest.importorskip("krippendorff")
from conftest import one_line_error, run_cli  # noqa: E402
from socialsim.errors import UserError  # noqa: E402
from socialsim.ui.results import agreement, sign_test, wilson  # noqa: E402
from socialsim.ui.study import Study, create_study  # noqa: E402
from ui_helpers import make_dialogue, write_run  # noqa: E402


def test_sign_test_and_wilson():
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(3, 3) == 1.0
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test(0, 0) is None
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) is None


def _ordinal_alpha(units: list[list[int]]) -> float:
    """Krippendorff's ordinal alpha from its definition (coincidence matrix), as an oracle."""
    values = sorted({v for u in units for v in u})
    o = {(c, k): 0.0 for c in values for k in values}
    for u in units:
        if len(u) < 2:
            continue
        for i, j in combinations(range(len(u)), 2):
            o[u[i], u[j]] += 1 / (len(u) - 1)
            o[u[j], u[i]] += 1 / (len(u) - 1)
    n_c = {c: sum(o[c, k] for k in values) for c in values}
    n = sum(n_c.values())

    def delta(c: int, k: int) -> float:
        lo, hi = min(c, k), max(c, k)
        return (sum(n_c[g] for g in values if lo <= g <= hi) - (n_c[c] + n_c[k]) / 2) ** 2

    observed = sum(o[c, k] * delta(c, k) for c in values for k in values)
    expected = sum(n_c[c] * n_c[k] * delta(c, k) for c in values for k in values) / (n - 1)
    return 1 - observed / expected


def test_agreement_matches_the_definition():
    code = {"b": 1, "tie": 2, "a": 3}
    ann = ["a", "a", "tie", "b", "a", "tie"]
    bo = ["a", "tie", "tie", "b", "b", "a"]
    answers = [{"item": i, "annotator": "ann", "choices": {"overall": c}} for i, c in enumerate(ann)]
    answers += [{"item": i, "annotator": "bo", "choices": {"overall": c}} for i, c in enumerate(bo)]
    answers.append({"item": 9, "annotator": "ann", "choices": {"overall": "a"}})  # one answer only: not used
    got = agreement(answers, ["overall"], ["ann", "bo"])
    want = _ordinal_alpha([[code[x], code[y]] for x, y in zip(ann, bo, strict=True)])
    assert got["items_with_2plus"] == 6
    assert got["per_dimension"]["overall"] == pytest.approx(want, abs=1e-9)
    assert got["pooled"] == pytest.approx(want, abs=1e-9)
    same = [{"item": i, "annotator": n, "choices": {"overall": "a"}} for i in range(3) for n in ("ann", "bo")]
    assert agreement(same, ["overall"], ["ann", "bo"])["pooled"] is None  # no variation: undefined
    assert agreement(answers[:6], ["overall"], ["ann", "bo"])["note"].startswith("no item")


def test_pairing_by_problem_blinding_and_balance(tmp_path):
    a = write_run(tmp_path / "a", [make_dialogue(i, persona_id=f"a-{i}") for i in range(10)])
    b = write_run(tmp_path / "b", [make_dialogue(i, persona_id=f"b-{i}") for i in range(10)])
    made = create_study(a, b, tmp_path / "s.sqlite", n=6, seed=5)
    assert made.match == "problem" and made.items == 6  # no shared persona: auto falls back to problem type
    s = Study.open(made.path)
    items = [s.item(i) for i in s.item_ids()]
    assert sum(it.left_is_a for it in items) == 3  # half the items show A on the left
    for it in items:
        assert {t["speaker"] for t in it.left} == {"seeker", "supporter"}
        assert all(set(t) == {"speaker", "text"} for t in it.left + it.right)  # no strategy, thought, model
    rows = s.con.execute("SELECT key, a_ref, b_ref FROM items").fetchall()
    assert all(r[1].startswith("a:") and r[2].startswith("b:") for r in rows)
    assert len({r[0] for r in rows}) == 5  # round robin over the 5 shared problem types
    ann = s.annotator(made.tokens["annotator-1"])
    assert sorted(s.order(ann)) == s.item_ids() and s.annotator("nope") is None
    s.close()
    with pytest.raises(UserError, match="already exists"):
        create_study(a, b, made.path, n=2)
    with pytest.raises(UserError, match="persona"):
        create_study(a, b, tmp_path / "t.sqlite", n=2, match="persona")
    assert not (tmp_path / "t.sqlite").exists()


def test_pairing_two_chatbots_replies_to_the_same_context(tmp_path):
    from conftest import ESCONV_DIR

    tsv = ESCONV_DIR / "devWithStrategy_short.tsv"
    for name, word in (("x.jsonl", "calm"), ("y.jsonl", "sorry")):
        rows = [{"line": ln, "response": f"reply {word} {ln}"} for ln in (1, 2, 3, 5, 8)]
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    made = create_study(tmp_path / "x.jsonl", tmp_path / "y.jsonl", tmp_path / "c.sqlite", n=3, match="context",
                        contexts=tsv, dimensions=["overall"])  # fmt: skip
    s = Study.open(made.path)
    it = s.item(s.item_ids()[0])
    assert it.context and it.context[-1]["speaker"] == "seeker"
    assert len(it.left) == len(it.right) == 1 and {it.left[0]["text"].split()[1], it.right[0]["text"].split()[1]} == {
        "calm",
        "sorry",
    }
    assert s.dimensions == ["overall"]
    s.close()
    with pytest.raises(UserError, match="--contexts"):
        create_study(tmp_path / "x.jsonl", tmp_path / "y.jsonl", tmp_path / "d.sqlite", match="context")


def test_cli_create_export_and_one_line_errors(tmp_path):
    a = write_run(tmp_path / "a", [make_dialogue(i) for i in range(6)])
    b = write_run(tmp_path / "b", [make_dialogue(i + 50) for i in range(6)])
    out = tmp_path / "s.sqlite"
    r = run_cli("ui", "study", "create", "--a", a, "--b", b, "--n", 3, "--annotator", "ann", "--annotator", "bo",
                "--out", out, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 items matched by persona" in r.stdout
    assert r.stdout.count("/s/") == 2 and r.stdout.count("/a/") == 1
    one_line_error(run_cli("ui", "study", "create", "--a", a, "--b", b, "--out", out), "already exists")
    one_line_error(
        run_cli("ui", "study", "create", "--a", tmp_path / "nope", "--b", b, "--out", tmp_path / "x"), "nope"
    )
    one_line_error(run_cli("ui", "study", "create", "--a", a, "--b", b, "--out", tmp_path / "y", "--dimensions", "a b"))
    r = run_cli("ui", "study", "add-annotator", out, "cy")
    assert r.returncode == 0 and "annotator cy: http://127.0.0.1:8765/s/" in r.stdout
    for suffix in ("json", "csv"):
        r = run_cli("ui", "study", "export", out, "--out", tmp_path / f"e.{suffix}")
        assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["study"]["items"] == 3
    assert (tmp_path / "e.csv").read_text().startswith("item,key,annotator,left")
    # `socialsim ui PATH` is `socialsim ui serve PATH`; a bad path or a busy port: one line, exit 2
    one_line_error(run_cli("ui", tmp_path / "missing-run", timeout=120), "missing-run", "no such file")
    one_line_error(run_cli("ui", "serve", "--study", tmp_path / "e.json", timeout=120), "not a socialsim study")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        one_line_error(run_cli("ui", a, "--port", port, timeout=120), f"127.0.0.1:{port}", "--port")
