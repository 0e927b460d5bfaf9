"""The HTML report: every section present, self-contained, escaped; the JSON twin; a real screenshot."""

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import ESCONV_DIR
from socialsim.evaluate.judge import JudgeResults, PairwiseResult, PointwiseResult
from socialsim.evaluate.metrics import compare
from socialsim.evaluate.report import SECTIONS, build_report, write_report
from socialsim.schema import Strategy
from test_evaluate_metrics import corpus_of, dlg, tiny

pytest.importorskip("matplotlib")  # the [eval] extra draws the figures

CHROMIUM = Path("/usr/bin/chromium")
EVIL = '<script>alert("x")</script> & <b>bold</b>'


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.tags, self.links, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a)
        for k in ("src", "href"):
            if k in a:
                self.links.append(a[k])

    def handle_data(self, data):
        self.text.append(data)


def _judged(names):
    pts = [PointwiseResult(names[0], "d1", "esconv", scores={"fluency": 4, "overall": 3}, reasons={})]
    pts.append(PointwiseResult(names[0], "d2", "esconv", error="EsconvRubric output unparseable", raw="{oops"))
    pts.append(PointwiseResult(names[1], "r", "esconv", scores={"fluency": 2, "overall": 1}, reasons={}))
    prs = [
        PairwiseResult(
            "esconv",
            names[0],
            "d1",
            names[1],
            "r",
            first={"fluency": "A", "overall": "A"},
            second={"fluency": "B", "overall": "A"},
            outcome={"fluency": "win", "overall": "tie"},
            consistent={"fluency": True, "overall": False},
        )
    ]
    return JudgeResults("esconv", pts, prs, stats={"calls": 5})


def _report(tmp_path, judge=True):
    c = tiny()
    evil = dlg("evil", [("seeker", EVIL, None, 0), ("supporter", "ok " + EVIL, Strategy.QUESTION, None)])
    c.dialogues.insert(0, evil)
    c.meta.insert(0, c.meta[0])
    ref = corpus_of([dlg("r", [("seeker", "hi", None, None), ("supporter", "Hello?", Strategy.QUESTION, None)])], "ref")
    corpora = [c, ref]
    ms = compare(corpora, reference_index=1, diversity="none")
    page, data = build_report(ms, corpora, judge=_judged([c.name, ref.name]) if judge else None, samples=2)
    return page, data, write_report(tmp_path / "rep", page, data)


def test_report_has_every_section_and_is_self_contained(tmp_path):
    page, data, paths = _report(tmp_path)
    assert paths["html"].read_text() == page
    p = Page()
    p.feed(page)
    for sid, _ in SECTIONS:
        assert sid in p.ids, sid
    assert "script" not in p.tags  # the evil text is escaped, never a tag
    text = "".join(p.text)
    assert EVIL in text  # shown verbatim as text
    assert "&lt;script&gt;" in page
    for link in p.links:  # no server, no external assets: only in-page anchors and data: images
        assert link.startswith(("#", "data:image/png;base64,")), link
    assert len(p.imgs) >= 6  # strategies, transitions, lengths, coverage, disclosure, judge scores, pairwise
    for img in p.imgs:
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert "unparseable" in text and "{oops" in text  # failed verdicts are listed, not dropped
    assert "Corpus metrics" in text and "strategy JSD vs ref" in text


def test_report_json_twin(tmp_path):
    _, data, paths = _report(tmp_path)
    loaded = json.loads(paths["json"].read_text())
    assert loaded["corpora"] == ["tiny", "ref"]
    assert loaded["table"]["columns"] == ["metric", "tiny", "ref"]
    figs = loaded["figures"]
    for key in ("strategy_distribution", "strategy_transitions", "lengths", "problem_types", "disclosure_depth"):
        assert key in figs
    assert figs["strategy_distribution"]["reference"] == "ref"
    assert figs["strategy_distribution"]["series"]["ref"][0] == 1.0  # all Question
    assert sum(figs["lengths"]["utterances"]["series"]["tiny"]) == 3
    assert figs["pairwise"]["dimensions"]["fluency"] == {"win": 1, "tie": 0, "loss": 0, "inconsistent": 0}
    assert figs["judge_scores"]["tiny"]["failed"] == 1
    assert loaded["judge"]["failures"] == 1
    assert loaded["samples"][0]["dialogue"]["turns"][0]["text"] == EVIL


def test_report_without_judge_says_so(tmp_path):
    page, data, _ = _report(tmp_path, judge=False)
    p = Page()
    p.feed(page)
    assert "judge-scores" in p.ids and "pairwise" in p.ids
    assert "The LLM judge was not run" in "".join(p.text)
    assert data["judge"] is None


def test_evaluate_command_writes_the_report(tmp_path):
    from socialsim.schema import write_jsonl

    corpus = tmp_path / "sim.jsonl"
    write_jsonl(tiny().dialogues, corpus)
    refs = []
    if (ESCONV_DIR / "FailedESConv.json").is_file():
        refs = ["-r", str(ESCONV_DIR / "FailedESConv.json"), "-r", str(ESCONV_DIR / "devWithStrategy_short.tsv")]
    r = subprocess.run(
        [sys.executable, "-m", "socialsim.cli.evaluate", "evaluate", str(corpus), *refs, "--diversity", "none"]
        + ["--report", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "Corpus metrics" in r.stdout and "sim.jsonl" in r.stdout
    if refs:
        assert "FailedESConv.json" in r.stdout and "devWithStrategy_short.tsv" in r.stdout
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["corpora"][0] == "sim.jsonl"
    assert (tmp_path / "rep" / "report.html").stat().st_size > 20_000


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="headless Chromium is not installed (apt-get install chromium)")
def test_screenshot_in_headless_chromium(tmp_path):
    _, _, paths = _report(tmp_path)
    shot = tmp_path / "report.png"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1280,2400",
                paths["html"].resolve().as_uri(),
            ],
            capture_output=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.is_file(), "Chromium wrote no screenshot"
    assert _png_size(shot) == (1280, 2400)
    assert shot.stat().st_size > 50_000
    image = pytest.importorskip("matplotlib.image")
    pixels = image.imread(str(shot))
    assert pixels.std() > 0.05  # not a blank page
    colours = {tuple(px) for px in pixels[::20, ::20, :3].reshape(-1, 3).round(2).tolist()}
    assert len(colours) > 30  # text, tables and plots, not a flat error page


def test_fidelity_section_figures(tmp_path):
    from socialsim.evaluate.fidelity import corpus_fidelity
    from socialsim.schema import SeekerAppraisal

    q, r = Strategy.QUESTION, Strategy.REFLECTION
    d = dlg("f", [("seeker", "a", None, 0), ("supporter", "b", q, None), ("seeker", "c", None, 1),
                  ("supporter", "d", r, None), ("seeker", "e", None, 2)])
    d.turns[1].realized_strategy, d.turns[3].realized_strategy = q, Strategy.SUGGESTION
    d.turns[2].appraisal = SeekerAppraisal(felt_understood=4, judged_or_rushed=False, reply_did="asked",
                                           ready_to_say_more=True)
    d.turns[0].fidelity = {"leak": False, "drift": False, "leak_regenerations": 1}
    d.turns[2].fidelity = {"leak": False, "drift": True, "leak_regenerations": 0}
    f = corpus_fidelity([d])
    assert f["strategy_agreement"] == 0.5 and f["agreement_pairs"] == 2
    assert f["disclosure_curve"] == {1: 1.0, 2: 2.0} and f["mean_core_turn"] == 2 and f["reached_core"] == 1.0
    assert f["leak_rate"] == 0.5 and f["drift_rate"] == 0.5 and f["felt_understood"]["4"] == 1
    c = corpus_of([d], "sim")
    page, data = build_report(compare([c], diversity="none"), [c])
    assert data["fidelity"]["sim"]["confusion"][0][0] == 1
    p = Page()
    p.feed(page)
    assert "fidelity" in p.ids and any("strategy confusion" in i["alt"] for i in p.imgs)
