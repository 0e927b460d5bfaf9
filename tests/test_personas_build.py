"""The persona builder: its plan, its checks, its files, resuming after a kill, and a real run on
the embedded model."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from socialsim.io import repair_tail
from socialsim.personas.bank import load_personas
from socialsim.personas.builder import reason_kinds
from socialsim.personas.drafts import GENDER_WEIGHTS, PersonaDraft, draft_problems, make_plan, plan_slot
from socialsim.personas.stats import AGE_BANDS, age_band
from socialsim.schema import EmotionType, Persona, ProblemType

needs_embeddings = pytest.mark.skipif(
    __import__("importlib").util.find_spec("sentence_transformers") is None,
    reason="the builder's near-duplicate checks need the [eval] extra",
)


# -- plan ---------------------------------------------------------------------------------------------


def test_plan_is_stratified_seeded_and_prefix_stable():
    n = 27 * 15 * 2  # a whole number of blocks for problem type, emotion, age band and gender
    plan = make_plan(7, n)
    assert Counter(s.problem_type for s in plan) == {pt: n // 27 for pt in ProblemType}
    assert Counter(s.emotion_type for s in plan) == {e: n // 15 for e in EmotionType}
    assert Counter(s.age_band for s in plan) == {label: n // 6 for label, _, _ in AGE_BANDS}
    weight = sum(w for _, w in GENDER_WEIGHTS)
    assert Counter(s.gender for s in plan) == {g: n * w // weight for g, w in GENDER_WEIGHTS}
    assert all(age_band(s.age) == s.age_band for s in plan)
    # combinations vary: every age band meets every gender
    assert len({(s.age_band, s.gender) for s in plan}) == 6 * 3
    # slot i depends only on (seed, i): a longer plan starts with the shorter one
    assert make_plan(7, 40) == plan[:40] and plan_slot(7, 39) == plan[39]
    assert make_plan(8, 40) != plan[:40]
    # any prefix stays balanced: 27 slots cover every problem type once
    assert len({s.problem_type for s in plan[27:54]}) == 27


# -- checks ---------------------------------------------------------------------------------------------


def good_draft(**over):
    d = {
        "name": "Lena Hoffmann",
        "occupation": "bakery assistant",
        "situation": "Since my shop cut my hours in March I have been behind on rent, and I lie awake doing sums.",
        "surface": "Money's been a bit tight lately.",
        "context": "My landlord sent a second letter last week and I borrowed from my sister, which I hate doing.",
        "core": "I'm afraid I'll never be able to stand on my own feet.",
        "initial_intensity": 4,
        "talk_style": "short, a little guarded",
    }
    d.update(over)
    return PersonaDraft.model_validate(d)


def test_a_good_draft_passes():
    assert draft_problems(good_draft()) == []


@pytest.mark.parametrize(
    "over,kind",
    [
        ({"name": "The Seeker"}, "not a person's name"),
        ({"name": "Lena 2000"}, "not a person's name"),
        ({"surface": "{{10.5}}, #{{"}, "placeholder text"),
        ({"situation": "She's trying to decide what to do about her sister's pregnancy and her job."}, "first person"),
        ({"core": "The love comes from a place of empathy in spite of the pain."}, "first person"),
        ({"context": "Since my shop cut my hours in March I have been behind on rent, and I lie awake doing sums."},
         "repeat each other"),
        ({"occupation": "practicing yoga with a family in Los Angeles"}, "occupation"),
        ({"situation": "The seeker says I am sad and my rent is late and nobody cares about me at all."},
         "third person"),
        ({"context": "I am so so tired so so tired so so tired so so tired of it all, I really am."}, "degenerate"),
    ],
)  # fmt: skip
def test_bad_drafts_are_caught(over, kind):
    problems = draft_problems(good_draft(**over))
    assert problems, over
    assert any(kind in k for k in reason_kinds("; ".join(problems))), (problems, reason_kinds("; ".join(problems)))


def test_copying_the_example_is_caught():
    example = Persona.model_validate(
        {
            "id": "ex",
            "name": "Lena Hoffmann",
            "age": 30,
            "gender": "woman",
            "occupation": "nurse",
            "problem_type": "job crisis",
            "emotion_type": "fear",
            "initial_intensity": 3,
            "situation": "I was let go from the ward in May and I have not told my parents yet, not even my sister.",
            "disclosure": {
                "surface": "Work stuff.",
                "context": "Since May I apply every day.",
                "core": "I am a failure.",
            },
        }
    )
    assert draft_problems(good_draft(), example) == ["name copied from the example"]
    copied = good_draft(
        name="Mia Berg", context="My landlord wrote. I have not told my parents yet, not even my sister."
    )
    problems = draft_problems(copied, example)
    assert len(problems) == 1 and problems[0].startswith("context copies words from the example ('")
    assert reason_kinds("; ".join(problems)) == ["copied the prompt's example"]
    assert draft_problems(good_draft(name="Mia Berg"), example) == []


def test_repair_tail_cuts_only_a_torn_last_line(tmp_path):
    f = tmp_path / "out.jsonl"
    f.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    assert repair_tail(f) is True
    assert f.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_tail(f) is False and f.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    g = tmp_path / "torn-only.jsonl"
    g.write_bytes(b'{"x"')
    assert repair_tail(g) is True and g.read_bytes() == b""


# -- files and resume -----------------------------------------------------------------------------------


def build_cmd(out, *args):
    return [sys.executable, "-m", "socialsim.cli.personas", "build", "--out", str(out), "--quiet", *map(str, args)]


def lines(path):
    return [json.loads(ln) for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]


def wait_for_lines(paths, k, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        have = sum(len(Path(p).read_bytes().splitlines()) for p in paths if Path(p).exists())
        if have >= k:
            return have
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {k} lines after {timeout} s")


@needs_embeddings
def test_resume_after_kill_against_load_target(tmp_path, load_target):
    """Fault and speed stand-in: the load target answers every persona request with JSON of another
    schema, so every slot is rejected after its attempts, fast. Kill -9 mid-build, tear the last
    line, resume: every slot ends up exactly once, nothing torn, nothing lost but slots in flight."""
    t = load_target("--latency", "0.02", "--capacity", "8")
    out = tmp_path / "built.jsonl"
    rej, prog = Path(f"{out}.rejects.jsonl"), Path(f"{out}.progress.json")
    args = ["--n", 60, "--backend", "openai", "--base-url", t.base_url, "--model", "load-target", "--attempts", 2]
    args += ["--concurrency", 4, "--no-cache", "--seed", 3]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(build_cmd(out, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_lines([rej], 12, proc, timeout=180)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = lines(rej)  # every line written before the kill is whole
    assert 12 <= len(first) < 60
    assert prog.exists() and json.loads(prog.read_text())["finished"] is False
    with rej.open("a") as f:  # a torn last line, as a power cut could leave
        f.write('{"slot": 59, "problem_t')
    r = subprocess.run(build_cmd(out, *args), capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "torn last lines cut on resume" in r.stdout
    rows = lines(rej)
    assert sorted(row["slot"] for row in rows) == list(range(60))  # each slot exactly once
    assert rows[: len(first)] == first  # earlier lines kept as they were
    for row in rows:
        assert row["problem_type"] == plan_slot(3, row["slot"]).problem_type.value
        assert len(row["attempts"]) == 2
        assert all(a["reason"].startswith("unparseable: PersonaDraft") and a["raw"] for a in row["attempts"])
    assert out.read_text() == ""
    state = json.loads(prog.read_text())
    assert state["finished"] is True and state["rejected"] == 60 and state["accepted"] == 0
    resumed = re.search(r"resumed from earlier sessions\D+(\d+)", r.stdout)
    assert resumed and int(resumed.group(1)) >= len(first), r.stdout
    # a different config is refused, and nothing is touched
    before = rej.read_bytes()
    bad = subprocess.run(build_cmd(out, *args[:-2], "--seed", 4), capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "another config" in bad.stderr and "seed 3 → 4" in bad.stderr
    assert len([ln for ln in bad.stderr.splitlines() if ln.strip()]) == 1
    assert rej.read_bytes() == before
    # a finished build run again makes no calls
    calls = t.stats()["requests"]
    again = subprocess.run(build_cmd(out, *args), capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and t.stats()["requests"] == calls


# -- the real embedded model ------------------------------------------------------------------------------


@pytest.mark.slow
@needs_embeddings
def test_build_end_to_end_on_the_embedded_model(local_backend, tmp_path):
    """SmolLM2-135M writes poor personas: the run must still finish, every slot must end up accepted
    or rejected with reasons, and the validation/retry path must have been exercised for real."""
    from socialsim.llm import LLM
    from socialsim.personas.builder import build_personas

    llm = LLM(local_backend)
    out = tmp_path / "built.jsonl"
    t0 = time.monotonic()
    # seed 4: on this model (deterministic per seed) its 3 slots give accepted and rejected drafts both
    result = build_personas(llm, 3, out, seed=4, show_progress=False)
    wall = time.monotonic() - t0
    s = result.stats
    assert s.accepted + s.rejected == 3 and s.done == 3
    assert s.accepted >= 1  # the accept path ran on real output
    assert s.attempts > s.accepted  # some drafts failed validation and were retried or rejected
    assert s.retries >= 1 and sum(s.reasons.values()) >= s.attempts - s.accepted
    accepted = load_personas(out) if s.accepted else []
    rejected = lines(result.rejects)
    assert len(accepted) == s.accepted and len(rejected) == s.rejected
    slots = sorted([int(p.id.rsplit("-", 1)[1]) for p in accepted] + [row["slot"] for row in rejected])
    assert slots == [0, 1, 2]
    for p in accepted:
        slot = plan_slot(4, int(p.id.rsplit("-", 1)[1]))
        assert (p.problem_type, p.emotion_type, p.age, p.gender) == (
            slot.problem_type,
            slot.emotion_type,
            slot.age,
            slot.gender,
        )
        assert (
            isinstance(p, Persona)
            and draft_problems(
                PersonaDraft(
                    name=p.name,
                    occupation=p.occupation,
                    situation=p.situation,
                    surface=p.disclosure.surface,
                    context=p.disclosure.context,
                    core=p.disclosure.core,
                    initial_intensity=p.initial_intensity,
                    talk_style=p.talk_style,
                )
            )
            == []
        )
    for row in rejected:
        assert len(row["attempts"]) == 3 and all(a["reason"] for a in row["attempts"])
    state = json.loads(result.progress.read_text())
    assert state["finished"] is True and state["config"]["backend"]["model"] == "SmolLM2-135M-Instruct"
    print(
        f"\nembedded build: {s.accepted} accepted, {s.rejected} rejected, {s.attempts} attempts in {wall:.0f} s "
        f"({60 * 3 / wall:.2f} slots/min, {60 * s.accepted / wall:.2f} accepted/min); reasons {s.reasons}"
    )


@pytest.mark.slow
@needs_embeddings
def test_build_resumes_after_kill_on_the_embedded_model(tmp_path):
    """Kill -9 the real build after its first finished slot, resume, then replay the whole build
    uninterrupted from the call cache: the resumed output equals the uninterrupted one."""
    out = tmp_path / "killed.jsonl"
    args = ["--n", 2, "--seed", 5, "--attempts", 2, "--model", "smollm2-135m"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # SOCIALSIM_CACHE_DIR is the test's own (conftest)
    proc = subprocess.Popen(build_cmd(out, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    rej = Path(f"{out}.rejects.jsonl")
    try:
        wait_for_lines([out, rej], 1, proc, timeout=400)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = len(lines(out)) + len(lines(rej))
    assert done_before >= 1
    r = subprocess.run(build_cmd(out, *args), capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    got = sorted([int(p["id"].rsplit("-", 1)[1]) for p in lines(out)] + [row["slot"] for row in lines(rej)])
    assert got == [0, 1]
    assert json.loads(Path(f"{out}.progress.json").read_text())["finished"] is True
    replay = tmp_path / "replay.jsonl"
    r2 = subprocess.run(build_cmd(replay, *args), capture_output=True, text=True, env=env, timeout=600)
    assert r2.returncode == 0, r2.stderr
    assert replay.read_text() == out.read_text()
    assert Path(f"{replay}.rejects.jsonl").read_text() == rej.read_text()
