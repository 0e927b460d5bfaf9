"""Readers: ESConv JSON (old labels), ESConv TSV, our JSONL, run folders, our esconv.json round trip."""

import json
from collections import Counter

import pytest

from conftest import ESCONV_DIR, persona_dict
from socialsim.chat_format import split_strategy_tag
from socialsim.corpus.esconv_tsv import read_tsv_examples
from socialsim.errors import UserError
from socialsim.evaluate.readers import load_corpus
from socialsim.schema import Dialogue, Persona, Strategy, Turn, write_jsonl

FAILED = ESCONV_DIR / "FailedESConv.json"
DEV_TSV = ESCONV_DIR / "devWithStrategy_short.tsv"

needs_esconv = pytest.mark.skipif(not FAILED.is_file(), reason="ESConv material in ../shared is missing")


@needs_esconv
def test_failed_esconv_json_counts_and_label_mapping():
    c = load_corpus(FAILED)
    assert c.format == "esconv-json"
    assert len(c.dialogues) == 196 and len(c.meta) == 196
    raw = json.loads(FAILED.read_text())
    raw_speakers = Counter(u["speaker"] for d in raw for u in d["dialog"])
    assert set(raw_speakers) == {"speaker", "listener"}  # the older labels
    speakers = Counter(t.speaker for d in c.dialogues for t in d.turns)
    assert speakers == {"seeker": raw_speakers["speaker"], "supporter": raw_speakers["listener"]}
    raw_strat = Counter(u["annotation"]["strategy"] for d in raw for u in d["dialog"] if "strategy" in u["annotation"])
    got = Counter(t.strategy for d in c.dialogues for t in d.turns if t.strategy is not None)
    # older names map onto the eight current ones
    assert got[Strategy.QUESTION] == raw_strat["Questions"] + raw_strat["Question"]
    assert got[Strategy.OTHERS] == raw_strat["Other"]
    assert got[Strategy.SUGGESTION] == raw_strat["Providing Suggestions"] + raw_strat["Direct Guidance"]
    assert got[Strategy.AFFIRMATION] == raw_strat["Affirmation and Reassurance"] + raw_strat["Approval and Reassurance"]
    assert got[Strategy.RESTATEMENT] == raw_strat["Restatement or Paraphrasing"] + raw_strat["Restatement"]
    assert sum(got.values()) == sum(raw_strat.values()) == 2377
    # every supporter turn carries a strategy; seekers none
    assert all((t.strategy is not None) == (t.speaker == "supporter") for d in c.dialogues for t in d.turns)
    d0, m0 = c.dialogues[0], c.meta[0]
    assert d0.persona is None and d0.backend == "esconv" and d0.model == "human"
    assert d0.turns[0].text == "Hey there" and d0.turns[2].strategy is Strategy.OTHERS
    assert m0.problem_type == "ongoing depression" and m0.emotion_type == "depression"
    assert m0.situation.startswith("General depression")
    assert m0.survey["seeker"]["initial_emotion_intensity"] == "5"
    assert m0.survey["seeker_feedback"][:2] == [4, 1]
    problems = Counter(m.problem_type for m in c.meta)
    assert problems["ongoing depression"] == 54 and problems["conflict with parents"] == 1


@needs_esconv
def test_dev_tsv_examples():
    ex = read_tsv_examples(DEV_TSV)
    assert len(ex) == 2985
    first, second = ex[0], ex[1]
    assert first.line == 1 and first.reference == "Hello" and first.strategy is Strategy.OTHERS
    assert [t.speaker for t in first.context] == ["seeker"]
    assert first.context[0].text.startswith("Hello i was wondering")
    assert second.strategy is Strategy.QUESTION  # the file's "[Questions]"
    assert second.reference == "How has the pandemic affected your mental health?"
    assert [t.text for t in second.context] == [first.context[0].text, "Hello"]
    assert second.context[1].strategy is Strategy.OTHERS  # context tags are parsed and stripped too
    assert all(e.strategy is not None and e.reference and not e.reference.startswith("[") for e in ex)
    assert all(len(e.context) <= 4 for e in ex)
    tags = Counter()
    for line in DEV_TSV.read_text(encoding="utf-8").splitlines():
        last = line.split(" EOS ")[-1]
        tags[last.split(" ", 3)[3].split("]")[0].lstrip("[")] += 1
    got = Counter(e.strategy for e in ex)
    assert got[Strategy.QUESTION] == tags["Questions"] > 0
    assert got[Strategy.OTHERS] == tags["Other"]
    assert sum(got.values()) == 2985


@needs_esconv
def test_dev_tsv_as_corpus_stitches_dialogues():
    c = load_corpus(DEV_TSV)
    assert c.format == "esconv-tsv"
    assert len(c.examples) == 2985
    # ESConv's first release had 1,410 dialogues; its 15% dev split is 211 of them
    assert len(c.dialogues) == 211
    assert max(e.dialogue_index for e in c.examples) == 210
    d0 = c.dialogues[0]
    assert d0.turns[0].speaker == "seeker" and d0.turns[1].text == "Hello"
    # every target response is a supporter turn of its stitched dialogue
    for e in c.examples[:300]:
        texts = {t.text for t in c.dialogues[e.dialogue_index].turns if t.speaker == "supporter"}
        assert e.reference in texts


def test_split_strategy_tag():
    assert split_strategy_tag("[Questions] How are you?") == (Strategy.QUESTION, "How are you?")
    assert split_strategy_tag("[Direct Guidance] Try a walk.") == (Strategy.SUGGESTION, "Try a walk.")
    assert split_strategy_tag("no tag") == (None, "no tag")
    with pytest.raises(ValueError, match="unknown strategy"):
        split_strategy_tag("[Telepathy] hi")


def _sim_dialogue(i: int, **over) -> Dialogue:
    p = Persona.model_validate(persona_dict(id=f"p{i}"))
    d = Dialogue(
        id=f"d{i}",
        persona_id=p.id,
        persona=p,
        backend="local",
        model="m",
        seed=i,
        turns=[
            Turn(speaker="seeker", text="I'm stressed about school.", disclosure_layer=0),
            Turn(speaker="supporter", text="That sounds hard. What happened?", strategy=Strategy.QUESTION),
            Turn(speaker="seeker", text="I failed a midterm.", disclosure_layer=1),
            Turn(speaker="supporter", text="You feel scared.", strategy=Strategy.REFLECTION),
        ],
        end_reason="turn_cap",
    )
    return d.model_copy(update=over)


def test_jsonl_run_folder_and_esconv_export_round_trip(tmp_path):
    from socialsim.simulate.store import RunStore

    ds = [_sim_dialogue(0), _sim_dialogue(1, status="failed", failure_reason="thought unparseable")]
    jsonl = tmp_path / "d.jsonl"
    write_jsonl(ds, jsonl)
    c = load_corpus(jsonl)
    assert c.format == "jsonl" and [d.id for d in c.dialogues] == ["d0", "d1"]
    assert c.meta[0].problem_type == "academic pressure" and c.meta[0].emotion_type == "anxiety"

    run = tmp_path / "run"
    store = RunStore.create(run, {"x": 1}, "h")
    for i, d in enumerate(ds):
        store.commit(i, d)
    paths = store.export()
    store.close()
    r = load_corpus(run)
    assert r.format == "run" and r.name == "run" and r.dialogues == ds
    back = load_corpus(paths["esconv"])  # our ESConv export, extras restored
    assert back.format == "esconv-json"
    for a, b in zip(ds, back.dialogues, strict=True):
        assert b.id == a.id and b.status == a.status and b.end_reason == a.end_reason
        assert [(t.speaker, t.text, t.strategy, t.disclosure_layer) for t in b.turns] == [
            (t.speaker, t.text, t.strategy, t.disclosure_layer) for t in a.turns
        ]
    assert back.meta[0].problem_type == "academic pressure"


def test_run_folder_with_only_jsonl(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    write_jsonl([_sim_dialogue(0)], run / "dialogues.jsonl")
    c = load_corpus(run)
    assert c.format == "run" and len(c.dialogues) == 1


@pytest.mark.parametrize(
    "content,needles",
    [
        ("", ["empty"]),
        ("[]", ["no dialogues"]),
        ('{"a": 1}\n', [":1:", "field 'persona_id'"]),
        ('[{"dialog": [{"speaker": "seeker", "content": "hi"}]}, {"situation": "x"}]', ["dialogue [1]", "'dialog'"]),
        ('[{"dialog": [{"speaker": "bot", "content": "hi"}]}]', ["dialog[0].speaker", "unknown speaker"]),
        (
            '[{"dialog": [{"speaker": "listener", "annotation": {"strategy": "Telepathy"}, "content": "hi"}]}]',
            ["dialog[0].annotation.strategy", "Telepathy"],
        ),
        ('[{"dialog": [{"speaker": "seeker"}]}]', ["dialog[0].content"]),
        ("[1, 2", [":1:", "not valid JSON"]),
        ("1.0 0 0 hi EOS 1.0 1 1 [Questions] ok?\n1.0 7 2 hm\n", [":2:", "field 'speaker'"]),
        ("1.0 0 0 hi EOS 1.0 1 1 [Telepathy] ok?\n", [":1:", "field 'strategy'"]),
        ("1.0 1 0 [Questions] hi EOS 1.0 0 1 ok\n", [":1:", "last turn"]),
        ("hello\n", [":1:", "turn 1"]),
    ],
)
def test_bad_corpus_files_name_file_line_and_field(tmp_path, content, needles):
    p = tmp_path / "corpus.txt"
    p.write_text(content)
    with pytest.raises(UserError) as e:
        load_corpus(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    for n in needles:
        assert n in msg, msg


def test_missing_paths(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_corpus(tmp_path / "nope.json")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="not a socialsim run"):
        load_corpus(tmp_path / "folder")
