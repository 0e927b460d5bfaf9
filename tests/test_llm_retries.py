"""`LLM`'s one retry policy for calls and streams, against a backend double that injects failures
(real servers' faults are exercised in test_engine.py and test_serve_stream.py)."""

import asyncio

import pytest

from socialsim.errors import BackendError, RetriesExhausted
from socialsim.llm import LLM, ChatRequest, Completion, TransientError

REQ = ChatRequest.of([{"role": "user", "content": "hi"}], seed=1)


class Flaky:
    """Fails the first ``fails`` attempts with `TransientError`; a stream can also break after its
    first piece."""

    kind, model = "flaky", "m"

    def __init__(self, fails: int, break_after_first: bool = False) -> None:
        self.fails, self.break_after_first = fails, break_after_first
        self.attempts = 0

    def identity(self) -> dict:
        return {"kind": self.kind}

    async def complete(self, request: ChatRequest) -> Completion:
        self.attempts += 1
        if self.attempts <= self.fails:
            raise TransientError("HTTP 500", retry_after=None)
        return Completion(text="ok")

    async def stream(self, request: ChatRequest, info: Completion | None = None):
        self.attempts += 1
        if self.attempts <= self.fails:
            raise TransientError("HTTP 500")
        yield "o"
        if self.break_after_first:
            raise TransientError("connection reset")
        yield "k"
        if info is not None:
            info.text = "ok"

    async def aclose(self) -> None:
        pass


async def _stream(llm: LLM) -> str:
    return "".join([p async for p in llm.stream(REQ)])


@pytest.mark.parametrize("way", ["complete", "stream"])
def test_calls_and_streams_retry_alike(way):
    for fails, attempts in ((0, 1), (2, 3), (4, 5)):
        backend = Flaky(fails)
        llm = LLM(backend, max_attempts=5, backoff_base_s=0.001, backoff_max_s=0.002)
        text = asyncio.run(llm.complete(REQ)).text if way == "complete" else asyncio.run(_stream(llm))
        assert text == "ok" and backend.attempts == attempts and llm.stats.retries == fails
    backend = Flaky(5)
    llm = LLM(backend, max_attempts=5, backoff_base_s=0.001, backoff_max_s=0.002)
    with pytest.raises(RetriesExhausted, match="gave up after 5 attempts"):
        asyncio.run(llm.complete(REQ) if way == "complete" else _stream(llm))
    assert backend.attempts == 5 and llm.stats.retries == 4 and llm.stats.errors == 1


def test_a_stream_that_broke_after_its_first_piece_is_not_retried():
    backend = Flaky(0, break_after_first=True)
    llm = LLM(backend, max_attempts=5, backoff_base_s=0.001)
    with pytest.raises(BackendError, match="broke after it had started"):
        asyncio.run(_stream(llm))
    assert backend.attempts == 1 and llm.stats.retries == 0 and llm.stats.errors == 1
