"""One home for ESConv's strategies (`socialsim.taxonomy`): the aliases, definitions and classifier
descriptions live there, every prompt and the report render them from there, and no other file under
src/ repeats them."""

import html
import json
from pathlib import Path

import pytest

from socialsim.agents.prompts import Prompts
from socialsim.agents.supporter import Supporter
from socialsim.schema import STRATEGY_ALIASES, ReplyAct, Strategy, SupporterThought, Turn, parse_strategy
from socialsim.taxonomy import TAXONOMY, definitions

SRC = Path(__file__).resolve().parents[1] / "src"
HOME = SRC / "socialsim" / "taxonomy.py"


def _sentences() -> list[str]:
    """Every definition, classifier description and example sentence of the taxonomy."""
    return [x for i in TAXONOMY.values() for x in (i.definition, i.description, *i.examples)]


def test_every_alias_maps_to_one_of_the_eight():
    assert len(Strategy) == 8 and STRATEGY_ALIASES
    assert all(s in Strategy for s in STRATEGY_ALIASES.values())
    for old, new in (
        ("Questions", Strategy.QUESTION),
        ("Other", Strategy.OTHERS),
        ("Approval and Reassurance", Strategy.AFFIRMATION),
        ("Direct Guidance", Strategy.SUGGESTION),
        ("Restatement", Strategy.RESTATEMENT),
        ("[Reflection of feeling]", Strategy.REFLECTION),
    ):
        assert parse_strategy(old) is new
    for alias, s in STRATEGY_ALIASES.items():
        assert alias == alias.lower() and parse_strategy(alias.upper()) is s
        assert alias not in {x.value.lower() for x in Strategy}  # an alias never shadows a current label
    with pytest.raises(ValueError, match="expected one of: Question, "):
        parse_strategy("Empathy")


def test_every_strategy_has_a_definition_description_short_name_and_two_examples():
    assert list(TAXONOMY) == list(Strategy)
    for s, info in TAXONOMY.items():
        assert info.label == s.value and info.short
        assert len(info.definition) > 20 and len(info.description) > 10
        assert len(info.examples) == 2 and all(len(e) > 10 for e in info.examples)
    assert len(set(_sentences())) == len(_sentences())


def test_classifier_prompt_renders_the_taxonomy():
    text = Prompts().render("strategy_classifier.j2")
    for info in TAXONOMY.values():
        assert f"- {info.label}: {info.description}\n" in text
        for e in info.examples:
            assert f'"{e}" -> {info.label}\n' in text


def test_supporter_prompts_render_the_definitions():
    prompts = Prompts()
    assert prompts.strategies == definitions()
    sup = Supporter(None, prompts, seed=1)  # type: ignore[arg-type]
    hist = [Turn(speaker="seeker", text="My exams scare me.")]
    guide = sup.thought_messages(hist)[0]["content"]
    for s, info in TAXONOMY.items():
        assert f"- {info.label}: {info.definition}\n" in guide + "\n"
        thought = SupporterThought(emotion="fear", intensity=3, cause="Exams.", need="Calm.", strategy=s, rationale="x")
        note = sup.reply_messages(hist, thought)[-1]["content"]
        assert f"Strategy for this reply: {info.label}: {info.definition}\n" in note
    assert sup.leak_phrases == [i.definition.rstrip(".") for i in TAXONOMY.values()]


def test_seeker_appraisal_lists_the_reply_acts():
    from conftest import persona_dict
    from socialsim.schema import Persona

    text = Prompts().render(
        "seeker_appraisal.j2", p=Persona.model_validate(persona_dict()), history=[Turn(speaker="seeker", text="hi")]
    )
    assert "reply_did (one of: " + ", ".join(a.value for a in ReplyAct) + ")" in text


def test_a_prompt_folder_may_replace_a_definition(tmp_path):
    (tmp_path / "strategies.json").write_text(json.dumps({"Questions": "Ask one short question."}))
    own = Prompts(tmp_path)
    assert own.strategies[Strategy.QUESTION] == "Ask one short question."
    assert own.strategies[Strategy.OTHERS] == TAXONOMY[Strategy.OTHERS].definition
    assert "- Question: Ask one short question.\n" in own.render("supporter_thought.j2")
    assert own.source_digest() != Prompts().source_digest()  # a run's config sees the change


def test_report_renders_the_definitions():
    pytest.importorskip("matplotlib")
    from socialsim.evaluate.metrics import compare
    from socialsim.evaluate.report import build_report
    from test_evaluate_metrics import tiny

    c = tiny()
    page, _ = build_report(compare([c], diversity="none"), [c])
    text = html.unescape(page)
    for info in TAXONOMY.values():
        cells = (info.label, info.short, info.definition, info.description)
        assert "".join(f"<td>{c}</td>" for c in cells) in text


def test_no_other_file_under_src_repeats_a_definition():
    sentences = [s.encode() for s in _sentences()]
    found: dict[bytes, list[Path]] = {s: [] for s in sentences}
    for path in SRC.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        data = path.read_bytes()
        for s in sentences:
            if s in data:
                found[s].append(path)
    assert {s.decode(): paths for s, paths in found.items() if paths != [HOME]} == {}
