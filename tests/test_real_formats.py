"""The field's real file formats, in samples written for these tests (not copied from any data set):
ESC-Eval role cards whose fields are separated by blank lines, SocialSim user profiles and SSConv
dialogues, read and written; and `--skip-invalid`, which skips a bad record and never aborts."""

import json
import re
from pathlib import Path

import pytest

from conftest import one_line_error, run_cli
from socialsim.corpus.ssconv import REASONING, SUPPORTER, read_ssconv, render_thought, write_ssconv
from socialsim.errors import UserError
from socialsim.evaluate.readers import load_corpus
from socialsim.personas.importers import import_personas, import_rolecards
from socialsim.personas.importers.socialsim import big_five, import_socialsim
from socialsim.schema import Dialogue, Persona, Strategy, SupporterThought, Turn, write_jsonl

DATA = Path(__file__).parent / "data"
CARDS = DATA / "rolecards_esceval_blanklines.json"
PROFILES = DATA / "socialsim_profiles_sample.json"
SSCONV = DATA / "ssconv_sample.json"


def pcli(*args):
    return run_cli("personas", *args)


# -- role cards ------------------------------------------------------------------------------------------------


def test_blank_lines_inside_a_json_record_never_start_a_new_card():
    r = import_rolecards(CARDS, skip_invalid=True)
    ps = {p.id: p for p in r.personas}
    assert sorted(ps) == ["esceval-501", "esceval-502", "esceval-503"]
    spaced = ps["esceval-502"]  # every field of this card is separated by a blank line
    assert (spaced.age, spaced.gender, spaced.occupation) == (26, "man", "unknown")
    assert spaced.situation.startswith("He has had chest pain") and spaced.situation.endswith("for the scan.")
    old = ps["esceval-503"]  # a continuation line after a blank line, and 'Old (70 years old)'
    assert old.age == 70 and old.life_stage is None and "alone in the empty house" in old.situation
    assert len(r.skipped) == 2
    assert r.skipped[0].startswith(f"{CARDS}:record 4: field 'Age': given twice")
    assert r.skipped[1].startswith(f"{CARDS}:record 5: field 'Hobby': unknown role-card field")


def test_strict_import_stops_at_the_first_bad_record_with_one_line():
    with pytest.raises(UserError) as e:
        import_rolecards(CARDS)
    assert str(e.value).startswith(f"{CARDS}:record 4: field 'Age': given twice") and "\n" not in str(e.value)


def test_skip_invalid_in_the_text_form_keeps_the_good_cards(tmp_path):
    good = "Age: 30\nGender: female\nOccupation: nurse\nProblem: I was laid off and feel anxious.\n"
    f = tmp_path / "c.txt"
    f.write_text(good + "\nAge: 40\nMood: low\nProblem: He is anxious.\n\nnonsense line\n\n" + good.replace("30", "31"))
    r = import_rolecards(f, skip_invalid=True)
    assert [p.age for p in r.personas] == [30, 31]
    assert r.skipped[0].startswith(f"{f}:7: field 'Mood'") and r.skipped[1].startswith(f"{f}:10: expected 'Field")


def test_cli_skip_invalid_counts_and_shows_the_first_reasons(tmp_path):
    recs = json.loads(CARDS.read_text())
    bad = [{"base": f"Age: {40 + i}\nHobby: chess\nProblem: He is sad.", "id": 900 + i} for i in range(7)]
    src = tmp_path / "cards.json"
    src.write_text(json.dumps(recs + bad))
    out = tmp_path / "p.jsonl"
    r = pcli("import", "--from", "rolecards", src, "--out", out, "--skip-invalid")
    assert r.returncode == 0, r.stderr
    assert "Skipped 9 invalid records (the first 5 below)" in r.stderr and "… and 4 more" in r.stderr
    assert r.stderr.count("skipped: ") == 5 and "Traceback" not in r.stderr
    assert len(out.read_text().splitlines()) == 3
    one_line_error(pcli("import", "--from", "rolecards", src, "--out", tmp_path / "q.jsonl"), "record 4", "'Age'")


# -- SocialSim profiles ----------------------------------------------------------------------------------------


def test_socialsim_profiles_become_layered_personas():
    r = import_socialsim(PROFILES)
    assert [p.id for p in r.personas] == ["socialsim-1", "socialsim-2", "socialsim-3"]
    first = r.personas[0]
    src = json.loads(PROFILES.read_text())[0]
    assert first.disclosure.surface == src["Situation"] == first.situation
    assert first.disclosure.context.startswith(src["Event Description"])
    assert "When: Morning." in first.disclosure.context and "Biology teacher" in first.disclosure.context
    assert (
        first.disclosure.core.startswith("I feel fear, trembling")
        and src["Goals and Expectations"] in first.disclosure.core
    )
    assert first.personality.model_dump(mode="json") == {
        "openness": "low",
        "conscientiousness": "low",
        "extraversion": "low",
        "agreeableness": "high",
        "neuroticism": "high",
    }
    assert (first.topic, first.subtopic) == ("Study", "Exam Anxiety Management, Study Method")
    assert first.problem_type.value == "academic pressure" and first.emotion_type.value == "fear"
    assert first.coping_tried == [src["Coped Strategies and Effects"]]
    assert r.personas[1].personality.neuroticism.value == "low" and r.personas[1].age == 34
    third = r.personas[2]
    assert third.age == 30 and "placeholder" in third.life_stage and third.occupation == "unknown"
    assert third.personality.openness.value == "medium"  # a trait the profile does not name
    assert r.notes["intensity set to the midpoint 3"] == 3
    assert Persona.model_validate_json(third.model_dump_json()) == third


def test_socialsim_profile_errors_and_skips(tmp_path):
    recs = json.loads(PROFILES.read_text())
    broken = [
        dict(recs[0], ID=7),
        {k: v for k, v in recs[1].items() if k != "Situation"},
        dict(recs[2], Personality="Grumpiness"),
    ]
    f = tmp_path / "profiles.json"
    f.write_text(json.dumps(broken))
    with pytest.raises(UserError, match=r"record 2: field 'Situation': required field is missing"):
        import_socialsim(f)
    r = import_personas("socialsim", f, skip_invalid=True)
    assert [p.id for p in r.personas] == ["socialsim-7"] and len(r.skipped) == 2
    assert "record 3: field 'Personality': unknown Big Five pole 'Grumpiness'" in r.skipped[1]
    with pytest.raises(Exception, match="both poles"):
        big_five("Openness, Closedness")
    with pytest.raises(UserError, match="option --fallback-emotion"):
        import_socialsim(PROFILES, fallback_emotion="boredom")


def test_cli_imports_socialsim_profiles(tmp_path):
    out = tmp_path / "p.jsonl"
    r = pcli("import", "--from", "socialsim", PROFILES, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "Imported 3 personas" in r.stdout
    assert pcli("validate", out).returncode == 0


# -- SSConv dialogues ------------------------------------------------------------------------------------------


def test_ssconv_dialogues_are_read_with_reasoning_as_thought_text():
    c = load_corpus(SSCONV)
    assert c.format == "ssconv" and len(c) == 2
    d = c.dialogues[0]
    assert [t.speaker for t in d.turns] == ["seeker", "supporter", "seeker", "supporter", "seeker"]
    src = json.loads(SSCONV.read_text())[0]["Dialogue"]
    assert d.turns[1].thought_text == src[1][REASONING] and d.turns[1].text == src[1][SUPPORTER]
    assert all(t.strategy is None and t.thought is None for t in d.turns)
    assert c.dialogues[1].turns[1].thought_text.startswith("Anger and resentment")  # key order does not matter


def _ours():
    th = SupporterThought(
        emotion="anxiety",
        intensity=4,
        cause="exams",
        need="to be heard",
        strategy=Strategy.REFLECTION,
        rationale="fits",
    )
    turns = [
        Turn(speaker="seeker", text="I can't sleep before my exams."),
        Turn(speaker="supporter", text="That sounds exhausting.", strategy=Strategy.REFLECTION, thought=th),
        Turn(speaker="seeker", text="Thanks."),
    ]
    return [Dialogue(id=f"d{i}", persona_id="p", backend="local", model="m", seed=i, turns=turns) for i in range(2)]


def test_round_trip_our_corpus_to_ssconv_and_back(tmp_path):
    ours = _ours()
    assert write_ssconv(ours, tmp_path / "s.json") == 2
    raw = json.loads((tmp_path / "s.json").read_text())
    assert [x["ID"] for x in raw] == [1, 2] and set(raw[0]["Dialogue"][1]) == {"Turn", REASONING, SUPPORTER}
    back = read_ssconv(tmp_path / "s.json")
    for a, b in zip(ours, back, strict=True):
        assert [(t.speaker, t.text) for t in a.turns] == [(t.speaker, t.text) for t in b.turns]
        assert b.turns[1].thought_text == render_thought(a.turns[1].thought)
        assert (
            "anxiety (intensity 4/5)" in b.turns[1].thought_text and "Reflection of feelings" in b.turns[1].thought_text
        )
    # read back, SSConv's reasoning is written out unchanged (SSConv -> SSConv is lossless)
    write_ssconv(back, tmp_path / "s2.json")
    assert json.loads((tmp_path / "s2.json").read_text()) == raw


def test_export_and_evaluate_take_ssconv(tmp_path):
    src = tmp_path / "ours.jsonl"
    write_jsonl(_ours(), src)
    r = run_cli("export", src, "--out", tmp_path / "e", "--format", "ssconv")
    assert r.returncode == 0, r.stderr
    assert len(read_ssconv(tmp_path / "e" / "ssconv.json")) == 2
    r = run_cli("export", SSCONV, "--out", tmp_path / "f", "--format", "jsonl", "--format", "sft")
    assert r.returncode == 0, r.stderr
    back = [json.loads(x) for x in (tmp_path / "f" / "dialogues.jsonl").read_text().splitlines()]
    assert back[0]["backend"] == "ssconv" and back[0]["turns"][1]["thought_text"]
    r = run_cli("evaluate", SSCONV, "--diversity", "none", "--report", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "rep" / "report.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"ID": 1, "Dialogue": [{"Turn": 1, "Seeker": "hi", "Supporter": "hello"}]}]))
    one_line_error(run_cli("export", bad, "--out", tmp_path / "g", "--format", "jsonl"), "dialogue [0]", "Dialogue[0]")


@pytest.mark.slow
def test_core_layers_from_the_llm_pass_on_the_embedded_model(tmp_path):
    from socialsim.personas.core_llm import acceptable_core

    rule = {p.id: p for p in import_socialsim(PROFILES).personas}
    out = tmp_path / "p.jsonl"
    r = pcli("import", "--from", "socialsim", PROFILES, "--out", out, "--core-from", "llm")
    assert r.returncode == 0, r.stderr
    written = (
        int(re.search(r"core written by the LLM\s*│\s*(\d+)", r.stdout).group(1))
        if "written by the LLM" in r.stdout
        else 0
    )
    kept = int(re.search(r"core kept by rule[^│]*│\s*(\d+)", r.stdout).group(1)) if "kept by rule" in r.stdout else 0
    assert written + kept == 3 and written >= 1, r.stdout
    ps = [Persona.model_validate_json(x) for x in out.read_text().splitlines()]
    changed = [p for p in ps if p.disclosure.core != rule[p.id].disclosure.core]
    assert len(changed) == written and all(acceptable_core(p.disclosure.core) for p in changed)
    assert all(p.disclosure.surface == rule[p.id].disclosure.surface for p in ps)  # only the core is rewritten
