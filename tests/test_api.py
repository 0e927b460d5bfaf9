"""The Python API (`socialsim.api`, re-exported at the package top) end to end on SmolLM2: simulate, reopen,
resume after a kill -9 and after a budget stop (from Python and from the command line), evaluate against
ESConv's dev file, tables for pandas and `datasets`, export, the safety screen, and bad input as the same
typed errors the command line prints as one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import socialsim
from conftest import ESCONV_DIR, one_line_error, run_cli
from socialsim.api import TURN_COLUMNS

TINY = socialsim.Backend.local("smollm2-135m")


def test_simulate_open_tables_evaluate_export(tmp_path, persona_file):
    out = tmp_path / "run"
    run = socialsim.simulate(2, backend=TINY, out=out, personas=persona_file, max_turns=2, progress=False)
    assert isinstance(run, socialsim.Run) and run.complete, run
    assert run.summary["dialogues_ok"] + run.summary["dialogues_failed"] == 2
    assert "2 of 2" not in repr(run) and "complete" in repr(run) and str(out) in repr(run)

    # the same run, reopened, as the CLI wrote it
    again = socialsim.open_run(out)
    on_disk = [json.loads(line) for line in (out / "dialogues.jsonl").read_text().splitlines()]
    assert [d.id for d in again.dialogues] == [d["id"] for d in on_disk]
    assert again.config["personas"] == str(persona_file.resolve())

    df = again.to_pandas()
    assert list(df.columns) == list(TURN_COLUMNS)
    assert len(df) == sum(len(d["turns"]) for d in on_disk)
    assert set(df["speaker"]) == {"seeker", "supporter"}
    sup = df[df.speaker == "supporter"]
    assert sup["strategy"].notna().all() and sup["realized_strategy"].notna().all()
    assert df[df.speaker == "seeker"]["safety_tier"].isin(["none", "check_in", "protocol"]).all()
    per_dialogue = again.to_pandas("dialogue")
    assert len(per_dialogue) == 2 and per_dialogue["turns"].sum() == len(df)
    ds = again.to_dataset()
    assert ds.num_rows == len(df) and ds.column_names == list(TURN_COLUMNS)
    assert "<table>" in again._repr_html_()

    bank = socialsim.load_personas(persona_file)
    assert len(bank) == 2 and list(bank.to_pandas()["name"]) == ["Maya", "Tom"]

    # 'esconv-dev' names ESConv's dev file in ../shared
    dev = ESCONV_DIR / "devWithStrategy_short.tsv"
    res = socialsim.evaluate(run, reference="esconv-dev", diversity="none", progress=False,
                             report_dir=tmp_path / "rep")
    table = res.to_pandas()
    assert list(table.index) == ["run", dev.name]
    assert table.loc["run", "dialogues"] == 2 and table.loc["run", "strategy_jsd"] > 0
    assert res.report["html"].is_file() and res.recognized is not None

    # SmolLM2's seekers slip often: keep the replies after a slip, or there may be no example at all
    meta = socialsim.export(run, tmp_path / "exp", formats=["sft", "jsonl"], include_flagged=True)
    assert meta is not None and meta["examples"]["train"] + meta["examples"]["validation"] > 0
    assert (tmp_path / "exp" / "train.jsonl").is_file() and (tmp_path / "exp" / "dialogues.jsonl").is_file()


def _done(out: Path) -> int:
    import sqlite3

    db = out / "run.sqlite"
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return c.execute("select count(*) from dialogues").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_resume_after_kill_and_after_a_budget(tmp_path, persona_file):
    # started from Python, killed with SIGKILL after its first dialogue, resumed from Python
    out = tmp_path / "killed"
    code = (
        "import socialsim\n"
        f"socialsim.simulate(3, backend=socialsim.Backend.local('smollm2-135m'), out={str(out)!r}, "
        f"personas={str(persona_file)!r}, max_turns=2, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while _done(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, "the run ended before it could be killed"
    before = _done(out)
    assert 1 <= before < 3
    run = socialsim.resume(out, progress=False)
    assert run.complete and len(run.dialogues) == 3

    # stopped by a token budget from Python, resumed by the command line: one run format
    out2 = tmp_path / "budget"
    uncached = socialsim.Backend.local("smollm2-135m", cache=False)  # the calls above are in the cache
    run2 = socialsim.simulate(2, backend=uncached, out=out2, personas=persona_file, max_turns=2, max_tokens=600,
                              progress=False)
    assert not run2.complete and "budget" in run2.unfinished
    r = run_cli("simulate", "--resume", out2, "--quiet")
    assert r.returncode == 0, r.stderr
    assert socialsim.open_run(out2).complete and len(socialsim.open_run(out2).dialogues) == 2


def test_async_and_inside_a_running_loop(tmp_path, persona_file):
    async def notebook_cell() -> tuple[socialsim.Run, socialsim.Run]:
        a = await socialsim.asimulate(1, backend=TINY, out=tmp_path / "a", personas=persona_file, max_turns=1,
                                      progress=False)
        # a plain call in a cell, where an event loop already runs
        b = socialsim.simulate(1, backend=TINY, out=tmp_path / "b", personas=persona_file, max_turns=1,
                               progress=False)
        return a, b

    a, b = asyncio.run(notebook_cell())
    assert a.complete and b.complete and len(a.dialogues) == len(b.dialogues) == 1


def test_bad_input_is_the_same_typed_error_as_the_cli(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "name": "A"}\n')
    with pytest.raises(socialsim.UserError) as e:
        socialsim.load_personas(bad)
    line = one_line_error(run_cli("simulate", "--personas", bad, "--n", "1", "--out", tmp_path / "o",
                                  "--model", "smollm2-135m"))
    assert str(e.value) in line
    assert not (tmp_path / "o").exists()

    with pytest.raises(socialsim.ParamError) as e:
        socialsim.simulate(0, backend=TINY, out=tmp_path / "z")
    assert e.value.param == "n"
    with pytest.raises(socialsim.ParamError) as e:
        socialsim.simulate(1, backend=TINY, out=tmp_path / "z", max_turns=0)
    assert e.value.param == "max_turns"
    with pytest.raises(socialsim.UserError, match="unknown embedded model 'nope'"):
        socialsim.simulate(1, backend=socialsim.Backend.local("nope"), out=tmp_path / "z")
    with pytest.raises(socialsim.ParamError, match="not a socialsim run"):
        socialsim.open_run(tmp_path)
    with pytest.raises(socialsim.ParamError, match="no such file"):
        socialsim.evaluate(tmp_path / "missing.jsonl")
    with pytest.raises(socialsim.ParamError, match="diversity"):
        socialsim.evaluate(tmp_path, diversity="lots")
    with pytest.raises(socialsim.ParamError, match="base_url"):
        socialsim.Backend.openai([], "m")
    with pytest.raises(socialsim.ParamError, match="history"):
        socialsim.screen("hello", history=[("therapist", "hi")])
    assert not (tmp_path / "z").exists()


def test_screen_tiers_and_the_way_out():
    layer = socialsim.api.safety_layer()
    urgent = "I have the pills here and I'm going to take them all tonight"
    d = socialsim.screen(urgent)
    assert (d.tier, d.category) == ("protocol", "suicide")
    assert socialsim.screen("My exam went badly and I'm annoyed with myself").tier == "none"
    # after the protocol reply, a denial ends it; a confirmation keeps it
    history = [("seeker", urgent), ("supporter", layer.protocol_reply(d))]
    out = socialsim.screen("No, I'm safe, I was exaggerating", history=history)
    assert (out.tier, out.stage) == ("none", "followup")
    assert socialsim.screen("yes", history=history).tier == "protocol"
