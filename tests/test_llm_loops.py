"""An `LLM` is used from one event loop after another (each CLI stage runs its own loop): its
concurrency limit and rate limiter must work in every loop, under contention."""

import asyncio

from socialsim.llm import LLM, ChatRequest, Completion


class Sleepy:
    """Answers after a short sleep; counts how many calls overlap (a stand-in: this tests the wrapper)."""

    kind, model = "sleepy", "sleepy"

    def __init__(self) -> None:
        self.active = self.max_active = 0

    def identity(self):
        return {"kind": self.kind}

    async def complete(self, request):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        return Completion(text="ok")

    async def aclose(self):
        pass


def test_llm_works_across_event_loops_under_contention():
    backend = Sleepy()
    llm = LLM(backend, concurrency=2, rpm=10_000)
    req = ChatRequest.of([{"role": "user", "content": "hi"}])

    async def burst():
        return await asyncio.gather(*(llm.complete(req) for _ in range(8)))

    for _ in range(3):  # a semaphore or lock bound to an earlier loop would raise here
        assert [c.text for c in asyncio.run(burst())] == ["ok"] * 8
    assert backend.max_active == 2
    assert llm.stats.calls == 24


def test_model_thread_runs_everything_on_one_thread():
    import threading

    from socialsim.llm.worker import ModelThread

    t = ModelThread("test-model")
    seen = set()

    def where(_=None):
        seen.add(threading.get_ident())
        return threading.current_thread().name

    async def many():
        return await asyncio.gather(*(t.run(where, i) for i in range(20)))

    names = asyncio.run(many()) + asyncio.run(many()) + [t.call(where)]
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert all(n.startswith("test-model") for n in names)
    assert t.call(lambda: t.call(where)).startswith("test-model")  # a call from the thread itself runs inline
    t.close()
