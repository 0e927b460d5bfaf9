"""The recognizers as shipped: the strategy recognizer reproduces its documented figures on ESConv valid,
the build script learns, the role check's two rates hold on their test sets, and bad model files are
one clear error. Reads ESConv from ../shared (never copied into the repo)."""

from __future__ import annotations

import json

import pytest

from conftest import ESCONV_DIR
from socialsim.errors import UserError
from socialsim.recognize.strategy import LABELS, StrategyRecognizer, context_text, default_model_dir
from socialsim.recognize.strategy_build import _scores, build, load_examples
from socialsim.recognize.voice import VoiceRecognizer, default_model_path

TRAIN = ESCONV_DIR / "splits" / "train.jsonl"
VALID = ESCONV_DIR / "splits" / "valid.jsonl"


@pytest.fixture(scope="module")
def shipped():
    return StrategyRecognizer.load()


@pytest.fixture(scope="module")
def valid_preds(shipped):
    va = load_examples(VALID)
    return va, shipped.predict([e[0] for e in va], [e[1] for e in va])


@pytest.fixture(scope="module")
def valid_scores(valid_preds):
    va, preds = valid_preds
    index = {s: i for i, s in enumerate(LABELS)}
    probs = [[p.probs[s] for s in LABELS] for p in preds]
    return _scores([e[2] for e in va], [index[p.strategy] for p in preds], probs)


def test_shipped_recognizer_reproduces_its_valid_figures(shipped, valid_scores):
    doc = shipped.meta["validation"]
    assert valid_scores["n"] == doc["n"] == 2722
    for key in ("accuracy", "macro_f1", "kappa", "top2_accuracy"):
        assert abs(valid_scores[key] - doc[key]) <= 0.01, key
    for s in LABELS:
        assert abs(valid_scores["per_strategy"][s.value]["f1"] - doc["per_strategy"][s.value]["f1"]) <= 0.01, s


def test_shipped_strategy_check_reproduces_its_calibration(shipped, valid_preds):
    """The strategy check's file (``socialsim build strategy-check``) is what calibrating the shipped recognizer on
    valid gives: per strategy, the threshold at which at most 10 % of the human replies with that gold label fail."""
    from socialsim.recognize.strategy_check import calibrate, default_check_path

    shipped_check = json.loads(default_check_path().read_text())
    again = calibrate(VALID, recognizer=shipped, predictions=valid_preds[1])
    assert again["calibrated_on"]["sha256"] == shipped_check["calibrated_on"]["sha256"]
    for label, row in shipped_check["per_strategy"].items():
        assert abs(again["per_strategy"][label]["threshold"] - row["threshold"]) <= 0.002, label
        assert again["per_strategy"][label]["fail_rate"] <= 0.10 + 0.01, label
    assert again["human_fail_rate"] <= 0.10
    assert again["esconv_words"] == shipped_check["esconv_words"]


def test_shipped_recognizer_beats_the_floor(valid_scores, shipped):
    """Far above the majority class and the frozen-embedding probe (accuracy 0.48, macro-F1 0.41)."""
    assert valid_scores["accuracy"] > 0.5 > shipped.meta["validation"]["majority_class_accuracy"]
    assert valid_scores["macro_f1"] > 0.45
    assert min(valid_scores["per_strategy"][s.value]["f1"] for s in LABELS) >= 0.25


@pytest.mark.xfail(strict=True, reason="issue 25 targets not met: accuracy 0.583, macro-F1 0.531, min F1 0.306")
def test_shipped_recognizer_meets_the_issue_targets(valid_scores):
    assert valid_scores["accuracy"] >= 0.60
    assert valid_scores["macro_f1"] >= 0.55
    assert min(valid_scores["per_strategy"][s.value]["f1"] for s in LABELS) >= 0.35


def test_shipped_recognizer_states_its_data_small_and_offline(shipped):
    meta = shipped.meta
    assert meta["trained_on"]["file"] == "train.jsonl" and "CC BY-NC 4.0" in meta["trained_on"]["license"]
    assert meta["validated_on"]["file"] == "valid.jsonl"
    size = sum(f.stat().st_size for f in default_model_dir().iterdir())
    assert size <= 10 * 1024 * 1024
    p = shipped.predict_one("Have you tried talking to your manager about it?", [("seeker", "My boss ignores me.")])
    assert p.strategy in LABELS and abs(sum(p.probs.values()) - 1) < 1e-4
    assert set(p.as_json()) == {s.value for s in LABELS}
    # the same text gives the same probabilities, alone or in a batch
    again = shipped.predict(["Have you tried talking to your manager about it?", "Hello!"],
                            [[("seeker", "My boss ignores me.")], []])[0]
    assert again.strategy == p.strategy and abs(again.confidence - p.confidence) < 1e-4


def test_build_script_learns_above_the_majority_class(tmp_path):
    meta = build(tmp_path / "rec", TRAIN, VALID, epochs=3, limit=500, lr=3e-4, log=lambda *_: None)
    v = meta["validation"]
    assert v["n"] == 500
    assert v["accuracy"] > v["majority_class_accuracy"] + 0.05
    assert (tmp_path / "rec" / "model.safetensors").stat().st_size < 10 * 1024 * 1024
    # the run-time loader reads what the build wrote
    assert StrategyRecognizer.load(tmp_path / "rec").meta["settings"]["limit"] == 500
    # and, with the LoRA adapters merged into the base weights (float16), labels valid as the trained model did
    assert meta["lora"]["rank"] == 16 and meta["top_layers"] == []
    kept = next(h for h in meta["history"] if h["epoch"] == meta["settings"]["kept_epoch"])
    assert abs(kept["valid_accuracy"] - v["accuracy"]) <= 0.01 and abs(kept["valid_macro_f1"] - v["macro_f1"]) <= 0.01


def test_build_records_the_context_it_read_and_the_loader_reads_the_same(tmp_path):
    # an example carries every utterance before the reply; the model reads as many as it was built with
    ex = load_examples(VALID, 300)
    assert max(len(e[1]) for e in ex) > 4
    assert max(context_text(e[1], 4).count(" | ") + 1 for e in ex) == 4
    assert ex[-1][1] and context_text(ex[-1][1], 0) == context_text([])
    meta = build(tmp_path / "rec", TRAIN, VALID, epochs=1, limit=300, lora_rank=0, context_turns=4, max_length=96,
                 log=lambda *_: None)
    rec = StrategyRecognizer.load(tmp_path / "rec")
    assert (rec.context_turns, rec.max_length) == (4, 96)
    # the loader's input is the build's: its figures on valid are the trained model's (float16 aside)
    assert abs(meta["history"][0]["valid_accuracy"] - meta["validation"]["accuracy"]) <= 0.01
    with pytest.raises(UserError, match="context-turns"):
        build(tmp_path / "bad", TRAIN, VALID, limit=10, context_turns=-1, log=lambda *_: None)


def test_missing_or_corrupt_strategy_model_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="missing"):
        StrategyRecognizer.load(tmp_path)
    src = default_model_dir()
    (tmp_path / "meta.json").write_text((src / "meta.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="unreadable strategy recognizer weights"):
        StrategyRecognizer.load(tmp_path)
    (tmp_path / "meta.json").write_text("{")
    with pytest.raises(UserError, match="not a strategy recognizer"):
        StrategyRecognizer.load(tmp_path)


# ---- the role check ----


@pytest.fixture(scope="module")
def voice():
    return VoiceRecognizer.load()


@pytest.fixture(scope="module")
def voice_figures(voice):
    from socialsim.agents.seeker import legacy_supporter_voice
    from socialsim.recognize.voice_build import measure

    return measure(voice, VALID, legacy_supporter_voice)


def test_role_check_rejects_at_most_3_percent_of_real_seekers(voice_figures):
    f = voice_figures["esconv_valid_seeker"]
    assert f["recognizer"]["n"] > 1000
    assert f["recognizer"]["rate"] <= 0.03
    assert f["old_rules"]["rate"] > 0.10  # what the rule-only check did


def _model_sets(figures):
    sets = {k: v["recognizer"] for k, v in figures.items() if k.startswith("model_replies_")}
    assert set(sets) == {"model_replies_smollm2-135m", "model_replies_qwen2.5-1.5b"}
    return sets


def test_role_check_catches_95_percent_of_model_written_supporter_replies(voice_figures):
    sets = _model_sets(voice_figures)
    assert sum(v["flagged"] for v in sets.values()) / sum(v["n"] for v in sets.values()) >= 0.95


def test_role_check_catches_model_replies_at_the_measured_level(voice_figures):
    """Regression guard at what the shipped file measured (smollm2 142/150, qwen 60/60; with the strategy
    recognizer before its LoRA build, 139/150 and 59/60; before the strategy encoder's features, 133/150 and 51/60);
    the old rule-only check caught 98/150 and 52/60 while rejecting 11 % of real seekers."""
    sets = _model_sets(voice_figures)
    assert sum(v["n"] for v in sets.values()) >= 200
    assert sum(v["flagged"] for v in sets.values()) / sum(v["n"] for v in sets.values()) >= 0.93
    assert min(v["rate"] for v in sets.values()) >= 0.92


def test_role_check_figures_match_the_model_file(voice, voice_figures):
    doc = voice.meta["validation"]
    for name, fig in voice_figures.items():
        assert fig["recognizer"] == doc[name]["recognizer"], name


def test_every_rejection_names_its_rule_or_score(voice):
    v = voice.check("I'm so sorry to hear that you're going through this.", "I lost my job.")
    assert v is not None and v.reason.startswith(("rule:", "voice:"))
    v2 = voice.check("It sounds like you are carrying a lot right now, and that is completely valid.")
    assert v2 is not None and v2.reason.startswith(("rule:", "voice:"))
    for seeker_line in ("Thank you. Good bye.", "you are right", "Hi, how are you?", "I just feel so lost lately."):
        assert voice.check(seeker_line, "How are you feeling today?") is None, seeker_line


def test_normalising_rule_spares_a_seekers_doubt():
    from socialsim.agents.seeker import supporter_rules

    rule = supporter_rules(["normalising"])
    assert rule.first("It's okay to feel this way, and it's normal to be upset.") is not None
    # a line the 1.5B model wrote as the seeker (scripts/copy_ban_probe.py), rejected by the rule before 2026-12-06
    doubt = "I don't know if it's a good idea to see a doctor or if it's okay to just ignore the pain."
    assert rule.first(doubt) is None
    assert rule.first("I wonder whether it's normal to cry every day.") is None


def test_missing_or_corrupt_voice_model_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="missing"):
        VoiceRecognizer.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(UserError, match="unreadable"):
        VoiceRecognizer.load(bad)
    bad.write_text(json.dumps({"coef": [0.0]}))
    with pytest.raises(UserError, match="not a voice model"):
        VoiceRecognizer.load(bad)
    other = dict(json.loads(default_model_path().read_text()), strategy_encoder={"weights_sha256": "0" * 64})
    bad.write_text(json.dumps(other))
    with pytest.raises(UserError, match="another strategy recognizer"):
        VoiceRecognizer.load(bad)
    assert default_model_path().is_file()


class _Scripted:
    """Injects fixed seeker outputs (a fault-injection double: the role check under test is the real one)."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    async def complete(self, req):
        from socialsim.llm.base import Completion

        return Completion(text=self.outputs.pop(0))


def test_seeker_stores_each_rejected_attempt_with_its_reason(persona_data):
    import asyncio

    from socialsim.agents.prompts import Prompts
    from socialsim.agents.seeker import Seeker
    from socialsim.schema import Persona, Turn

    persona = Persona.model_validate(persona_data)
    history = [Turn(speaker="supporter", text="Hi, what would you like to talk about today?")]
    seeker = Seeker(_Scripted(["I'm so sorry to hear that you're going through this.",
                               "It sounds like you are under a lot of pressure, and your feelings are valid.",
                               "I'm just really stressed about school and my finals."]),
                    persona, Prompts(), seed=1)
    turn = asyncio.run(seeker.speak(history, layer=0, goodbye=False, turn_index=0))
    assert turn.text.startswith("I'm just really stressed") and not turn.role_fallback
    assert [r.check for r in turn.rejected] == ["role", "role"]
    assert turn.rejected[0].reason == "rule:sympathy"
    assert all(r.reason.startswith(("rule:", "voice:")) for r in turn.rejected)
    assert turn.rejected[1].text.startswith("It sounds like")
