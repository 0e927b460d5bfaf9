"""The tail-aware call order (llm/scheduling.py): pure asyncio and the in-process engine, no server."""

import asyncio

import pytest

from socialsim.llm.scheduling import PrioritySemaphore, current_ticket, enter_dialogue


def test_waiting_calls_are_served_most_work_left_first_then_oldest():
    order = []

    async def go():
        sem = PrioritySemaphore(1)
        await sem.acquire()  # the one slot is taken: everyone below waits

        async def call(seq, left):
            t = enter_dialogue(seq)
            t.expect(left)
            await sem.acquire()
            order.append(seq)
            sem.release()

        tasks = [asyncio.create_task(call(seq, left)) for seq, left in [(1, 3), (2, 9), (3, 9), (4, 1)]]
        await asyncio.sleep(0.01)
        assert sem.waiting == 4
        sem.release()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    assert order == [2, 3, 1, 4]


def test_a_cancelled_waiter_loses_no_slot_and_calls_outside_dialogues_still_run():
    async def go():
        sem = PrioritySemaphore(2)
        await sem.acquire()
        await sem.acquire()
        waiter = asyncio.create_task(sem.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert sem.release() is False  # nobody is waiting any more: the slot is free again
        sem.release()
        assert current_ticket().seq == 0  # no dialogue: the shared ticket
        await asyncio.wait_for(sem.acquire(), 1)
        await asyncio.wait_for(sem.acquire(), 1)

    asyncio.run(go())


def test_a_released_slot_goes_to_the_waiter_not_to_a_newcomer():
    async def go():
        sem = PrioritySemaphore(1)
        await sem.acquire()
        got = []

        async def waiter():
            await sem.acquire()
            got.append("waiter")

        w = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        assert sem.release() is True
        newcomer = asyncio.create_task(sem.acquire())
        await asyncio.sleep(0.01)
        assert got == ["waiter"] and not newcomer.done()
        sem.release()
        await asyncio.wait_for(newcomer, 1)
        await w

    asyncio.run(go())


@pytest.mark.parametrize("disclosure", ["appraisal", "strategy-rule"])
def test_a_dialogues_estimate_never_falls_below_the_turns_it_still_takes(tmp_path, monkeypatch, disclosure):
    """The scheduler serves the dialogues with the most calls ahead first, so a dialogue whose estimate is
    too low waits behind all others and runs alone at the end (measured: a 12 s tail of 86 s at 800
    dialogues on 256 slots, bench/bench_scale.py tail). Every estimate a dialogue gives, at the start of
    each supporter turn, must cover the supporter turns it then really takes."""
    from socialsim.llm import LLM
    from socialsim.llm.scheduling import Ticket
    from socialsim.schema import BackendConfig, ExecutionConfig
    from socialsim.simulate.engine import run_simulation
    from socialsim.simulate.run import simulation_config
    from socialsim.simulate.store import RunStore
    from socialsim.testing.load_target import InstantBackend

    said: dict[int, list[int]] = {}
    expect = Ticket.expect

    def recording(self, more_calls):
        said.setdefault(self.seq, []).append(more_calls)
        expect(self, more_calls)

    monkeypatch.setattr(Ticket, "expect", recording)
    sim = simulation_config(
        "default", BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m"), n=60,
        disclosure=disclosure,
    )  # fmt: skip
    store = RunStore.create(tmp_path / "run", sim.model_dump(mode="json"), sim.config_hash())
    llm = LLM(InstantBackend(), concurrency=8)
    result = run_simulation(store, sim, ExecutionConfig(concurrency=8, cache=False), llm=llm)
    ends = {d.end_reason for d in store.iter_dialogues()}
    store.close()
    assert result.live.ok == 60 and len(said) == 60
    assert ends - {"turn_cap"}, ends  # some dialogues end early: the estimates are put to the test
    for seq, estimates in said.items():
        per_turn = estimates[1] // sim.max_turns  # the first turn's estimate: the cap, all turns ahead
        turns = estimates[1:]  # one estimate at the start of every supporter turn
        for j, more in enumerate(turns):
            assert more >= per_turn * (len(turns) - j), (seq, disclosure, estimates)
