"""The optional LLM pass of an import (``personas import --core-from llm``): a model rewrites each
persona's *core* layer — the worry said last — from the rest of the persona, in the seeker's voice.

Prompts are the persona builder's templates (``personas/templates/core_system.j2``,
``core_user.j2``, overridable like the builder's). A reply is kept only when it is 10–180
characters and in the first person; otherwise the rule-built core stays and the fallback is counted.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from socialsim.agents.common import clean_utterance, derive_seed
from socialsim.llm.base import ChatRequest
from socialsim.llm.client import LLM
from socialsim.personas.drafts import BuilderPrompts
from socialsim.schema import Persona

CORE_MIN, CORE_MAX = 10, 180
_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|my|me|myself)\b")


def acceptable_core(text: str) -> bool:
    return CORE_MIN <= len(text) <= CORE_MAX and bool(_FIRST_PERSON.search(text))


def llm_cores(
    personas: list[Persona], llm: LLM, *, seed: int = 0, prompts: BuilderPrompts | None = None
) -> tuple[list[Persona], Counter[str]]:
    """`personas` with their core layer written by `llm` where the reply is acceptable; counts of
    what happened (``core written by the LLM`` / ``core kept by rule (LLM reply unusable)``)."""
    prompts = prompts or BuilderPrompts()
    system = prompts.render("core_system.j2")

    async def one(i: int, p: Persona) -> str | None:
        req = ChatRequest.of(
            [
                {"role": "system", "content": system},
                {"role": "user", "content": prompts.render("core_user.j2", persona=p)},
            ],
            temperature=0.7,
            max_tokens=80,
            seed=derive_seed(seed, "core", i),
        )
        c = await llm.complete(req)
        text = clean_utterance(c.text, max_sentences=2)
        return text if acceptable_core(text) else None

    async def main() -> list[str | None]:
        try:
            return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(personas))))
        finally:
            await llm.backend.aclose()

    notes: Counter[str] = Counter()
    out = []
    for p, core in zip(personas, asyncio.run(main()), strict=True):
        if core is None:
            notes["core kept by rule (LLM reply unusable)"] += 1
            out.append(p)
        else:
            notes["core written by the LLM"] += 1
            out.append(p.model_copy(update={"disclosure": p.disclosure.model_copy(update={"core": core})}))
    return out, notes
