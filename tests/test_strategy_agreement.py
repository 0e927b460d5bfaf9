"""The realized-strategy classifier's validation against ESConv's human labels, end to end on the real
dev TSV and the real (tiny) embedded model: the command a user runs to measure the classifier."""

import json

import pytest

from conftest import ESCONV_DIR
from socialsim.cli.build import forward
from socialsim.cli.strategy_agreement import strategy_agreement_cmd
from socialsim.evaluate.strategy_agreement import LABELS, stratified_sample


def main(argv: list[str]) -> None:
    """``socialsim strategy-agreement ARGV`` in this process."""
    forward(strategy_agreement_cmd, argv, "socialsim strategy-agreement")

DEV_TSV = ESCONV_DIR / "devWithStrategy_short.tsv"
needs_esconv = pytest.mark.skipif(not DEV_TSV.is_file(), reason="ESConv material in ../shared is missing")


def test_stratified_sample_is_balanced_and_interleaved():
    items = [(s, k) for s in LABELS for k in range(5)] + [(LABELS[0], 9)] * 10
    got = stratified_sample(items, key=lambda it: it[0], per_class=3)
    assert len(got) == 3 * len(LABELS)
    assert [it[0] for it in got[: len(LABELS)]] == list(LABELS)  # the first round has one of each


@pytest.mark.slow
@needs_esconv
def test_validation_labels_a_balanced_dev_sample_with_the_model(tmp_path, capsys):
    out = tmp_path / "classifier.json"
    main([str(DEV_TSV), "--labeller", "llm", "--model", "smollm2-135m", "--per-strategy", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["sample_planned"] == report["sample_labelled"] == len(LABELS)
    assert sum(m["support"] for m in report["per_strategy"].values()) == len(LABELS)
    assert all(m["support"] == 1 for m in report["per_strategy"].values())
    assert 0.0 <= report["accuracy"] <= 1.0 and sum(map(sum, report["confusion"])) == len(LABELS)
    assert report["majority_baseline_dev"] > 0
    assert "P " in capsys.readouterr().out  # the per-strategy table


@pytest.mark.slow
@needs_esconv
def test_relabel_labels_every_reply_again_and_keeps_the_rest(tmp_path, capsys):
    from socialsim.evaluate.readers import load_dialogues
    from socialsim.schema import read_dialogues, write_jsonl

    d = load_dialogues(ESCONV_DIR / "FailedESConv.json")[0]  # a real ESConv dialogue, declared strategies only
    d = d.model_copy(update={"turns": d.turns[:8]})
    src = tmp_path / "in.jsonl"
    write_jsonl([d], src)
    out = tmp_path / "relabelled.jsonl"
    main([str(src), "--relabel", "--labeller", "llm", "--model", "smollm2-135m", "--out", str(out)])
    (got,) = read_dialogues(out)
    replies = [t for t in d.turns if t.speaker == "supporter" and t.text.strip()]
    assert replies and all(t.realized_strategy is None for t in replies)
    assert [t.text for t in got.turns] == [t.text for t in d.turns]
    assert [t.strategy for t in got.turns] == [t.strategy for t in d.turns]
    labelled = [t for t in got.turns if t.speaker == "supporter" and t.realized_strategy is not None]
    said = capsys.readouterr().out
    assert f"'labelled': {len(labelled)}" in said and len(labelled) >= 1
    assert f"'unlabelled': {len(replies) - len(labelled)}" in said


def test_label_scores_report_chance_agreement_and_kappa():
    from socialsim.evaluate.strategy_agreement import label_scores

    q, r = LABELS[0], LABELS[2]
    # 3 of 4 agree, and labellers with these label frequencies would agree on half by chance
    s = label_scores([(r, r), (r, r), (q, r), (q, q)])
    assert s["accuracy"] == 0.75 and s["chance_agreement"] == 0.5
    assert s["kappa"] == 0.5
    assert label_scores([(r, r), (r, r)])["kappa"] is None  # one label only: kappa undefined
    assert label_scores([])["kappa"] is None


def test_relabel_refuses_bad_input_with_one_line_and_keeps_an_existing_out(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing.jsonl"), "--relabel", "--out", str(out)])
    assert e.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.jsonl" in err and "\n" not in err
    out.write_text("kept\n")
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing.jsonl"), "--relabel", "--out", str(out)])
    assert e.value.code == 2 and out.read_text() == "kept\n"
    assert "exists" in capsys.readouterr().err


def test_validation_refuses_a_missing_or_malformed_tsv_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("not\ta dev line\n")
    for tsv, says in ((tmp_path / "missing.tsv", "no such file"), (bad, "bad.tsv:1")):
        with pytest.raises(SystemExit) as e:
            main([str(tsv), "--model", "smollm2-135m"])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith("error:") and says in err and "\n" not in err
