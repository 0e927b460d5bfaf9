"""Several endpoints serving one model (e.g. one vLLM per GPU) behind one backend.

Each call goes to the healthy replica with the fewest requests in flight. A replica whose call
fails with a transient error (connection refused, timeout, 429, 5xx) is taken out for a while
(`cooldown_s`, doubling while it keeps failing) and the call is tried again at once on another
one; when every replica has failed, the error goes up to `LLM`'s retries with backoff, and the
replica whose rest ends first is tried again. Permanent errors (a bad key, an unknown model) are
not the replica's fault and are raised as they are.

The pool's `identity` is its first replica's: replicas serve the same model with the same seeds,
so the per-call cache key does not depend on which replica answered.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from socialsim.llm.base import Backend, ChatRequest, Completion, TransientError


class _Replica:
    __slots__ = ("backend", "failures", "in_flight", "out_until", "served")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.in_flight = 0
        self.out_until = 0.0
        self.failures = 0
        self.served = 0


class ReplicaPool:
    """A `Backend` over replicas of one model; least in-flight first, failing replicas rest."""

    def __init__(self, backends: list[Backend], *, cooldown_s: float = 5.0, max_cooldown_s: float = 60.0) -> None:
        if not backends:
            raise ValueError("a replica pool needs at least one backend")
        self.replicas = [_Replica(b) for b in backends]
        self.kind = backends[0].kind
        self.model = backends[0].model
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s

    def identity(self) -> dict[str, Any]:
        return self.replicas[0].backend.identity()

    def _pick(self, tried: set[int]) -> _Replica | None:
        now = time.monotonic()
        best: _Replica | None = None
        for i, r in enumerate(self.replicas):
            if i in tried or r.out_until > now:
                continue
            if best is None or r.in_flight < best.in_flight:
                best = r
        if best is None and not tried:  # all resting: probe the one that comes back first
            best = min(self.replicas, key=lambda r: r.out_until)
        return best

    def _failed(self, r: _Replica) -> None:
        r.failures += 1
        rest = min(self.max_cooldown_s, self.cooldown_s * 2 ** (r.failures - 1))
        r.out_until = time.monotonic() + rest

    async def complete(self, request: ChatRequest) -> Completion:
        tried: set[int] = set()
        last: TransientError | None = None
        while True:
            r = self._pick(tried)
            if r is None:
                assert last is not None
                raise last
            tried.add(self.replicas.index(r))
            r.in_flight += 1
            try:
                c = await r.backend.complete(request)
            except TransientError as e:
                self._failed(r)
                last = e
                continue
            finally:
                r.in_flight -= 1
            r.failures, r.out_until = 0, 0.0
            r.served += 1
            return c

    async def stream(self, request: ChatRequest, info: Completion | None = None) -> AsyncIterator[str]:
        """Stream from the least-loaded healthy replica; a failure marks it (`LLM` retries)."""
        r = self._pick(set())
        assert r is not None
        r.in_flight += 1
        started = False
        try:
            async for piece in r.backend.stream(request, info=info):  # type: ignore[attr-defined]
                started = True
                yield piece
        except TransientError:
            if not started:
                self._failed(r)
            raise
        finally:
            r.in_flight -= 1
        r.served += 1

    def counts(self) -> list[int]:
        """Calls each replica has answered."""
        return [r.served for r in self.replicas]

    async def aclose(self) -> None:
        for r in self.replicas:
            await r.backend.aclose()
