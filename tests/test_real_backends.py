"""Full dialogues through the real embedded model and through a real OpenAI-compatible server
(llama-cpp-python's own server, serving the same GGUF on 127.0.0.1)."""

import asyncio
import json

import pytest

from conftest import persona_dict, run_cli
from socialsim.llm import LLM, ChatRequest, make_backend
from socialsim.schema import Persona, Strategy
from socialsim.simulate import DialogueConfig, simulate_dialogue

pytestmark = pytest.mark.slow


def _check_dialogue(d, max_turns):
    assert d.status == "ok", d.failure_reason
    assert d.end_reason in ("seeker_goodbye", "seeker_dismissed", "turn_cap")  # dismissed: #12, appraisal policy
    speakers = [t.speaker for t in d.turns]
    assert speakers[0] == "seeker"
    assert all(a != b for a, b in zip(speakers, speakers[1:], strict=False)), speakers  # strictly alternating
    sup = [t for t in d.turns if t.speaker == "supporter"]
    assert 1 <= len(sup) <= max_turns
    for t in sup:
        assert isinstance(t.strategy, Strategy)
        assert t.thought is not None and t.thought.strategy is t.strategy
        assert 1 <= t.thought.intensity <= 5
        assert t.text.strip()
        assert t.usage.completion_tokens > 0 and t.calls >= 2
    for t in d.turns:
        if t.speaker == "seeker":
            assert t.disclosure_layer is not None and t.text.strip()
    layers = [t.disclosure_layer for t in d.turns if t.speaker == "seeker"]
    assert layers == sorted(layers) and layers[0] == 0  # disclosure only deepens


def test_embedded_model_dialogue(local_backend):
    llm = LLM(local_backend)
    p = Persona.model_validate(persona_dict())
    d = asyncio.run(simulate_dialogue(llm, p, seed=7, dialogue_id="loc", config=DialogueConfig(max_turns=3)))
    _check_dialogue(d, 3)
    assert d.backend == "local" and d.model == "SmolLM2-135M-Instruct"
    assert llm.stats.calls >= 7


def test_embedded_model_is_deterministic_for_a_seed(local_backend):
    llm = LLM(local_backend)
    req = ChatRequest.of([{"role": "user", "content": "Say something kind."}], seed=11, max_tokens=24)

    async def twice():
        return (await llm.complete(req)).text, (await llm.complete(req)).text

    a, b = asyncio.run(twice())
    assert a == b and a.strip()


@pytest.mark.parametrize("client", ["openai", "aiohttp"])
def test_http_backend_dialogue_against_llama_cpp_server(llama_server, client):
    backend = make_backend("openai", base_url=llama_server, model="smollm2", http_client=client)
    llm = LLM(backend, concurrency=2)
    p = Persona.model_validate(persona_dict())

    async def go():
        try:
            return await simulate_dialogue(llm, p, seed=3, dialogue_id="http", config=DialogueConfig(max_turns=2))
        finally:
            await llm.aclose()

    d = asyncio.run(go())
    _check_dialogue(d, 2)
    assert d.backend == "openai" and d.model == "smollm2"
    # llama.cpp's server answers 500 to OpenAI's json_schema format: we fell back to its own form
    assert backend.structured_mode == "json_object"


def test_cli_simulate_through_server_writes_run(tmp_path, persona_file, llama_server):
    out = tmp_path / "run"
    r = run_cli(
        "simulate",
        "--personas",
        persona_file,
        "--n",
        "2",
        "--backend",
        "openai",
        "--base-url",
        llama_server,
        "--model",
        "smollm2",
        "--max-turns",
        "2",
        "--out",
        out,
        "-q",
        "--concurrency",
        "2",
    )
    assert r.returncode == 0, r.stderr
    lines = (out / "dialogues.jsonl").read_text().splitlines()
    assert len(lines) == 2
    esconv = json.loads((out / "esconv.json").read_text())
    assert len(esconv) == 2 and all(x["dialog"] for x in esconv)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dialogues_ok"] + summary["dialogues_failed"] == 2
    # the manifest records what made the run: versions, and the server's own entry for the model
    from importlib.metadata import version

    from socialsim import __version__

    env = json.loads((out / "manifest.json").read_text())["environment"]
    assert env["software"]["socialsim"] == __version__ and env["software"]["python"]
    assert env["software"]["llama-cpp-python"] == version("llama-cpp-python")
    assert env["server_model"]["entry"]["id"] == "smollm2", env["server_model"]


def _text_request(seed: int = 5) -> ChatRequest:
    prompt = "Transcript of a chat.\n\nSupporter: Hi, what is on your mind today?\nAlex:"
    return ChatRequest.text(prompt, temperature=0.0, max_tokens=24, seed=seed, stop=("\n",))


def test_text_completion_on_the_embedded_model(local_backend):
    """A plain-text request continues the prompt as written (llama.cpp's create_completion, no chat template):
    the same text, streamed or not, stopped at the end of the line."""
    llm = LLM(local_backend, concurrency=1)

    async def go():
        whole = await llm.complete(_text_request())
        pieces = [p async for p in local_backend.stream(_text_request())]
        return whole, "".join(pieces)

    whole, streamed = asyncio.run(go())
    assert whole.text.strip() and "\n" not in whole.text and whole.usage.completion_tokens > 0
    assert streamed == whole.text
    chat = asyncio.run(llm.complete(ChatRequest.of([{"role": "user", "content": _text_request().prompt}],
                                                   temperature=0.0, max_tokens=24, seed=5)))
    assert chat.text != whole.text  # the chat template made a different prompt


@pytest.mark.parametrize("client", ["openai", "aiohttp"])
def test_text_completion_through_llama_cpp_server(llama_server, local_backend, client):
    """Through a real server, a text request goes to /v1/completions on either transport and gives the text the
    embedded model gives for the same prompt and seed (greedy)."""
    llm = LLM(make_backend("openai", base_url=llama_server, model="smollm2", http_client=client), concurrency=1)

    async def go():
        try:
            return await llm.complete(_text_request())
        finally:
            await llm.aclose()

    out = asyncio.run(go())
    embedded = asyncio.run(LLM(local_backend, concurrency=1).complete(_text_request()))
    assert out.text.strip() and out.usage.completion_tokens > 0
    assert out.text.strip() == embedded.text.strip()
