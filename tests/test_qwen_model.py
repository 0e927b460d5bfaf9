"""The default embedded model, qwen2.5-1.5b, as itself: `socialsim demo` (one dialogue, 3 supporter turns)
must stream its turns as they are made and give a dialogue worth keeping; a simulate run with --fidelity
must write appraisals, realized strategies and fidelity checks. These checks fail on the
nonsense a too-small model writes (unparseable thoughts, prompt text in replies, a seeker who keeps
falling out of role, replies unrelated to the seeker's story).
About 4-5 minutes for the demo and 3-5 for the run on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from itertools import pairwise

import pytest

from socialsim.agents.seeker import content_words
from socialsim.agents.supporter import prompt_leak
from socialsim.schema import read_dialogues

pytestmark = pytest.mark.slow


def test_demo_on_qwen_streams_a_coherent_dialogue(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "socialsim.cli", "demo", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    t0 = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        arrivals.append((time.monotonic() - t0, line.rstrip("\n")))
    assert proc.wait(timeout=900) == 0, proc.stderr.read()  # type: ignore[union-attr]
    total = time.monotonic() - t0
    text = "\n".join(x for _, x in arrivals)

    # streamed: the first seeker line came long before the end, and turns arrived one by one
    seeker_lines = [t for t, x in arrivals if x.startswith("Seeker")]
    supporter_lines = [t for t, x in arrivals if x.startswith("Supporter")]
    assert seeker_lines and supporter_lines, text
    assert seeker_lines[0] < 0.6 * total, (seeker_lines, total)
    assert len(set(round(t) for t in supporter_lines)) == len(supporter_lines) == 3, text
    assert text.count("thought:") == 3 and "model qwen2.5-1.5b" in text

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["name"] == "qwen2.5-1.5b"
    assert manifest["model"]["sha256"] == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"

    (d,) = read_dialogues(out / "dialogues.jsonl")
    assert d.status == "ok" and d.model == "Qwen2.5-Coder-1.5B-Instruct"
    sup = [t for t in d.turns if t.speaker == "supporter"]
    seek = [t for t in d.turns if t.speaker == "seeker"]
    assert len(sup) == 3 and all(t.thought is not None for t in sup)
    assert all(t.thought.strategy == t.strategy for t in sup)
    # no prompt text in what is kept; a leak caught and regenerated is the check at work (one in three replies
    # did on 2026-12-06, once the seeker's lines changed with the role check), more would be a broken prompt
    assert sum(t.leaks for t in sup) <= 1 and all(prompt_leak(t.text) is None for t in sup), [t.text for t in sup]
    assert sum(t.role_fallback for t in seek) <= 1, [t.text for t in seek]
    p = d.persona
    story = content_words(
        " ".join([p.situation, p.disclosure.surface, p.disclosure.context, p.disclosure.core, *(t.text for t in seek)])
    )
    on_topic = [bool(content_words(t.text) & story) for t in sup]
    assert sum(on_topic) >= 2, [t.text for t in sup]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["thoughts"] == 3 and summary["supporter_leaks"] == sum(t.leaks for t in sup)
    print(f"\ndemo on qwen2.5-1.5b: {total:.0f} s; summary {summary}")
    print("\n".join(f"{t:6.1f}s {x}" for t, x in arrivals))  # the transcript as it arrived (pytest -s)


def test_simulate_on_qwen_writes_appraisals_realized_strategies_and_fidelity(tmp_path):
    """The issue's end-to-end run on the 1.5B model: with the observed disclosure policy plus appraisals and
    --fidelity, every supporter reply has a realized strategy, every seeker turn after a reply carries the
    seeker's appraisal, every seeker turn its fidelity check, and the summary their rates."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "socialsim.cli", "simulate", "--model", "qwen2.5-1.5b", "--n", "1",
         "--max-turns", "2", "--fidelity", "--disclosure", "observed+appraisal", "--out", str(out)],
        capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (d,) = read_dialogues(out / "dialogues.jsonl")
    sup = [t for t in d.turns if t.speaker == "supporter"]
    seek = [t for t in d.turns if t.speaker == "seeker"]
    assert len(sup) == 2 and all(t.realized_strategy is not None for t in sup)
    after_reply = [t for prev, t in pairwise(d.turns) if t.speaker == "seeker" and prev.speaker == "supporter"]
    assert len(after_reply) == 2 and all(t.appraisal is not None for t in after_reply)
    assert all(1 <= t.appraisal.felt_understood <= 5 for t in after_reply)
    assert all(isinstance(t.fidelity, dict) and {"leak", "drift"} <= set(t.fidelity) for t in seek)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["appraisals"] == 2 and summary["realized_labelled"] == 2
    assert 0 <= summary["strategy_agreement"] <= 1 and summary["seeker_turns"] == len(seek)
    assert {"leak_rate", "drift_rate", "role_fallback_rate"} <= set(summary)
