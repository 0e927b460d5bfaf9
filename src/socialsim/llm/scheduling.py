"""Tail-aware ordering of waiting LLM calls.

A corpus is many chains of dependent calls (one chain per dialogue) of uneven length. Served
first-come-first-served, the chains that happen to be long are still running alone at the end while
call slots sit idle. `PrioritySemaphore` hands a free slot to the waiting call whose dialogue has
the most calls still ahead of it (highest level first, the classic rule for chains of unit tasks on
identical machines), the dialogue admitted first among equals. A dialogue's estimate is what its
state allows (turns left before the cap, or before goodbye once the core worry is out); before
anything is known every dialogue has the same horizon, so the rule is "least progress first" and no
dialogue is left behind to run alone at the end.

Each dialogue runs under a `Ticket` (set with `enter_dialogue` in its task, updated with
`Ticket.expect`); calls outside any dialogue (a chat, a judge) share ticket 0 and are served in
arrival order.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools


class Ticket:
    """Where a dialogue stands in the queue: ``seq`` is its admission order, ``calls`` how many
    calls it has started, ``horizon`` how many it is expected to make in all."""

    __slots__ = ("calls", "horizon", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.calls = 0
        self.horizon = 0  # the call count at which the dialogue is expected to end

    def expect(self, more_calls: int) -> None:
        """The dialogue expects about ``more_calls`` more calls from now on (ignored outside the
        engine, where every call shares ticket 0 and is served in arrival order)."""
        if self.seq:
            self.horizon = self.calls + more_calls


_NO_TICKET = Ticket(0)
_current: contextvars.ContextVar[Ticket] = contextvars.ContextVar("socialsim_ticket", default=_NO_TICKET)


def enter_dialogue(seq: int) -> Ticket:
    """Give the running task (one dialogue) its ticket; calls it makes from now on are ordered by it."""
    t = Ticket(seq)
    _current.set(t)
    return t


def current_ticket() -> Ticket:
    return _current.get()


class PrioritySemaphore:
    """A semaphore whose waiters are woken in ticket order (most calls left, then admission), not FIFO.

    A released slot is handed straight to the next waiter, so a newcomer cannot jump the queue.
    """

    def __init__(self, value: int) -> None:
        self._free = value
        self._heap: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._count = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._heap)

    async def acquire(self) -> None:
        t = _current.get()
        t.calls += 1
        if self._free > 0 and not self._heap:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (t.calls - t.horizon, t.seq, next(self._count), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # the slot was handed over as we were cancelled
                self.release()
            raise

    def release(self) -> bool:
        """Free a slot; True when it went straight to a waiting call."""
        heap = self._heap
        while heap:
            fut = heapq.heappop(heap)[3]
            if not fut.done():
                fut.set_result(None)
                return True
        self._free += 1
        return False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
