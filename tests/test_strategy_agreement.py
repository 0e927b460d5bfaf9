"""The realized-strategy classifier's validation against ESConv's human labels, end to end on the real
dev TSV and the real (tiny) embedded model: the command a user runs to measure the classifier."""

import json

import pytest

from conftest import ESCONV_DIR
from socialsim.evaluate.strategy_agreement import LABELS, main, stratified_sample

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
    main([str(DEV_TSV), "--model", "smollm2-135m", "--per-strategy", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["sample_planned"] == report["sample_labelled"] == len(LABELS)
    assert sum(m["support"] for m in report["per_strategy"].values()) == len(LABELS)
    assert all(m["support"] == 1 for m in report["per_strategy"].values())
    assert 0.0 <= report["accuracy"] <= 1.0 and sum(map(sum, report["confusion"])) == len(LABELS)
    assert report["majority_baseline_dev"] > 0
    assert "P " in capsys.readouterr().out  # the per-strategy table
