import json

import jsonschema
import pytest
from pydantic import ValidationError

from conftest import ESCONV_DIR, persona_dict
from socialsim.corpus.esconv import EXTRA_KEY, esconv_json_schema, to_esconv, write_esconv
from socialsim.schema import (
    Dialogue,
    Persona,
    Strategy,
    SupporterThought,
    Turn,
    Usage,
    parse_strategy,
    read_dialogues,
    write_jsonl,
)


def test_strategy_labels_are_esconvs_eight():
    assert [s.value for s in Strategy] == [
        "Question",
        "Restatement or Paraphrasing",
        "Reflection of feelings",
        "Self-disclosure",
        "Affirmation and Reassurance",
        "Providing Suggestions",
        "Information",
        "Others",
    ]


@pytest.mark.parametrize(
    "label,expected",
    [
        ("Questions", Strategy.QUESTION),
        ("Other", Strategy.OTHERS),
        ("Direct Guidance", Strategy.SUGGESTION),
        ("Approval and Reassurance", Strategy.AFFIRMATION),
        ("Restatement", Strategy.RESTATEMENT),
        ("[Reflection of feelings]", Strategy.REFLECTION),
        ("question", Strategy.QUESTION),
    ],
)
def test_parse_strategy_maps_older_labels(label, expected):
    assert parse_strategy(label) is expected


def test_parse_strategy_rejects_unknown():
    with pytest.raises(ValueError, match="unknown strategy 'Hugging'"):
        parse_strategy("Hugging")


def test_persona_validates_and_normalises_types():
    p = Persona.model_validate(persona_dict(problem_type="Issues with Parents", emotion_type="ANXIETY"))
    assert p.problem_type.value == "conflict with parents"
    assert p.emotion_type.value == "anxiety"
    assert p.disclosure.layer(2).startswith("I'm scared")


@pytest.mark.parametrize(
    "over,field",
    [
        ({"problem_type": "space travel"}, "problem_type"),
        ({"initial_intensity": 9}, "initial_intensity"),
        ({"age": "old"}, "age"),
        ({"id": "has space"}, "id"),
        ({"extra": 1}, "extra"),
    ],
)
def test_persona_rejects_bad_fields(over, field):
    with pytest.raises(ValidationError) as e:
        Persona.model_validate(persona_dict(**over))
    assert e.value.errors()[0]["loc"][0] == field


def test_thought_intensity_and_strategy_checked():
    ok = SupporterThought(
        emotion="anxiety",
        intensity=3,
        cause="exams",
        need="to be heard",
        strategy="Questions",
        rationale="explore first",
    )
    assert ok.strategy is Strategy.QUESTION
    with pytest.raises(ValidationError):
        SupporterThought(emotion="x", intensity=7, cause="c", need="n", strategy="Question", rationale="r")
    with pytest.raises(ValidationError):
        SupporterThought(emotion="x", intensity=3, cause="c", need="n", strategy="Hug", rationale="r")


def make_dialogue(status="ok"):
    p = Persona.model_validate(persona_dict())
    th = SupporterThought(
        emotion="anxiety",
        intensity=4,
        cause="finals",
        need="to feel heard",
        strategy=Strategy.REFLECTION,
        rationale="name the feeling first",
    )
    return Dialogue(
        id="d1",
        persona_id=p.id,
        persona=p,
        backend="local",
        model="m",
        seed=3,
        turns=[
            Turn(
                speaker="seeker",
                text="I'm stressed about school.",
                disclosure_layer=0,
                usage=Usage(prompt_tokens=10, completion_tokens=5),
                latency_s=0.1,
                calls=1,
            ),
            Turn(
                speaker="supporter",
                text="That sounds exhausting.",
                strategy=th.strategy,
                thought=th,
                usage=Usage(prompt_tokens=20, completion_tokens=8),
                calls=2,
            ),
            Turn(speaker="seeker", text="Thanks, bye.", disclosure_layer=1),
        ],
        end_reason="seeker_goodbye",
        status=status,
    )


def test_dialogue_jsonl_round_trip(tmp_path):
    d = make_dialogue()
    path = tmp_path / "d.jsonl"
    assert write_jsonl([d, d.model_copy(update={"id": "d2"})], path) == 2
    back = read_dialogues(path)
    assert back[0] == d
    assert back[1].id == "d2"
    assert d.usage == Usage(prompt_tokens=30, completion_tokens=13)
    assert d.max_disclosure == 1


def test_read_dialogues_names_line_and_field(tmp_path):
    d = make_dialogue().model_dump(mode="json")
    d["turns"][1]["strategy"] = "Hugging"
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(make_dialogue().model_dump(mode="json")) + "\n" + json.dumps(d) + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:2: field 'turns.1.strategy'"):
        read_dialogues(path)


def test_esconv_export_is_valid_and_keeps_extras(tmp_path):
    d = make_dialogue()
    item = to_esconv(d)
    jsonschema.validate([item], esconv_json_schema())
    assert item["problem_type"] == "academic pressure"
    assert item["survey_score"]["seeker"] == {"initial_emotion_intensity": "4", "final_emotion_intensity": "4"}
    assert [t["speaker"] for t in item["dialog"]] == ["seeker", "supporter", "seeker"]
    assert item["dialog"][1]["annotation"] == {"strategy": "Reflection of feelings"}
    assert item[EXTRA_KEY]["turns"][1]["thought"]["cause"] == "finals"
    out = tmp_path / "esconv.json"
    write_esconv([d], out)
    assert json.loads(out.read_text())[0]["dialog"][0]["content"] == "I'm stressed about school."


def test_esconv_schema_matches_real_esconv_shape_and_rejects_old_labels():
    """The schema is not vacuous: ESConv's rejected dialogues use `speaker`/`listener` and older
    strategy names, which it refuses; mapped to current labels they pass."""
    data = json.loads((ESCONV_DIR / "FailedESConv.json").read_text())
    schema = esconv_json_schema()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data[:5], schema)
    for item in data:
        for t in item["dialog"]:
            t["speaker"] = {"speaker": "seeker", "listener": "supporter"}[t["speaker"]]
            if "strategy" in t["annotation"]:
                t["annotation"]["strategy"] = parse_strategy(t["annotation"]["strategy"]).value
            if t["annotation"].get("feedback") not in (None, "1", "2", "3", "4", "5"):
                t["annotation"].pop("feedback")
    jsonschema.validate(data, schema)
