"""A decoding constraint for the embedded model: the completion may not copy given texts.

`ChatRequest.avoid_copying` lists texts (a seeker's own earlier lines, the message it answers); in process,
`CopyBan` then forbids, token by token, the next token that would make the completion share `COPY_RUN` tokens in
a row with one of them, or begin the way one of them begins for more than `COPY_PREFIX` tokens. The 1.5B model
otherwise repeats, at its first attempt, a line it already said or the one it answers (8 of 63 seeker turns in
the 10-dialogue run of 2026-12-06), which the seeker's repeat check then rejects and regenerates.

In process (llama.cpp, and `transformers` for the ``hf`` backend) it is a logits processor. llama.cpp's own repeat
penalty cannot do this: since llama-cpp-python 0.3 its penalty window holds only the tokens generated in this call,
never the prompt's (a repeat penalty of 3.0 leaves SmolLM2 saying a line of the prompt again). Servers get no such
constraint (the field is not sent); the seeker's checks still catch a copy there.

`python scripts/copy_ban_rates.py` measures how often real seekers' turns in ESConv would have met the ban (the
thresholds were chosen on train: 40 of 10,494; valid: 8 of 2,210)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

COPY_RUN = 7
"""Tokens in a row the completion may not share with an avoided text (it may share `COPY_RUN` - 1)."""
COPY_PREFIX = 4
"""Tokens a completion may begin with that an avoided text also begins with; the next must differ."""
BAN = f"run{COPY_RUN}-prefix{COPY_PREFIX}-spellings"
"""What the ban does, in a request's cache key: a cached line written under another ban is not reused."""


class CopyBan:
    """Which next tokens would copy one of ``sources`` (token id sequences): the token completing a run of `run`
    tokens of one of them, or the token extending past ``prefix`` tokens a generated sequence that so far is the
    beginning of one of them."""

    def __init__(self, sources: Sequence[Sequence[int]], run: int = COPY_RUN, prefix: int = COPY_PREFIX) -> None:
        self.run = run
        self.prefix = prefix
        self.next_of: dict[tuple[int, ...], set[int]] = {}
        for src in sources:
            for i in range(len(src) - run + 1):
                self.next_of.setdefault(tuple(src[i : i + run - 1]), set()).add(src[i + run - 1])
        self.starts = [tuple(s) for s in sources if len(s) > prefix]

    def banned(self, generated: Sequence[int]) -> set[int]:
        """The tokens that may not come next after ``generated`` (this call's tokens so far)."""
        out: set[int] = set()
        n = len(generated)
        if n >= self.run - 1:
            out |= self.next_of.get(tuple(generated[n - self.run + 1 :]), set())
        if n >= self.prefix:
            head = tuple(generated)
            out |= {s[n] for s in self.starts if len(s) > n and s[:n] == head}
        return out

    def first_copy(self, tokens: Sequence[int]) -> int | None:
        """The position of the first token of ``tokens`` the ban would have forbidden, else None."""
        for i in range(len(tokens)):
            if tokens[i] in self.banned(tokens[:i]):
                return i
        return None


def ban_over(texts: Sequence[str], tokenize: Callable[[str], Sequence[int]]) -> CopyBan:
    """`CopyBan` over ``texts``, each tokenized as it reads after a speaker's name and colon: with a leading space."""
    return CopyBan([tokenize(" " + t.strip()) for t in texts if t and t.strip()])


class Spellings:
    """The tokens of a vocabulary that spell the same word: a banned token is banned in each of its spellings (with
    or without a leading space, any case), so that the model cannot write it glued to the word before (the 1.5B
    model once wrote "what hisvoice sounded like" when " voice" was banned)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.key = [t.strip().lower() for t in texts]
        self.ids: dict[str, list[int]] = {}
        for i, k in enumerate(self.key):
            if k:
                self.ids.setdefault(k, []).append(i)

    def of(self, banned: set[int]) -> list[int]:
        out = set(banned)
        for t in banned:
            if 0 <= t < len(self.key) and self.key[t]:
                out.update(self.ids[self.key[t]])
        return sorted(out)


_SPELLINGS: weakref.WeakKeyDictionary[Any, Spellings] = weakref.WeakKeyDictionary()


def _spellings(model: Any, texts: Callable[[], Sequence[str]]) -> Spellings:
    """``model``'s `Spellings`, made once (its whole vocabulary decoded: about a second) and kept while it lives."""
    found = _SPELLINGS.get(model)
    if found is None:
        found = _SPELLINGS[model] = Spellings(texts())
    return found


def llama_processor(llm: Any, texts: Sequence[str]) -> Callable[[Any, Any], Any]:
    """A llama-cpp-python logits processor that applies `CopyBan` over ``texts`` to the tokens this call generates."""
    import numpy as np

    ban = ban_over(texts, lambda t: llm.tokenize(t.encode("utf-8"), add_bos=False, special=False))
    spell = _spellings(llm, lambda: [
        llm.detokenize([i], special=False).decode("utf-8", "replace") for i in range(llm.n_vocab())
    ])  # fmt: skip
    start: list[int] = []

    def process(input_ids: Any, scores: Any) -> Any:
        if not start:  # the first call sees the prompt alone: what comes after it is this call's output
            start.append(len(input_ids))
        banned = ban.banned([int(t) for t in input_ids[start[0] :]])
        if banned:
            scores[np.asarray(spell.of(banned), dtype=np.intc)] = -np.inf
        return scores

    return process


def hf_processor(tokenizer: Any, texts: Sequence[str], prompt_tokens: int) -> Callable[[Any, Any], Any]:
    """The same for `transformers`' ``generate`` (one sequence; ``prompt_tokens``: the prompt's length)."""
    ban = ban_over(texts, lambda t: tokenizer(t, add_special_tokens=False)["input_ids"])
    spell = _spellings(tokenizer, lambda: tokenizer.batch_decode([[i] for i in range(len(tokenizer))]))

    def process(input_ids: Any, scores: Any) -> Any:
        banned = ban.banned(input_ids[0, prompt_tokens:].tolist())
        if banned:
            ids = [i for i in spell.of(banned) if i < scores.shape[1]]
            scores[0, ids] = float("-inf")
        return scores

    return process
