"""The tail-aware call order (llm/scheduling.py): pure asyncio, no server."""

import asyncio

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
