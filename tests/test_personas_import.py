"""Importers on real-format samples: ESConv (from ../shared), role cards, CSV, JSONL."""

import json
from pathlib import Path

import pytest

from conftest import ESCONV_DIR, persona_dict
from socialsim.errors import UserError
from socialsim.personas.bank import load_personas
from socialsim.personas.importers import (
    AGE_PLACEHOLDER_MARK,
    UNKNOWN,
    import_csv,
    import_esconv,
    import_jsonl,
    import_personas,
    import_rolecards,
    infer_emotion,
    infer_problem_type,
    is_pleasantry,
    seeker_messages,
    write_personas,
)
from socialsim.personas.stats import coverage
from socialsim.schema import ESCONV_PROBLEM_TYPES, Persona

DATA = Path(__file__).parent / "data"
FAILED_ESCONV = ESCONV_DIR / "FailedESConv.json"
needs_esconv = pytest.mark.skipif(not FAILED_ESCONV.exists(), reason=f"{FAILED_ESCONV} not found (../shared)")


# -- ESConv -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def esconv():
    return json.loads(FAILED_ESCONV.read_text(encoding="utf-8"))


@needs_esconv
def test_esconv_import_keeps_what_esconv_gives(esconv):
    r = import_esconv(FAILED_ESCONV, skip_invalid=True)
    # two dialogues have a situation under the schema's 5 characters ('Love', '321'): listed, not dropped silently
    assert len(r.personas) + len(r.skipped) == len(esconv) == 196
    assert len(r.skipped) == 2
    assert all("field 'situation'" in s and "record" in s for s in r.skipped)
    skipped_records = {int(s.split("record ")[1].split(":")[0]) for s in r.skipped}
    kept = [rec for i, rec in enumerate(esconv, 1) if i not in skipped_records]
    for p, rec in zip(r.personas, kept, strict=True):
        assert p.problem_type.value == {"issues with parents": "conflict with parents"}.get(
            rec["problem_type"], rec["problem_type"]
        )
        assert p.emotion_type.value == rec["emotion_type"]
        assert p.initial_intensity == int(rec["survey_score"]["seeker"]["initial_emotion_intensity"])
        assert p.experience_type == ("current" if rec["experience_type"].startswith("Current") else "previous")
        assert p.situation == " ".join(rec["situation"].split())
        # demographics ESConv lacks are marked, never invented
        assert (p.name, p.gender, p.occupation) == (UNKNOWN, UNKNOWN, UNKNOWN)
        assert AGE_PLACEHOLDER_MARK in p.life_stage and p.age == 30
    assert len({p.id for p in r.personas}) == len(r.personas)
    assert r.personas[0].id == "esconv-failedesconv-0001"
    assert r.notes["disclosure layers filled from the situation (fewer than 3 seeker messages)"] > 0
    # age bands are reported as unknown, not as the placeholder's band
    assert coverage(r.personas).age_bands == {"unknown": len(r.personas)}


@needs_esconv
def test_esconv_layers_come_from_the_seekers_own_words(esconv):
    r = import_esconv(FAILED_ESCONV, skip_invalid=True)
    p, rec = r.personas[1], esconv[1]
    seeker_text = " ".join(" ".join(t["content"].split()) for t in rec["dialog"] if t["speaker"] == "speaker")
    supporter_text = " ".join(t["content"] for t in rec["dialog"] if t["speaker"] == "listener")
    msgs = [m for m in seeker_messages(rec["dialog"]) if not is_pleasantry(m)]
    assert len(msgs) >= 3
    for layer in (p.disclosure.surface, p.disclosure.context, p.disclosure.core):
        words = layer.rstrip("…").split()
        assert " ".join(words[:6]) in seeker_text  # each layer starts with the seeker's words, in order
        assert " ".join(words[:6]) not in supporter_text
    assert seeker_text.index(p.disclosure.surface[:30]) < seeker_text.index(p.disclosure.context[:30])
    assert seeker_text.index(p.disclosure.context[:30]) < seeker_text.index(p.disclosure.core[:30])
    assert msgs[0].startswith(p.disclosure.surface.rstrip("…")[:40])


@needs_esconv
def test_esconv_strict_import_names_the_first_bad_record():
    with pytest.raises(UserError) as e:
        import_esconv(FAILED_ESCONV)
    msg = str(e.value)
    assert msg.startswith(f"{FAILED_ESCONV}:record 43: field 'situation':"), msg
    assert "\n" not in msg


def test_esconv_errors_name_record_and_field(tmp_path):
    rec = {
        "experience_type": "Current Experience",
        "emotion_type": "anxiety",
        "problem_type": "job crisis",
        "situation": "I might lose my job next month.",
        "survey_score": {"seeker": {"initial_emotion_intensity": "4"}},
        "dialog": [{"speaker": "seeker", "annotation": {}, "content": "I am worried about my job."}],
    }
    cases = [
        ({**rec, "problem_type": "space travel"}, "field 'problem_type'"),
        (
            {k: v for k, v in rec.items() if k != "survey_score"},
            "field 'survey_score.seeker.initial_emotion_intensity'",
        ),
        ({**rec, "survey_score": {"seeker": {"initial_emotion_intensity": "high"}}}, "expected a number 1–5"),
        ({**rec, "experience_type": "Future"}, "field 'experience_type'"),
        ({k: v for k, v in rec.items() if k != "dialog"}, "field 'dialog'"),
    ]
    for bad, needle in cases:
        f = tmp_path / "e.json"
        f.write_text(json.dumps([rec, bad]))
        with pytest.raises(UserError) as e:
            import_esconv(f)
        assert str(e.value).startswith(f"{f}:record 2: "), str(e.value)
        assert needle in str(e.value)
    ok = import_esconv(tmp_path / "e.json", skip_invalid=True)
    assert len(ok.personas) == 1 and len(ok.skipped) == 1
    # one seeker message: layers 2 and 3 repeat the seeker's own situation, and that is counted
    assert ok.personas[0].disclosure.context == rec["situation"]


def test_pleasantries_and_merged_seeker_messages():
    assert is_pleasantry("Hi there, how are you?") and is_pleasantry("thank you so much")
    assert is_pleasantry("ok")
    assert not is_pleasantry("Hi, I lost my job last week")
    dialog = [
        {"speaker": "seeker", "content": "hello\n"},
        {"speaker": "supporter", "content": "Hi!"},
        {"speaker": "seeker", "content": "I failed my exam."},
        {"speaker": "seeker", "content": "My dad will be furious."},
    ]
    assert seeker_messages(dialog) == ["hello", "I failed my exam. My dad will be furious."]


# -- role cards ---------------------------------------------------------------------------------------------


def test_rolecards_text_sample():
    r = import_rolecards(DATA / "rolecards_sample.txt")
    ps = {p.id: p for p in r.personas}
    assert len(ps) == 6
    first = ps["card-rolecards-sample-0001"]
    assert (first.name, first.gender, first.occupation) == (UNKNOWN, "woman", UNKNOWN)
    assert AGE_PLACEHOLDER_MARK in first.life_stage
    assert first.problem_type.value == "breakup with partner" and first.emotion_type.value == "jealousy"
    assert first.situation.startswith("The seeker found out")  # the card's text, unchanged
    second = ps["card-rolecards-sample-0002"]
    assert second.age == 34 and second.life_stage is None and second.gender == "man"
    assert second.problem_type.value == "job crisis"
    third = ps["card-rolecards-sample-0003"]
    assert third.age == 22 and third.life_stage.startswith("young") and third.gender == UNKNOWN
    assert "their parents will be disappointed" in third.situation  # continuation lines joined
    harold = ps["card-rolecards-sample-0004"]  # explicit lines win over every rule
    assert (harold.name, harold.age, harold.locale) == ("Harold", 71, "en-GB, Leeds")
    assert (harold.problem_type.value, harold.emotion_type.value, harold.initial_intensity) == (
        "grief",
        "loneliness",
        4,
    )
    assert harold.disclosure.surface == "Evenings are long these days, that's all."
    assert ps["card-rolecards-sample-0005"].problem_type.value == "issues with children"
    assert ps["card-rolecards-sample-0006"].problem_type.value == "school bullying"
    assert ps["card-rolecards-sample-0006"].gender == "non-binary"
    assert r.notes["intensity set to the midpoint 3"] == 5
    assert r.notes["problem_type inferred from the problem text by keyword rules"] == 5
    for p in r.personas:
        d = p.disclosure
        if p is harold:
            continue
        assert p.situation.startswith(d.surface.rstrip("…")[:20])
        assert len({d.surface, d.context, d.core}) == 3


def test_rolecards_esceval_json_form():
    r = import_rolecards(DATA / "rolecards_esceval.json")
    assert [p.id for p in r.personas] == ["esceval-101", "esceval-102"]
    a, b = r.personas
    assert a.problem_type.value == "problems with friends" and a.gender == "man"
    assert b.problem_type.value == "caregiver burnout" and b.occupation == "retired nurse"
    assert b.age == 72 and b.life_stage.startswith("elderly")


def test_keyword_rules():
    assert infer_problem_type("She was laid off and cannot find a new job") == "job crisis"
    assert infer_problem_type("My boyfriend broke up with me") == "breakup with partner"
    assert infer_problem_type("The weather is grey") is None
    assert infer_emotion("He feels frustrated and annoyed") == "frustration"
    assert infer_emotion("She moved house") is None


def _card(tmp_path, text, name="cards.txt"):
    f = tmp_path / name
    f.write_text(text)
    return f


def test_rolecard_errors_name_the_line_and_field(tmp_path):
    good = "Age: 30\nGender: female\nOccupation: nurse\nProblem: I was laid off and feel anxious.\n"
    cases = [
        (good + "\nAge: about fifty-ish\nGender: male\nProblem: He is anxious about his job.\n", ":6:", "field 'age'"),
        (good + "\nAge: 40\nHobby: chess\nProblem: He is anxious about his job.\n", ":7:", "field 'Hobby'"),
        (good + "\nAge: 40\nGender: male\n", ":6:", "field 'problem'"),
        (good + "\nAge: 40\nProblem: The weather is grey and so is he.\n", ":6:", "field 'problem_type'"),
        (
            good + "\nAge: 40\nIntensity: 9\nProblem: He lost his job and is anxious.\n",
            ":7:",
            "field 'initial_intensity'",
        ),
        (good + "\nAge: 40\nProblem type: space travel\nProblem: He is anxious.\n", ":7:", "field 'problem_type'"),
        (good + "\nAge: 40\nAge: 41\nProblem: He lost his job and is anxious.\n", ":7:", "given twice"),
    ]
    for text, line, field in cases:
        f = _card(tmp_path, text)
        with pytest.raises(UserError) as e:
            import_rolecards(f)
        msg = str(e.value)
        assert msg.startswith(f"{f}{line}"), (msg, line)
        assert field in msg and "\n" not in msg


def test_rolecard_fallbacks_are_explicit(tmp_path):
    f = _card(tmp_path, "Age: 40\nGender: male\nOccupation: baker\nProblem: The weather is grey and so is he.\n")
    with pytest.raises(UserError, match="--fallback-problem-type"):
        import_rolecards(f)
    r = import_rolecards(f, fallback_problem_type="loneliness", fallback_emotion="sadness")
    assert r.personas[0].problem_type.value == "loneliness" and r.personas[0].emotion_type.value == "sadness"
    assert r.notes["problem_type set to the fallback 'loneliness'"] == 1
    with pytest.raises(UserError, match="option --fallback-emotion"):
        import_rolecards(f, fallback_problem_type="loneliness", fallback_emotion="boredom")


# -- CSV and JSONL --------------------------------------------------------------------------------------------


def test_csv_sample():
    r = import_csv(DATA / "personas_sample.csv")
    ana, kofi = r.personas
    assert ana.coping_tried == ["melatonin", "blackout curtains", "no coffee after noon"]
    assert ana.support_preferences == ["wants to be heard first", "open to practical tips"]
    assert ana.personality.neuroticism.value == "high" and kofi.personality is None
    assert kofi.disclosure.core.startswith("I feel I have failed my family")
    assert kofi.support_preferences == [] and kofi.locale == "en-GH"
    assert r.notes == {}


def test_csv_errors_name_line_and_column(tmp_path):
    header = "id,name,age,gender,occupation,problem_type,emotion_type,initial_intensity,situation,"
    header += "disclosure.surface,disclosure.context,disclosure.core\n"
    row = 'a,Ana,27,woman,nurse,sleep problems,anxiety,3,"I cannot sleep, at all.",'
    row += "I am tired.,Since March.,I fear mistakes.\n"
    cases = [
        (header.replace("name,", "nickname,"), row, ":1:", "field 'nickname'"),
        (header, row + row.replace("a,Ana", "b,Bo").replace(",27,", ",200,"), ":3:", "field 'age'"),
        (header, row + "\n" + row.replace("a,Ana", "c,Cy").replace("I fear mistakes.", ""), ":4:", "disclosure.core"),
        (header, row + row, ":3:", "duplicate id"),
        (header, row.replace('"I cannot sleep, at all."', "I cannot sleep, at all."), ":2:", "expected 12 cells"),
    ]
    for i, (h, rows, line, needle) in enumerate(cases):
        f = tmp_path / f"p{i}.csv"
        f.write_text(h + rows)
        with pytest.raises(UserError) as e:
            import_csv(f)
        assert str(e.value).startswith(f"{f}{line}"), str(e.value)
        assert needle in str(e.value)


def test_jsonl_import_round_trip(tmp_path, persona_file):
    r = import_jsonl(persona_file)
    out = tmp_path / "o" / "out.jsonl"
    assert write_personas(r.personas, out) == 2
    assert load_personas(out) == r.personas
    assert not [p for p in out.parent.iterdir() if p.name != "out.jsonl"]  # no temporary file left
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(persona_dict()) + "\n" + json.dumps(persona_dict(id="b", emotion_type="bored")) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: field 'emotion_type'"):
        import_jsonl(bad)
    r = import_jsonl(bad, skip_invalid=True)
    assert [p.id for p in r.personas] == ["t-maya"] and len(r.skipped) == 1


def test_missing_and_empty_sources(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    for kind in ("esconv", "rolecards", "csv", "jsonl"):
        with pytest.raises(UserError, match="not found"):
            import_personas(kind, tmp_path / "nope")
        with pytest.raises(UserError, match="empty"):
            import_personas(kind, empty)


@needs_esconv
def test_imported_esconv_personas_cover_only_esconv_types():
    r = import_esconv(FAILED_ESCONV, skip_invalid=True)
    assert {p.problem_type for p in r.personas} <= set(ESCONV_PROBLEM_TYPES)
    assert all(isinstance(p, Persona) for p in r.personas)
