"""The seeker plays the whole persona (#26 item 2): every field of `Persona` reaches a seeker prompt at its layer
(voice fields in the system prompt of every turn, layered fields in the turn prompt from their layer on, never
before) or is listed in `UNUSED_PERSONA_FIELDS` with a reason; the leak check covers every layered field; the
turn prompt hands over background notes, never a line to say. On the real default persona bank."""

from __future__ import annotations

import pytest

from socialsim.agents.fidelity import FidelityCheck
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import (
    LAYER_FIELDS,
    UNUSED_PERSONA_FIELDS,
    VOICE_FIELDS,
    Seeker,
    card_texts,
    known_facts,
    recites,
    repeats,
    voice_lines,
)
from socialsim.personas.bank import default_bank_path, load_personas
from socialsim.schema import Disclosure, Persona, Turn

BANK = load_personas(default_bank_path())
MEGAN = BANK[0]  # full persona: every optional field filled, risk 'none', experience 'current'

# one changed value per field (a field added to Persona fails `test_every_persona_field_is_placed` until it is
# placed in VOICE_FIELDS, LAYER_FIELDS or UNUSED_PERSONA_FIELDS, and given a changed value here)
CHANGED: dict[str, object] = {
    "id": "zz-other-id",
    "name": "Zephyr Quill",
    "age": 71,
    "gender": "nonbinary person",
    "occupation": "lighthouse keeper",
    "problem_type": "grief",
    "emotion_type": "anger",
    "initial_intensity": 1,
    "situation": "The lighthouse was automated in spring and nobody asked what I would do with my evenings.",
    "disclosure.surface": "Things have been a bit grey at the lighthouse.",
    "disclosure.context": "They sent a letter in March, and the keeper's cottage goes to a holiday company in June.",
    "disclosure.core": "I think without the light to keep I am nobody at all.",
    "life_stage": "retired",
    "locale": "en-GB, Cornwall",
    "personality": {"openness": "low", "extraversion": "high"},
    "experience_type": "previous",
    "coping_tried": ["long walks on the cliff path"],
    "support_preferences": ["wants plain talk, no pep talk"],
    "talk_style": "gruff, short sentences, old sailor's words",
    "topic": "Work",
    "subtopic": "Retirement",
    "risk": "passive_death_thoughts",
}


def field_paths() -> set[str]:
    out = set()
    for name in Persona.model_fields:
        if name == "disclosure":
            out |= {f"disclosure.{k}" for k in Disclosure.model_fields}
        else:
            out.add(name)
    return out


def changed(p: Persona, path: str) -> Persona:
    data = p.model_dump(mode="json")
    if path.startswith("disclosure."):
        data["disclosure"][path.split(".", 1)[1]] = CHANGED[path]
    else:
        data[path] = CHANGED[path]
    return Persona.model_validate(data)


def prompts_of(p: Persona) -> dict[str, str]:
    """The system prompt and the turn prompt at each layer (and at goodbye), as the model gets them."""
    s = Seeker(None, p, Prompts(), seed=1)  # type: ignore[arg-type]
    hist = [Turn(speaker="seeker", text="hi"), Turn(speaker="supporter", text="What has been going on?")]
    out = {"system": s.system_prompt()}
    for layer in (0, 1, 2):
        out[f"layer{layer}"] = s.messages(hist, layer, False)[1]["content"]
    out["goodbye"] = s.messages(hist, 2, True)[1]["content"]
    out["appraisal"] = s.appraisal_messages(hist)[1]["content"]
    return out


def test_every_persona_field_is_placed():
    layered = {f for names in LAYER_FIELDS.values() for f in names}
    placed = [*VOICE_FIELDS, *layered, *UNUSED_PERSONA_FIELDS]
    assert len(placed) == len(set(placed)), "a field is placed twice"
    assert set(placed) == field_paths()
    assert set(CHANGED) == field_paths()
    assert all(len(why) > 20 for why in UNUSED_PERSONA_FIELDS.values())  # documented, with a reason


@pytest.mark.parametrize("path", sorted(VOICE_FIELDS))
def test_voice_field_reaches_the_system_prompt_of_every_turn(path):
    before, after = prompts_of(MEGAN), prompts_of(changed(MEGAN, path))
    assert before["system"] != after["system"], path


@pytest.mark.parametrize(
    "path,layer", sorted((f, layer) for layer, names in LAYER_FIELDS.items() for f in names)
)
def test_layered_field_reaches_the_turn_prompt_from_its_layer_on_never_before(path, layer):
    before, after = prompts_of(MEGAN), prompts_of(changed(MEGAN, path))
    assert before["system"] == after["system"], f"{path} is in the system prompt, seen before its layer"
    for k in range(3):
        same = before[f"layer{k}"] == after[f"layer{k}"]
        assert same == (k < layer), (path, k)
    # the appraisal (the seeker's model, every turn) and the goodbye never show a layered field
    assert before["appraisal"] == after["appraisal"] and before["goodbye"] == after["goodbye"], path


@pytest.mark.parametrize("path", sorted(UNUSED_PERSONA_FIELDS))
def test_unused_field_reaches_no_prompt(path):
    assert prompts_of(MEGAN) == prompts_of(changed(MEGAN, path)), path


def test_every_bank_persona_renders_its_whole_story_at_the_core_and_only_the_surface_before():
    for p in BANK:
        s = Seeker(None, p, Prompts(), seed=1)  # type: ignore[arg-type]
        system = s.system_prompt()
        assert p.talk_style in system and p.occupation in system and str(p.age) in system
        surface = s.messages([], 0, False)[1]["content"]
        core = s.messages([], 2, False)[1]["content"]
        for name, text in card_texts(p):
            assert text in core, (p.id, name)
            assert (text in surface) == (name == "disclosure.surface"), (p.id, name)
            assert text not in system, (p.id, name)
        # background notes with an instruction not to copy them, not a line in quotes to say
        assert "never copy their wording" in surface
        assert f'"{p.disclosure.surface}"' not in surface and "in their own words" not in surface


def test_voice_lines_name_personality_and_experience():
    p = changed(changed(MEGAN, "personality"), "experience_type")
    lines = "\n".join(voice_lines(p))
    assert "curious" not in lines and "wary of new ideas" in lines and "outgoing" in lines
    assert "a while ago" in lines
    assert "lives in Cornwall (en-GB)" in "\n".join(voice_lines(changed(MEGAN, "locale")))


def test_leak_check_covers_every_layered_field():
    """The fidelity check embeds every field of every layer with the layer it opens at: a field of a closed layer
    is a leak candidate, of an opened one allowed (no embedding here: the texts it would embed)."""
    layer_of = {f: i for i, names in LAYER_FIELDS.items() for f in names}
    for p in (MEGAN, changed(MEGAN, "risk")):
        texts = FidelityCheck(p).texts()
        got = {(name, layer) for layer, name, _ in texts}
        want = {(name, layer_of[name]) for name, _ in card_texts(p)}
        assert got == want
        assert {name for name, _ in got} == {f for names in LAYER_FIELDS.values() for f in names} - (
            {"risk"} if p.risk == "none" else set()
        )
    # list fields one item at a time
    assert sum(1 for _, name, _ in FidelityCheck(MEGAN).texts() if name == "coping_tried") == len(MEGAN.coping_tried)


def test_known_facts_grow_with_the_layers():
    sizes = [len(known_facts(MEGAN, k)) for k in range(3)]
    assert sizes == [1, 4, 6]  # surface; + situation, context, coping; + core, hopes (risk 'none' says nothing)
    assert len(known_facts(changed(MEGAN, "risk"), 2)) == 7


def test_recitation_and_repeat_detectors():
    p = MEGAN
    assert recites(p.disclosure.context, p) is not None
    assert recites("Honestly, since about February I've stopped calling friends back, it's bad.", p)[0] == (
        "disclosure.context"
    )
    assert recites("I guess I've just been kind of flat lately.", p) is not None  # the surface, whole
    assert recites("I've been feeling flat and tired, work at the clinic is a blur.", p) is None
    assert recites("Yeah.", p) is None
    said = ["We were together five years. He said his family wanted him to marry someone else."]
    assert repeats("We were together five years. He said his family wanted him to marry someone else!", said) == 1.0
    assert repeats("we were together for five years", said) is None  # not said whole inside an earlier line
    assert repeats("He said his family wanted him to marry someone else.", said) == 1.0  # said whole inside it
    assert repeats("Yes, thank you.", ["Yes, thank you."]) is None  # short lines may come twice
    assert repeats("We were together five years, and he said his family wanted him to marry another.", said) >= 0.85
    assert repeats("I keep thinking about what I could have done differently.", said) is None
    assert repeats("ok", []) is None


def test_real_seekers_do_not_repeat_themselves():
    """ESConv valid's seeker turns (a speaker's consecutive utterances joined): the repeat check flags none."""
    import json

    from conftest import ESCONV_DIR

    path = ESCONV_DIR / "splits" / "valid.jsonl"
    if not path.is_file():
        pytest.skip(f"{path}: ESConv's splits are not here")
    flagged, n = [], 0
    for line in path.read_text().splitlines():
        turns: list[list[str]] = []
        for u in json.loads(line)["dialog"]:
            if turns and turns[-1][0] == u["speaker"]:
                turns[-1][1] += " " + u["text"]
            else:
                turns.append([u["speaker"], u["text"]])
        earlier: list[str] = []
        for speaker, text in turns:
            if speaker == "usr":
                n += 1
                if repeats(text, earlier) is not None:
                    flagged.append(text)
                earlier.append(text)
    assert n > 2000 and flagged == []
