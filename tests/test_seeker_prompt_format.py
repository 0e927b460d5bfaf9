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
    seeker = Seeker(None, MEGAN, Prompts(), seed=1, prompt_format="chat")  # type: ignore[arg-type]
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


def test_text_format_is_a_transcript_the_model_continues():
    seeker = Seeker(None, MEGAN, Prompts(), seed=1, prompt_format="text")  # type: ignore[arg-type]
    req = seeker.request(HISTORY, 1, False, False, None, temperature=0.8, seed=3)
    first = MEGAN.name.split()[0]
    assert req.messages == () and req.stop == ("\n",) and req.prompt is not None
    lines = req.prompt.splitlines()
    assert lines[-1] == f"{first}:"  # the model writes the seeker's next line, and stops at its end
    assert lines[-6:-1] == [
        "Supporter: " + Prompts().render("seeker_opening.txt").strip(),
        f"{first}: {HISTORY[0].text}",
        f"Supporter: {HISTORY[1].text}",
        f"{first}: {HISTORY[2].text}",
        f"Supporter: {HISTORY[3].text}",
    ]
    assert MEGAN.disclosure.context in req.prompt and MEGAN.disclosure.core not in req.prompt  # layer 1's notes only
    again = seeker.request(HISTORY, 1, False, False, "repeat", temperature=0.8, seed=3)
    assert "says something not said before" in again.prompt and "says something not said" not in req.prompt
    bye = seeker.request(HISTORY, 2, True, False, None, temperature=0.8, seed=3)
    assert "thank-you and goodbye" in bye.prompt and MEGAN.disclosure.core not in bye.prompt
    chat = Seeker(None, MEGAN, Prompts(), seed=1).request(HISTORY, 1, False, False, None, temperature=0.8, seed=3)  # type: ignore[arg-type]
    assert chat.prompt is None and [r for r, _ in chat.messages] == ["system", "user"]


def test_a_new_run_on_an_embedded_model_takes_the_text_format(tmp_path):
    from socialsim.schema import BackendConfig
    from socialsim.simulate.run import simulation_config

    assert simulation_config("default", BackendConfig(kind="local"), n=1).seeker_format == "text"
    served = BackendConfig(kind="openai", base_url="http://127.0.0.1:1/v1", model="m")
    assert simulation_config("default", served, n=1).seeker_format == "transcript"
    assert simulation_config("default", BackendConfig(), n=1, seeker_format="chat").seeker_format == "chat"
    on_server = simulation_config("default", BackendConfig(kind="local"), n=1, roles={"seeker": served})
    assert on_server.seeker_format == "transcript"  # the seeker's own backend decides
    base = dict(personas="default", personas_sha256="x", n=1)
    assert SimulationConfig(**base, seeker_format="text").config_hash() != SimulationConfig(**base).config_hash()


def test_a_chat_request_keeps_its_cache_key():
    """The text field is hashed only when set: the per-call cache of runs made before it still answers."""
    import hashlib
    import json

    from socialsim.llm.base import ChatRequest

    req = ChatRequest.of([{"role": "user", "content": "hi"}], temperature=0.5, max_tokens=9, seed=1)
    old = {"backend": {"m": 1}, "messages": req.messages, "temperature": 0.5, "max_tokens": 9, "seed": 1,
           "top_p": 0.95, "repeat_penalty": 1.1, "json_schema": None, "stop": ()}
    blob = json.dumps(old, sort_keys=True, ensure_ascii=False, default=str)
    assert req.cache_key({"m": 1}) == hashlib.sha256(blob.encode("utf-8")).hexdigest()
    assert ChatRequest.text("hi", temperature=0.5, max_tokens=9, seed=1).cache_key({"m": 1}) != req.cache_key({"m": 1})
