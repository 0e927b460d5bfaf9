"""The seeker's prompt: ``seeker_format`` 'chat' puts the supporter's messages in user turns and the
seeker's own in the model's, with the turn's notes in a closing system message; 'transcript' (the default) stays
out of a run's hash, as runs made before the option."""

from __future__ import annotations

from socialsim.agents.prompts import Prompts
from socialsim.agents.seeker import Seeker
from socialsim.personas.bank import default_bank_path, load_personas
from socialsim.schema import SimulationConfig, Turn
from socialsim.simulate.dialogue import DialogueConfig

MEGAN = load_personas(default_bank_path())[0]
HISTORY = [
    Turn(speaker="seeker", text="I guess I've been kind of flat."),
    Turn(speaker="supporter", text="That sounds heavy. What has it been like?"),
    Turn(speaker="seeker", text="Honestly, I skip my pottery class now."),
    Turn(speaker="supporter", text="It sounds like the things you loved have gone quiet."),
]


def test_chat_format_gives_the_seeker_the_model_turns():
    seeker = Seeker(None, MEGAN, Prompts(), seed=1, chat_format=True)  # type: ignore[arg-type]
    msgs = seeker.messages(HISTORY, 1, False)
    roles = [m["role"] for m in msgs]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "system"]
    assert msgs[0]["content"].startswith(f"You are {MEGAN.name}.")
    assert msgs[1]["content"] == Prompts().render("seeker_opening.txt")
    assert [m["content"] for m in msgs[2:6]] == [t.text for t in HISTORY]
    assert "The chat so far" not in msgs[-1]["content"] and "answer to the supporter's last" in msgs[-1]["content"]
    plain = Seeker(None, MEGAN, Prompts(), seed=1).messages(HISTORY, 1, False)  # type: ignore[arg-type]
    assert [m["role"] for m in plain] == ["system", "user"] and HISTORY[2].text in plain[1]["content"]


def test_transcript_is_the_default_and_stays_out_of_the_hash():
    base = dict(personas="default", personas_sha256="x", n=1)
    assert SimulationConfig(**base).seeker_format == DialogueConfig().seeker_format == "transcript"
    plain = SimulationConfig(**base)
    assert plain.config_hash() == SimulationConfig(**base, seeker_format="transcript").config_hash()
    assert plain.config_hash() != SimulationConfig(**base, seeker_format="chat").config_hash()
    assert DialogueConfig.from_simulation(SimulationConfig(**base, seeker_format="chat")).seeker_format == "chat"
