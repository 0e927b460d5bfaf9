"""The strategy recognizer wherever the project labels or checks a reply, end to end with the real model (the
shipped one, or the directory $SOCIALSIM_STRATEGY_MODEL names) and real commands: `simulate` stores each reply's
realized strategy with its probabilities; `evaluate` labels any corpus (distribution, Jensen-Shannon distance to
ESConv, declared vs recognized agreement); `chatbot-eval responses` scores a chatbot's realized strategies against
ESConv's gold ones; `filter --strategy-agreement` and `--relabel` use it by default; a missing or corrupt model is
one line and exit 2."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import USER_MODELS_DIR, one_line_error, run_cli
from socialsim.evaluate.recognized import GOLD, REFERENCE, js_distance
from socialsim.recognize.strategy import MODEL_ENV, default_model_dir, default_recognizer
from socialsim.schema import SimulationConfig, Strategy, read_dialogues

LABELS = {s.value for s in Strategy}


def model_dir() -> Path:
    """The recognizer the suite runs with: the shipped one unless $SOCIALSIM_STRATEGY_MODEL names another."""
    return Path(os.environ.get(MODEL_ENV) or default_model_dir())


def context_of(turns, j):
    return [(t.speaker, t.text) for t in turns[:j]]


def esconv_json(path: Path) -> Path:
    """Two ESConv-schema dialogues with human strategy annotations (older label spellings included)."""
    dialogues = [
        {"problem_type": "academic pressure", "emotion_type": "anxiety", "situation": "Finals are close.",
         "dialog": [
             {"speaker": "seeker", "content": "I have finals next week and I can't focus at all."},
             {"speaker": "supporter", "content": "How long have you been feeling this way?",
              "annotation": {"strategy": "Question"}},
             {"speaker": "seeker", "content": "Since I failed my midterm. I need an A to keep my scholarship."},
             {"speaker": "supporter", "content": "It sounds like you are really scared of losing it.",
              "annotation": {"strategy": "Reflection of feelings"}},
             {"speaker": "seeker", "content": "Yes, and my parents would be so disappointed."},
             {"speaker": "supporter", "content": "Maybe you could make a study plan and ask your professor for help.",
              "annotation": {"strategy": "Providing Suggestions"}},
         ]},
        {"problem_type": "job crisis", "emotion_type": "fear", "situation": "Laid off.",
         "dialog": [
             {"speaker": "seeker", "content": "I lost my job yesterday."},
             {"speaker": "supporter", "content": "I'm so sorry. What happened?",
              "annotation": {"strategy": "Questions"}},
             {"speaker": "seeker", "content": "They cut the whole team. I don't know how to pay rent."},
             {"speaker": "supporter", "content": "You did nothing wrong, and you will get through this.",
              "annotation": {"strategy": "Affirmation and Reassurance"}},
             {"speaker": "seeker", "content": "Thanks. I guess I just feel lost."},
             {"speaker": "supporter", "content": "I was laid off once too, and it felt the same for me.",
              "annotation": {"strategy": "Self-disclosure"}},
         ]},
    ]
    path.write_text(json.dumps(dialogues))
    return path


def ssconv_json(path: Path) -> Path:
    """A tiny corpus in SSConv's schema: free-text reasoning, no strategy labels."""
    rows = [{"ID": 1, "Dialogue": [
        {"Turn": 1, "Seeker": "I failed my exam and I feel terrible."},
        {"Turn": 2, "Supporter Step by Step Reasoning": "The seeker is sad; ask what happened.",
         "Supporter": "That sounds really hard. How long have you been preparing for it?"},
        {"Turn": 3, "Seeker": "For months. My parents will be so disappointed."},
        {"Turn": 4, "Supporter Step by Step Reasoning": "Validate, then suggest talking to them.",
         "Supporter": "It makes sense that you feel worried. Maybe you could tell them how hard you worked."},
    ]}]  # fmt: skip
    path.write_text(json.dumps(rows))
    return path


# -- simulate ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    """One SmolLM2 dialogue (n=1, 2 supporter turns) with the default realized-strategy labeller."""
    root = tmp_path_factory.mktemp("recognized-run")
    out = root / "run"
    env = {"SOCIALSIM_CACHE_DIR": str(root / "cache"), "SOCIALSIM_MODELS_DIR": USER_MODELS_DIR}
    r = run_cli("simulate", "--model", "smollm2-135m", "--n", "1", "--max-turns", "2", "--disclosure", "strategy-rule",
                "--out", out, "-q", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_simulate_stores_each_replys_recognized_strategy_and_probabilities(sim_run):
    (d,) = read_dialogues(sim_run / "dialogues.jsonl")
    manifest = json.loads((sim_run / "manifest.json").read_text())
    assert manifest["config"]["realized_strategy"] == "recognizer"
    replies = [(j, t) for j, t in enumerate(d.turns) if t.speaker == "supporter" and not (t.risk_reason or "")
               .startswith("protocol:")]  # fmt: skip
    assert replies
    rec = default_recognizer()
    for j, t in replies:
        assert t.realized_strategy is not None and "realized_strategy" not in t.label_failures
        assert set(t.realized_probs) == LABELS and abs(sum(t.realized_probs.values()) - 1) < 1e-3
        assert max(t.realized_probs, key=t.realized_probs.get) == t.realized_strategy.value
        # the stored label is the recognizer's on this reply with the dialogue's turns before it as context
        again = rec.predict_one(t.text, context_of(d.turns, j))
        assert again.strategy == t.realized_strategy
        assert all(abs(again.as_json()[k] - v) < 2e-3 for k, v in t.realized_probs.items())
    summary = json.loads((sim_run / "summary.json").read_text())
    assert summary["realized_labelled"] == sum(1 for _, t in replies if t.strategy is not None)
    assert summary["calls"] == sum(t.calls for t in d.turns)  # no LLM call for the labels


def test_evaluate_a_run_compares_declared_with_recognized_strategies(sim_run, tmp_path):
    r = run_cli("evaluate", sim_run, "--diversity", "none", "--report", tmp_path / "rep", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    (d,) = read_dialogues(sim_run / "dialogues.jsonl")
    both = [t for t in d.turns if t.speaker == "supporter" and t.strategy is not None]
    got = data["recognized"]["corpora"]["run"]
    assert got["declared_labels"] == "supporter" and got["agreement"]["n"] == len(both)
    agree = sum(t.strategy == t.realized_strategy for t in both) / len(both)
    assert got["agreement"]["accuracy"] == round(agree, 4)  # the recognizer gives the run's labels again
    assert data["fidelity"]["run"]["realized_by"] == "recognizer"
    assert data["fidelity"]["run"]["strategy_agreement"] == got["agreement"]["accuracy"]


def test_old_run_configs_keep_their_hash_and_their_labeller():
    """Manifests from before the recognizer hold realized_strategy true/false: they read as 'llm'/'off' and hash
    as before, so their dialogue ids (derived from the hash) stay and the run resumes unchanged."""
    new = SimulationConfig(personas="default", personas_sha256="x", n=1)
    assert new.realized_strategy == "recognizer"
    for legacy, mode in ((True, "llm"), (False, "off")):
        # an old manifest: no strategy_check, no seeker_format (added later; 0 and 'transcript' hashed as if absent)
        later = ("strategy_check", "seeker_format")
        fields = {k: v for k, v in new.model_dump(mode="json").items() if k not in later}
        old = {**fields, "realized_strategy": legacy}
        old_hash = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
        back = SimulationConfig.model_validate(old)
        assert back.realized_strategy == mode and back.config_hash() == old_hash
    assert new.config_hash() != SimulationConfig.model_validate({**old, "realized_strategy": "llm"}).config_hash()
    with pytest.raises(ValueError):
        SimulationConfig.model_validate({**old, "realized_strategy": "sometimes"})


def test_resuming_an_old_run_keeps_the_llm_classifier(tmp_path):
    from socialsim.errors import UserError
    from socialsim.simulate.engine import file_sha256, personas_path
    from socialsim.simulate.run import resume_config
    from socialsim.simulate.store import RunStore

    sim = SimulationConfig(personas="default", personas_sha256=file_sha256(personas_path("default")), n=1)
    old = {**sim.model_dump(mode="json"), "realized_strategy": True}
    store = RunStore.create(tmp_path / "run", old, SimulationConfig.model_validate(old).config_hash())
    try:
        assert resume_config(store, changes={"realized_strategy": None}).realized_strategy == "llm"
        assert resume_config(store, changes={"realized_strategy": "llm"}).realized_strategy == "llm"
        with pytest.raises(UserError, match="realized_strategy llm → recognizer"):
            resume_config(store, changes={"realized_strategy": "recognizer"})
    finally:
        store.close()


# -- evaluate ------------------------------------------------------------------------------------------------


def test_evaluate_labels_an_unlabelled_ssconv_corpus(tmp_path):
    src = ssconv_json(tmp_path / "ss.json")
    r = run_cli("evaluate", src, "--diversity", "none", "--report", tmp_path / "rep", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    got = data["recognized"]["corpora"]["ss.json"]
    assert got["replies"] == 2 and sum(got["counts"].values()) == 2
    assert set(got["distribution"]) == LABELS and abs(sum(got["distribution"].values()) - 1) < 1e-3
    assert got["declared_labels"] is None and got["agreement"] is None  # SSConv has no strategy labels
    ref = default_recognizer().meta["distribution"]
    assert data["recognized"]["recognizer"]["reference"][REFERENCE] == ref[REFERENCE]
    assert got["js_distance_esconv"] == js_distance(got["distribution"], ref[REFERENCE])
    assert got["js_distance_esconv_gold"] == js_distance(got["distribution"], ref[GOLD])
    assert 0 <= got["js_distance_esconv"] <= 1
    html = (tmp_path / "rep" / "report.html").read_text()
    assert 'id="recognized"' in html and "JS distance to ESConv as recognized" in html
    assert "recognized strategy distribution" in html  # the figure
    assert "JS distance to ESConv (as recognized)" in r.stdout  # the terminal table


def test_evaluate_esconv_annotations_reports_the_recognizers_agreement_with_humans(tmp_path):
    src = esconv_json(tmp_path / "esconv.json")
    r = run_cli("evaluate", src, "--diversity", "none", "--report", tmp_path / "rep", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    got = data["recognized"]["corpora"]["esconv.json"]
    assert got["declared_labels"] == "human" and got["replies"] == 6
    a = got["agreement"]
    assert a["n"] == 6 and {"accuracy", "chance_agreement", "kappa", "macro_f1", "confusion"} <= set(a)
    assert sum(map(sum, a["confusion"])) == 6 and sum(a["confusion"][0]) == 2  # two human 'Question' rows
    assert 0 <= a["accuracy"] <= 1 and 0 <= a["chance_agreement"] <= 1
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "recognizer&#39;s accuracy against human labels" in html
    assert 'alt="strategy confusion esconv.json"' in html


def test_evaluate_without_the_recognizer_says_so(tmp_path):
    src = ssconv_json(tmp_path / "ss.json")
    r = run_cli("evaluate", src, "--diversity", "none", "--no-recognize", "--report", tmp_path / "rep", "-q",
                env={MODEL_ENV: str(tmp_path / "no-model")})  # not needed, so never loaded
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["recognized"] is None
    assert "The strategy recognizer did not run" in (tmp_path / "rep" / "report.html").read_text()


# -- filter and relabel --------------------------------------------------------------------------------------


def test_filter_strategy_agreement_labels_replies_with_the_recognizer(tmp_path):
    src = esconv_json(tmp_path / "esconv.json")
    out = tmp_path / "kept.jsonl"
    r = run_cli("filter", src, "--out", out, "--strategy-agreement", "turns")
    assert r.returncode == 0, r.stderr[-2000:]
    kept = read_dialogues(out)
    replies = [t for d in kept for t in d.turns if t.speaker == "supporter"]
    assert all(t.realized_probs is not None and t.realized_strategy == t.strategy for t in replies)
    from socialsim.evaluate.readers import load_corpus

    rec = default_recognizer()  # the kept replies are those the recognizer labels as declared
    expected = sum(
        rec.predict_one(t.text, context_of(d.turns, j)).strategy == t.strategy
        for d in load_corpus(src).dialogues for j, t in enumerate(d.turns) if t.speaker == "supporter"
    )  # fmt: skip
    assert len(replies) == expected
    one_line_error(run_cli("filter", src, "--out", out, "--strategy-agreement", "turns", "--strategy-labeller", "x"),
                   "--strategy-labeller")  # fmt: skip


def test_relabel_uses_the_recognizer_by_default(tmp_path):
    src = esconv_json(tmp_path / "esconv.json")
    out = tmp_path / "relabelled.jsonl"
    r = run_cli("strategy-agreement", src, "--relabel", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    got = read_dialogues(out)
    replies = [t for d in got for t in d.turns if t.speaker == "supporter"]
    assert len(replies) == 6 and all(set(t.realized_probs or {}) == LABELS for t in replies)
    assert "'labelled': 6" in r.stdout


# -- chatbot-eval --------------------------------------------------------------------------------------------


TSV_LINES = [
    "1.0 0 0 I lost my job and I feel lost. EOS 1.0 1 1 [Question] What happened at work?",
    "1.0 0 0 I lost my job and I feel lost. EOS 1.0 1 1 [Question] What happened at work? EOS 1.0 0 2 They cut "
    "the whole team and I can't pay rent. EOS 1.0 1 3 [Affirmation and Reassurance] You did nothing wrong; "
    "you will get through this.",
]


@pytest.mark.slow
def test_chatbot_eval_scores_realized_strategies_against_esconv_gold(tmp_path):
    tsv = tmp_path / "contexts.tsv"
    tsv.write_text("\n".join(TSV_LINES) + "\n")
    out = tmp_path / "hyp.jsonl"
    r = run_cli("chatbot-eval", "responses", "--contender", "base=local:smollm2-135m:plain", "--contexts", tsv,
                "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    gold = ["Question", "Affirmation and Reassurance"]
    assert len(rows) == 2 and all(set(x["realized_probs"]) == LABELS for x in rows if x["response"].strip())
    m = json.loads((tmp_path / "hyp.jsonl.metrics.json").read_text())["realized_strategy"]
    scored = [(g, x["realized_strategy"]) for g, x in zip(gold, rows, strict=True) if x["response"].strip()]
    assert m["n"] == len(scored) >= 1
    assert m["accuracy"] == round(sum(g == p for g, p in scored) / len(scored), 4)
    assert {"kappa", "macro_f1", "chance_agreement"} <= set(m)
    assert "realized strategy vs gold accuracy" in r.stdout


# -- a missing or corrupt model --------------------------------------------------------------------------------


@pytest.fixture
def broken_models(tmp_path):
    missing = tmp_path / "missing"
    bad_meta = tmp_path / "bad-meta"
    bad_meta.mkdir()
    (bad_meta / "meta.json").write_text("{not json")
    (bad_meta / "model.safetensors").write_bytes(b"junk")
    bad_weights = tmp_path / "bad-weights"
    bad_weights.mkdir()
    shutil.copy(model_dir() / "meta.json", bad_weights / "meta.json")
    (bad_weights / "model.safetensors").write_bytes(b"\x00" * 64)
    return {missing: "meta.json", bad_meta: "not a strategy recognizer", bad_weights: "unreadable"}


def test_a_missing_or_corrupt_model_is_one_line_and_exit_2(tmp_path, broken_models):
    src = ssconv_json(tmp_path / "ss.json")
    for model, says in broken_models.items():
        env = {MODEL_ENV: str(model)}
        one_line_error(run_cli("evaluate", src, "--diversity", "none", "--report", tmp_path / "rep", env=env),
                       str(model), says)  # fmt: skip
        one_line_error(run_cli("filter", src, "--out", tmp_path / "k.jsonl", "--strategy-agreement", "turns",
                               env=env), str(model), says)  # fmt: skip
    model, says = next(iter(broken_models.items()))
    env = {MODEL_ENV: str(model)}
    out = tmp_path / "run"
    one_line_error(run_cli("simulate", "--model", "smollm2-135m", "--n", "1", "--out", out, env=env), says)
    assert not out.exists()  # refused before anything was written
    r = run_cli("strategy-agreement", src, "--relabel", "--out", tmp_path / "o.jsonl",
                       env=env)  # fmt: skip
    one_line_error(r, says)
    assert not (tmp_path / "o.jsonl").exists()
