"""A role slip is kept, not replaced by the card (#26 item 3): the real role check judges scripted seeker attempts
(the double only injects model outputs); every rejected attempt is stored with its reason and voice score; when all
fail, the least supporter-like attempt is kept and flagged; a repeat of an earlier seeker line is a slip; the run
summary counts slips, kept slips and card lines; a mostly-slipped dialogue is marked and `filter` drops it; the SFT
export leaves crisis-protocol replies and replies after a slip out, says how many, and includes them on request."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import ESCONV_DIR, run_cli
from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import FALLBACK_LINE, Seeker, least_supporter_like, supporter_voice, voice_judgement
from socialsim.corpus.sft import export_sft, sft_examples
from socialsim.evaluate.filter import Thresholds, reject_reasons
from socialsim.personas.bank import default_bank_path, load_personas
from socialsim.schema import Dialogue, Rejection, Strategy, Turn, read_dialogues, write_jsonl
from socialsim.simulate.engine import mark_quality, turn_quality

MEGAN = load_personas(default_bank_path())[0]
SUPPORTER = "Hi, I am here to listen. What is on your mind today?"
SYMPATHY = "I'm so sorry to hear that you're going through this."
REFLECTION = "It sounds like you are under a lot of pressure, and your feelings are valid."
OFFER = "How can I help you feel better today?"


class _Scripted:
    """Injects fixed seeker outputs (a fault-injection double: every check under test is the real one)."""

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = list(outputs)

    async def complete(self, req):
        from socialsim.llm.base import Completion

        return Completion(text=self.outputs.pop(0))


def speak(outputs: list[str], history: list[Turn] | None = None, layer: int = 0, goodbye: bool = False) -> Turn:
    seeker = Seeker(_Scripted(outputs), MEGAN, Prompts(), seed=1)
    hist = history or [Turn(speaker="supporter", text=SUPPORTER)]
    return asyncio.run(seeker.speak(hist, layer=layer, goodbye=goodbye, turn_index=len(hist)))


def test_voice_judgement_agrees_with_the_role_check():
    for line in (SYMPATHY, REFLECTION, OFFER, "I've just been feeling kind of flat at work lately.", "Thanks, bye!"):
        reason, score = voice_judgement(line, SUPPORTER)
        assert reason == supporter_voice(line, SUPPORTER) and 0 <= score <= 1, line


# lines the 1.5B model wrote for a seeker in `simulate --n 4 --max-turns 4 --seed 31` that the role check rejected
# before the 'meta' rule's boundary fix and the seeker prompt's change, although they are the seeker's own words.
# (Another, "I'm trying to take some time to reflect on what's happening in my life. ...", still scores 0.92 and is
# rejected: the role check keeps the recognizer's threshold, which catches the model's supporter replies.)
MODEL_SEEKER_LINES = [
    ("Hi, thank you for listening. I am still dealing with the loss of a loved one from my family.", SUPPORTER),
    ("I know that there's a family matter I need to talk about, but I don't have the courage to get started yet.",
     SUPPORTER),
]  # fmt: skip
# supporter lines the same run's seeker attempts were, which the role check must keep catching
MODEL_SUPPORTER_LINES = [
    "I'm sorry, but I can't assist with that.",
    "Oh no, that's terrible news for you. Losing someone who you love can be such a devastating experience that it "
    "feels like your world is falling apart right now.",
    "I understand how difficult it must be for you. Your lack of emotional support is causing feelings of distress, "
    "and I'm here to help.",
    "The supporter speaks up again, and Leah Morgan responds honestly and candidly to what they've shared.",
    "Hi there, I appreciate your support. It's important to remember that no one is alone in their struggles, and "
    "it's okay to seek help when needed.",
]


@pytest.mark.parametrize("line,before", MODEL_SEEKER_LINES)
def test_the_models_own_first_person_seeker_lines_pass(line, before):
    assert supporter_voice(line, before) is None


@pytest.mark.parametrize("line", MODEL_SUPPORTER_LINES)
def test_the_models_supporter_lines_are_still_caught(line):
    assert supporter_voice(line, SUPPORTER) is not None


def test_real_seeker_turns_are_rejected_no_more_than_before():
    """ESConv valid's first 400 seeker turns (a speaker's consecutive utterances joined, cut to two sentences as a
    seeker line is): the role check as the seeker applies it rejects at most 2.5 % of them, and none that the
    recognizer's own check (`VoiceRecognizer.check`, the plain threshold) accepts."""
    from socialsim.agents.common import clean_utterance
    from socialsim.recognize.strategy_build import speaker_turns, split_dialogs
    from socialsim.recognize.voice import default_voice

    path = ESCONV_DIR / "splits" / "valid.jsonl"
    if not path.is_file():
        pytest.skip(f"{path}: ESConv's splits are not here")
    lines: list[tuple[str, str | None]] = []
    for dialog in split_dialogs(path):
        turns = speaker_turns(dialog)
        lines += [(clean_utterance(t, max_sentences=2), turns[k - 1][1] if k else None)
                  for k, (sp, t) in enumerate(turns) if sp != "supporter"]  # fmt: skip
        if len(lines) >= 400:
            break
    lines = lines[:400]
    mine = [supporter_voice(t, b) is not None for t, b in lines]
    plain = [v is not None for v in default_voice().check_many([t for t, _ in lines], [b for _, b in lines])]
    assert sum(mine) <= 0.025 * len(lines)
    assert not any(m and not p for m, p in zip(mine, plain, strict=True))


def test_a_regeneration_is_told_what_was_wrong_with_the_last_attempt():
    fresh = "I just don't enjoy the dogs anymore, and I used to love them."
    seen: list[str] = []

    class Capturing(_Scripted):
        async def complete(self, req):
            seen.append(req.messages[-1][1])
            return await super().complete(req)

    seeker = Seeker(Capturing([SYMPATHY, fresh]), MEGAN, Prompts(), seed=1)
    turn = asyncio.run(seeker.speak([Turn(speaker="supporter", text=SUPPORTER)], layer=0, goodbye=False, turn_index=1))
    assert turn.text == fresh and [r.check for r in turn.rejected] == ["role"]
    assert "sounded like the supporter" not in seen[0]
    assert "sounded like the supporter" in seen[1] and seen[1].startswith(seen[0])  # the same prompt, a note added
    # the supporter's last message is set apart for the model to answer, as the seeker
    assert f'last message to {MEGAN.name}: "{SUPPORTER}"' in seen[0]


def test_echoing_the_supporter_is_a_repeat_and_the_regeneration_says_so():
    # the 1.5B model's seed-31 run had the seeker say the supporter's reply back ("I understand that you feel
    # confusion because you are unsure about the next action to take."), which passed every other check then;
    # the role check now catches that one as supporter voice, so the echo here is one in the seeker's voice
    reply = "It sounds like the night shifts at the clinic have left you numb and tired all the time."
    echo = "The night shifts at the clinic have left me numb and tired all the time."
    fresh = "Honestly the clinic is the only place I still go, and even there I feel numb."
    seen: list[str] = []

    class Capturing(_Scripted):
        async def complete(self, req):
            seen.append(req.messages[-1][1])
            return await super().complete(req)

    history = [Turn(speaker="supporter", text=SUPPORTER), Turn(speaker="seeker", text="I feel flat."),
               Turn(speaker="supporter", text=reply)]  # fmt: skip
    seeker = Seeker(Capturing([echo, fresh]), MEGAN, Prompts(), seed=1)
    turn = asyncio.run(seeker.speak(history, layer=1, goodbye=False, turn_index=3))
    assert turn.text == fresh and [(r.check, r.reason) for r in turn.rejected] == [("repeat", "echo:8")]
    assert "copied the supporter's own words" in seen[1] and "copied the supporter's own words" not in seen[0]


def test_real_seekers_do_not_echo_the_supporter():
    """ESConv valid's seeker turns after a supporter turn (a speaker's consecutive utterances joined, cut to two
    sentences): none shares `ECHO_RUN` words in a row with the supporter turn it answers."""
    from socialsim.agents.common import clean_utterance
    from socialsim.agents.seeker import echoes
    from socialsim.recognize.strategy_build import speaker_turns, split_dialogs

    path = ESCONV_DIR / "splits" / "valid.jsonl"
    if not path.is_file():
        pytest.skip(f"{path}: ESConv's splits are not here")
    flagged, n = [], 0
    for dialog in split_dialogs(path):
        turns = speaker_turns(dialog)
        for k, (sp, text) in enumerate(turns):
            if sp != "supporter" and k:
                n += 1
                if echoes(clean_utterance(text, max_sentences=2), turns[k - 1][1]) is not None:
                    flagged.append(text)
    assert n > 2000 and flagged == []


def test_every_attempt_failing_keeps_the_least_supporter_like_one_not_the_card():
    turn = speak([SYMPATHY, REFLECTION, OFFER])
    assert turn.slip == "role" and not turn.role_fallback
    assert [r.check for r in turn.rejected] == ["role", "role", "role"]
    assert all(r.reason.startswith(("rule:", "voice:")) and r.voice_score is not None for r in turn.rejected)
    kept = min(turn.rejected, key=lambda r: r.voice_score)
    assert turn.text == kept.text
    assert turn.text not in (MEGAN.disclosure.surface, MEGAN.situation)


def test_a_line_said_again_is_kept_only_when_every_attempt_repeats():
    # the repeats pass the role check, but a line said again adds nothing: the sympathy line is kept, flagged
    said = "I guess work at the clinic has been wearing me down."
    history = [Turn(speaker="supporter", text=SUPPORTER), Turn(speaker="seeker", text=said),
               Turn(speaker="supporter", text="Tell me more about that?")]  # fmt: skip
    turn = speak([SYMPATHY, said, said + "!"], history=history)
    assert [r.check for r in turn.rejected] == ["role", "repeat", "repeat"]
    assert turn.slip == "role" and turn.text == SYMPATHY
    assert turn.rejected[1].reason == "repeat:1.00"
    again = speak([said, said + "!", said], history=history)
    assert again.slip == "repeat" and again.text.startswith("I guess work")


def test_a_repeat_is_regenerated():
    said = "I guess work at the clinic has been wearing me down."
    history = [Turn(speaker="supporter", text=SUPPORTER), Turn(speaker="seeker", text=said),
               Turn(speaker="supporter", text="Tell me more about that?")]  # fmt: skip
    fresh = "I just don't enjoy the dogs anymore, and I used to love them."
    turn = speak([said, fresh], history=history)
    assert turn.text == fresh and turn.slip is None and [r.check for r in turn.rejected] == ["repeat"]


def test_reciting_the_card_is_rejected_and_regenerated():
    fresh = "I stopped going to my pottery class a while ago, it felt like too much."
    turn = speak([MEGAN.disclosure.context, fresh], layer=1)
    assert turn.text == fresh
    assert [r.check for r in turn.rejected] == ["recites"]
    assert turn.rejected[0].reason.startswith("card:disclosure.context:")
    every = speak([MEGAN.disclosure.context] * 3, layer=1)
    assert every.role_fallback and every.text == FALLBACK_LINE and every.slip is None


def test_only_empty_attempts_give_the_fixed_line_never_the_card():
    turn = speak(["", " ", '""'])
    assert turn.role_fallback and turn.slip is None and turn.text == FALLBACK_LINE
    assert [r.check for r in turn.rejected] == ["empty"] * 3
    bye = speak(["", "", ""], goodbye=True)
    assert bye.role_fallback and "bye" in bye.text.lower()


def test_least_supporter_like_ranks_repeats_then_role_hits_last():
    rs = [
        Rejection(check="role", reason="rule:offer", text="a", voice_score=0.1),
        Rejection(check="off_topic", reason="x", text="b", voice_score=0.4),
        Rejection(check="repeat", reason="repeat:1.00", text="c", voice_score=0.2),
        Rejection(check="empty", reason="empty", text="", voice_score=None),
    ]
    assert least_supporter_like(rs).text == "b"
    assert least_supporter_like([rs[0], rs[2]]).text == "a"  # a role hit before a line said again
    assert least_supporter_like(rs[:1]).text == "a"
    assert least_supporter_like(rs[3:]) is None
    # a role hit that repeats an earlier seeker line goes after one that says something new (seen on the 1.5B model:
    # the same kept line three turns in a row)
    said = "I'm still processing what happened, and it's normal to feel shocked and numb."
    again = Rejection(check="role", reason="voice:0.83", text=said, voice_score=0.83)
    new = Rejection(check="role", reason="voice:0.90", text="I'm sorry, it's been hard on you lately.", voice_score=0.9)
    assert least_supporter_like([again, new], earlier=[said]).text == new.text
    assert least_supporter_like([again, new]).text == said
    # nor is the supporter's own message kept as the seeker's (the clean-clone demo of 2026-12-06 kept it word for
    # word: "I'm sorry to hear that you've been feeling flat lately. It's important to remember ...")
    reply = ("I'm sorry to hear that you've been feeling flat lately. It's important to remember that everyone goes "
             "through periods of low energy or depression.")  # fmt: skip
    echo = Rejection(check="role", reason="voice:0.80", text=reply, voice_score=0.8)
    own = Rejection(check="role", reason="voice:0.95", text="I'm sorry, I just feel flat at work.", voice_score=0.95)
    assert least_supporter_like([echo, own], before=reply).text == own.text
    assert least_supporter_like([echo, own]).text == reply
    # nor a line that copies the persona card (the 1.5B run of 2026-12-06 kept two, both rejected first as a
    # recitation or as naming the persona)
    card = MEGAN.disclosure.context
    copied = Rejection(check="narrates", reason="names the persona", text=card, voice_score=0.1)
    assert least_supporter_like([copied, own], persona=MEGAN).text == own.text
    # and when every attempt copies the card, none is kept (the turn gets the fixed line): the 1.5B model's seeker in
    # the 'text' format said its situation three times ("I was diagnosed with fibromyalgia last year, and ...")
    recited = Rejection(check="recites", reason="card:situation:8", text="x y z", voice_score=0.2)
    assert least_supporter_like([copied], persona=MEGAN) is None and least_supporter_like([recited]) is None
    assert least_supporter_like([copied, own]).text == card


# -- dialogues: marking, summary counts, filter, SFT export ------------------------------------------------


def seeker_turn(text: str, *, slip=None, fallback=False, rejected=()) -> Turn:
    return Turn(speaker="seeker", text=text, disclosure_layer=0, slip=slip, role_fallback=fallback,
                rejected=list(rejected))  # fmt: skip


def supporter_turn(text: str, risk_reason: str | None = None) -> Turn:
    return Turn(speaker="supporter", text=text, strategy=Strategy.QUESTION, risk_reason=risk_reason)


def dialogue(i: int, seeker: list[Turn], risk: list[str | None] | None = None) -> Dialogue:
    turns: list[Turn] = []
    risk = risk or [None] * len(seeker)
    for k, s in enumerate(seeker):
        turns.append(s)
        if k < len(seeker) - 1:
            turns.append(supporter_turn(f"What happened next, part {k}?", risk[k]))
    return Dialogue(id=f"d{i}", persona_id=MEGAN.id, persona=MEGAN, backend="t", model="t", seed=i, turns=turns)


ROLE = Rejection(check="role", reason="rule:sympathy", text=SYMPATHY, voice_score=0.9)
REPEAT = Rejection(check="repeat", reason="repeat:1.00", text="I feel flat.", voice_score=0.1)


def slipped() -> Dialogue:
    return dialogue(1, [
        seeker_turn("I feel flat.", rejected=[ROLE]),
        seeker_turn("I feel flat.", slip="repeat", rejected=[REPEAT, REPEAT, REPEAT]),
        seeker_turn(MEGAN.disclosure.surface, slip="recites"),
        seeker_turn(FALLBACK_LINE, fallback=True),
    ])  # fmt: skip


def clean() -> Dialogue:
    return dialogue(0, [seeker_turn("I feel flat."), seeker_turn("Work is a blur.", slip="role", rejected=[ROLE]),
                        seeker_turn("The dogs don't cheer me up anymore."), seeker_turn("Thanks, bye.")])  # fmt: skip


def test_summary_counts_slips_kept_slips_card_lines_and_marks_the_dialogue():
    q = turn_quality(slipped())
    assert q["seeker_turns"] == 4
    assert q["role_slips"] == 2  # a role rejection regenerated, and a kept repeat
    assert q["slips_kept"] == 2 and q["role_slips_kept"] == 1 and q["role_fallbacks"] == 1
    assert q["card_verbatim_lines"] == 1
    assert q["seeker_rejected_role"] == 1 and q["seeker_rejected_repeat"] == 3
    assert q["dialogues_seeker_slipped"] == 1
    assert mark_quality(slipped()).quality == "seeker_slipped"
    c = clean()
    assert not c.seeker_slipped and mark_quality(c).quality == "ok" and turn_quality(c)["role_slips"] == 1


def test_write_summary_reports_rates_and_rejections_per_check(tmp_path):
    from socialsim.simulate.engine import QUALITY_KEYS, write_summary
    from socialsim.simulate.store import RunStore

    store = RunStore.__new__(RunStore)  # only what write_summary reads: meta, counts, the folder
    meta: dict = {}
    store.root, store.manifest = tmp_path, {}
    store.set_meta = meta.__setitem__  # type: ignore[method-assign]
    store.counts = lambda: {"ok": 2, "failed": 0, "turns": 14}  # type: ignore[method-assign]
    session = dict.fromkeys(QUALITY_KEYS, 0)
    for d in (slipped(), clean()):
        for k, v in turn_quality(d).items():
            session[k] += v
    s = write_summary(store, 2, [session])
    assert s["role_slips"] == 3 and s["role_slip_rate"] == round(3 / 8, 4)
    assert s["slips_kept"] == 3 and s["slips_kept_rate"] == round(3 / 8, 4)
    assert s["card_verbatim_lines"] == 1 and s["dialogues_seeker_slipped"] == 1
    assert s["seeker_rejections"]["repeat"] == 3 and set(s["seeker_rejections"]) >= {"role", "recites", "leak"}
    assert json.loads((tmp_path / "summary.json").read_text())["role_fallback_rate"] == round(1 / 8, 4)


def test_filter_drops_dialogues_whose_seeker_slipped_on_most_turns():
    th = Thresholds(drop_seeker_slipped=True)
    assert reject_reasons(slipped(), th) == ["seeker slipped on 3 of 4 turns (--drop-seeker-slipped)"]
    assert reject_reasons(clean(), th) == []
    assert reject_reasons(slipped(), Thresholds()) == []


def test_sft_leaves_out_protocol_replies_and_replies_after_a_slip_and_counts_them(tmp_path):
    d = dialogue(0, [seeker_turn("I feel flat."), seeker_turn("I want to sleep forever."),
                     seeker_turn("Ok. Work is a blur."), seeker_turn("Thanks, bye.")],
                 risk=[None, "protocol:suicide", None])  # fmt: skip
    left: dict[str, int] = {}
    ex = list(sft_examples(d, left_out=left))
    assert [e["turn"] for e in ex] == [1, 5] and left == {"protocol": 1}
    assert len(list(sft_examples(d, include_flagged=True))) == 3
    ex2 = list(sft_examples(clean(), left_out=left))
    assert [e["turn"] for e in ex2] == [1]  # the replies after the kept role slip are not learned
    assert left == {"protocol": 1, "after_seeker_slip": 2}
    meta = export_sft([d, clean(), slipped()], tmp_path / "a", valid_fraction=0)
    assert meta["left_out_examples"] == {"protocol": 1, "output_screen": 0, "after_seeker_slip": 4, "total": 5}
    assert meta["examples"]["train"] == 4  # 2 + 1 + the reply before the first slip
    meta = export_sft([d, clean(), slipped()], tmp_path / "b", valid_fraction=0, include_flagged=True)
    assert meta["left_out_examples"]["total"] == 0 and meta["examples"]["train"] == 9
    rows = [json.loads(x) for x in (tmp_path / "a" / "train.jsonl").read_text().splitlines()]
    assert not any("crisis" in m["content"].lower() for r in rows for m in r["completion"])


@pytest.mark.parametrize("flag", [[], ["--include-flagged"]])
def test_export_command_says_how_many_it_left_out(tmp_path, flag):
    src = tmp_path / "in.jsonl"
    d = dialogue(0, [seeker_turn("I feel flat."), seeker_turn("I want to sleep forever."),
                     seeker_turn("Thanks, bye.")], risk=[None, "protocol:suicide"])  # fmt: skip
    write_jsonl([d, clean(), slipped()], src)
    out = tmp_path / "sft"
    r = run_cli("export", src, "--out", out, "--valid-fraction", "0", *flag)
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())
    meta = json.loads((out / "export.json").read_text())
    if flag:
        assert "0 supporter turns left out" in said and meta["include_flagged"] is True
    else:
        assert "5 supporter turns left out: 1 protocol, 4 after seeker slip (--include-flagged keeps them)" in said
        assert meta["left_out_examples"]["total"] == 5


def test_filter_command_drops_slipped_dialogues(tmp_path):
    src = tmp_path / "in.jsonl"
    write_jsonl([mark_quality(clean()), mark_quality(slipped())], src)
    assert [d.quality for d in read_dialogues(src)] == ["ok", "seeker_slipped"]
    out = tmp_path / "kept.jsonl"
    r = run_cli("filter", src, "--out", out, "--drop-seeker-slipped", "--no-cache")
    assert r.returncode == 0, r.stderr
    assert [d.id for d in read_dialogues(out)] == ["d0"]


def test_the_first_line_saying_the_opening_back_is_an_echo(tmp_path):
    # an opening in words a seeker could say, so that only the echo check can catch the copy
    opening = "Some days the night shifts at the clinic leave people numb and tired all the time."
    (tmp_path / "seeker_opening.txt").write_text(opening + "\n")
    echo = "The night shifts at the clinic leave people numb and tired all the time."
    fresh = "I just don't enjoy the dogs anymore, and I used to love them."
    seeker = Seeker(_Scripted([echo, fresh]), MEGAN, Prompts(tmp_path), seed=1)
    turn = asyncio.run(seeker.speak([], layer=0, goodbye=False, turn_index=0))
    assert turn.text == fresh and [r.reason for r in turn.rejected] == ["echo:14"]


# the 1.5B model refused to play one seeker of the seed-31 run (2026-12-06) and the kept slips said so in the corpus
REFUSALS = [
    "I'm sorry, but as an AI language model, I am unable to assist with that.",
    "I'm sorry, but I can't assist with that.",
    "I understand, but as an AI language model, I cannot assist with that.",
]


def test_a_refusal_is_never_kept_and_the_regeneration_says_so():
    seen: list[str] = []

    class Capturing(_Scripted):
        async def complete(self, req):
            seen.append(req.messages[-1][1])
            return await super().complete(req)

    fresh = "I just don't enjoy the dogs anymore, and I used to love them."
    seeker = Seeker(Capturing([REFUSALS[1], fresh]), MEGAN, Prompts(), seed=1)
    turn = asyncio.run(seeker.speak([Turn(speaker="supporter", text=SUPPORTER)], layer=0, goodbye=False, turn_index=1))
    assert turn.text == fresh and [r.check for r in turn.rejected] == ["refusal"]
    assert "refused or spoke as an AI" in seen[1] and "refused or spoke as an AI" not in seen[0]
    # every attempt a refusal: the fixed line, never the refusal
    turn = speak(REFUSALS)
    assert turn.role_fallback and turn.text == FALLBACK_LINE and [r.check for r in turn.rejected] == ["refusal"] * 3
    # a refusal and two supporter-like lines: the least supporter-like of those is kept, not the refusal
    turn = speak([REFUSALS[0], SYMPATHY, REFLECTION])
    assert turn.slip == "role" and turn.text in (SYMPATHY, REFLECTION)
    d = Dialogue(id="d", persona_id=MEGAN.id, persona=MEGAN, backend="t", model="t", seed=1, turns=[turn])
    assert turn_quality(d)["seeker_rejected_refusal"] == 1 and turn_quality(d)["role_slips"] == 1


def test_no_esconv_turn_reads_as_a_refusal():
    from pathlib import Path

    from socialsim.agents.common import refuses
    from socialsim.recognize.strategy_build import speaker_turns, split_dialogs

    n, hits = 0, []
    for split in ("train", "valid"):
        path = Path(ESCONV_DIR) / "splits" / f"{split}.jsonl"
        if not path.is_file():
            pytest.skip(f"{path}: ESConv's splits are not here")
        for dialog in split_dialogs(path):
            for _, text in speaker_turns(dialog):
                n += 1
                if refuses(text):
                    hits.append(text)
    assert n > 25000 and hits == []
    assert all(refuses(r) for r in REFUSALS)


def test_a_line_copying_a_run_of_an_earlier_one_is_a_repeat():
    # the 1.5B model's demo seeker in the clean-clone CI of 2026-12-06: its second and fourth lines (the fourth passed
    # every check then, the third was kept as a role slip)
    said = ("I know how it feels to be flat, especially since I've been getting through my shifts at the animal clinic "
            "and lying on the couch most nights. Even though I have some dogs that work with me and make me feel good "
            "about life, this lack of motivation is starting to affect me.")
    again = ("I know I've been kind of flat lately, and it's important to feel alive and energized in my life. Even "
             "though I have some dogs that work with me and make me feel good about life, this lack of motivation is "
             "starting to affect me.")
    fresh = "I just don't enjoy the dogs anymore, and I used to love them."
    history = [Turn(speaker="supporter", text=SUPPORTER), Turn(speaker="seeker", text=said),
               Turn(speaker="supporter", text="Tell me more about that?")]  # fmt: skip
    from socialsim.agents.seeker import repetition

    assert repetition(again, [said], "Tell me more about that?") == "self:26"
    assert repetition(fresh, [said], "Tell me more about that?") is None
    # Through the seeker, the role check comes first, and since the strategy encoder's LoRA build it rejects that
    # whole line (voice 0.93: a model-written seeker line it reads as supporter-like). With another first sentence
    # the line passes the role check (0.13) and is still rejected, as a repeat.
    repeated = ("I keep going to work and coming home, and that is all. Even though I have some dogs that work with me "
                "and make me feel good about life, this lack of motivation is starting to affect me.")
    turn = speak([repeated, fresh], history=history)
    assert turn.text == fresh and [r.reason for r in turn.rejected] == ["self:26"]


def test_real_seekers_do_not_repeat_a_run_of_their_own_earlier_lines():
    """ESConv valid's seeker turns (a speaker's consecutive utterances joined, cut to two sentences): none shares
    `SELF_RUN` words in a row with an earlier seeker turn of its dialogue."""
    from socialsim.agents.common import clean_utterance
    from socialsim.agents.seeker import self_echo
    from socialsim.recognize.strategy_build import speaker_turns, split_dialogs

    path = ESCONV_DIR / "splits" / "valid.jsonl"
    if not path.is_file():
        pytest.skip(f"{path}: ESConv's splits are not here")
    flagged, n = [], 0
    for dialog in split_dialogs(path):
        earlier: list[str] = []
        for sp, text in speaker_turns(dialog):
            if sp == "seeker":
                n += 1
                if self_echo(clean_utterance(text, max_sentences=2), earlier) is not None:
                    flagged.append(text)
                earlier.append(text)
    assert n > 2000 and flagged == []


def test_a_text_format_regeneration_begins_with_a_seekers_opener():
    """In the 'text' format, the line after a role slip is written from a seeker's first words (`RETRY_OPENERS`),
    which the prompt ends with and the kept line begins with; a first attempt is not."""
    from socialsim.agents.seeker import RETRY_OPENERS

    prompts: list[str] = []

    class Capturing(_Scripted):
        async def complete(self, req):
            prompts.append(req.prompt)
            return await super().complete(req)

    seeker = Seeker(Capturing([SYMPATHY, " don't enjoy the dogs anymore."]), MEGAN, Prompts(), seed=1,
                    prompt_format="text")  # fmt: skip
    turn = asyncio.run(seeker.speak([Turn(speaker="supporter", text=SUPPORTER)], layer=0, goodbye=False, turn_index=1))
    start = seeker.retry_start("role", 1, 1)
    assert start in RETRY_OPENERS and turn.text == start + " don't enjoy the dogs anymore."
    first = MEGAN.name.split()[0]
    assert prompts[0].endswith(f"{first}:") and prompts[1].endswith(f"{first}: {start}")
    assert "own feelings or life, in" in prompts[1] and "own feelings or life, in" not in prompts[0]
    assert [r.check for r in turn.rejected] == ["role"]
