"""`LLM`: any backend plus the per-call cache, retries, rate limits, budget and usage tracking."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from socialsim.errors import BackendError, RetriesExhausted
from socialsim.llm.base import Backend, ChatRequest, Completion, TransientError
from socialsim.llm.scheduling import PrioritySemaphore
from socialsim.schema import Usage

T = TypeVar("T")


class BudgetExceeded(Exception):
    """A call would pass --max-cost or --max-tokens; the run stops cleanly and can resume."""


@dataclass
class Price:
    """US dollars per million tokens."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


@dataclass
class Stats:
    calls: int = 0
    ok_calls: int = 0
    cached: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached_calls": self.cached,
            "retries": self.retries,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost, 6),
        }


class CallCache:
    """SQLite store of completions keyed by `ChatRequest.cache_key` (WAL, safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
            " prompt_tokens INT, completion_tokens INT, finish_reason TEXT, created REAL)"
        )
        self._db.commit()
        self._lock = threading.Lock()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason FROM calls WHERE key=?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Completion(
            text=row[0],
            usage=Usage(prompt_tokens=row[1], completion_tokens=row[2]),
            finish_reason=row[3],
            cached=True,
        )

    def put(self, key: str, c: Completion) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?)",
                (key, c.text, c.usage.prompt_tokens, c.usage.completion_tokens, c.finish_reason, time.time()),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _PerLoop:
    """An asyncio primitive for the running event loop, made anew when the loop changes: an `LLM` is
    used from one loop after another (each CLI stage runs its own), and a primitive that has had
    waiters in one loop cannot be used in another."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._obj: Any = None

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._obj, self._loop = self._make(), loop
        return self._obj


class RateLimiter:
    """Requests-per-minute and tokens-per-minute over a sliding 60 s window."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None, window_s: float = 60.0) -> None:
        self.rpm, self.tpm = rpm, tpm
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._tokens = 0
        self._lock = _PerLoop(asyncio.Lock)

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        async with self._lock.get():
            while True:
                now = time.monotonic()
                while self._events and now - self._events[0][0] >= self.window_s:
                    self._tokens -= self._events.popleft()[1]
                ok_r = not self.rpm or len(self._events) < self.rpm
                ok_t = not self.tpm or self._tokens + tokens <= self.tpm or not self._events
                if ok_r and ok_t:
                    self._events.append((now, tokens))
                    self._tokens += tokens
                    return
                await asyncio.sleep(max(0.005, self.window_s - (now - self._events[0][0])))


def _fill(target: Completion, source: Completion) -> None:
    target.text = source.text
    target.usage = source.usage
    target.latency_s = source.latency_s
    target.finish_reason = source.finish_reason
    target.cached = source.cached


def _estimate_prompt_tokens(request: ChatRequest) -> int:
    return (sum(len(c) for _, c in request.messages) + len(request.prompt or "")) // 3 + 8


class LLM:
    """The object every stage calls. Thread-safe for asyncio use from one event loop."""

    def __init__(
        self,
        backend: Backend,
        *,
        cache: CallCache | None = None,
        concurrency: int = 8,
        rpm: int | None = None,
        tpm: int | None = None,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        price: Price | None = None,
        max_cost: float | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.backend = backend
        self.cache = cache
        self.concurrency = concurrency
        # waiting calls are served in tail-aware order (see llm/scheduling.py), not first-come-first-served
        self._sem = _PerLoop(lambda: PrioritySemaphore(self.concurrency))
        self.limiter = RateLimiter(rpm, tpm)
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.price = price or Price()
        self.max_cost = max_cost
        self.max_tokens = max_tokens
        self.stats = Stats()
        self._identity = backend.identity()
        self._reserved_tokens = 0
        self._reserved_cost = 0.0
        # spent in earlier sessions of the same run: budgets hold for the whole run
        self.prior_tokens = 0
        self.prior_cost = 0.0
        self.budget_peers: list[LLM] = []
        """Other LLMs of the same run (role-specific models): the budget counts their usage too."""

    @property
    def name(self) -> str:
        return f"{self.backend.kind}:{self.backend.model}"

    # -- budget -------------------------------------------------------------------------------
    def _reserve(self, request: ChatRequest) -> tuple[int, float]:
        p = _estimate_prompt_tokens(request)
        tokens = p + request.max_tokens
        cost = self.price.cost(p, request.max_tokens)
        if self.max_tokens is not None or self.max_cost is not None:  # sums only against a budget
            self._check_budget(tokens, cost)
        self._reserved_tokens += tokens
        self._reserved_cost += cost
        return tokens, cost

    def _check_budget(self, tokens: int, cost: float) -> None:
        """`BudgetExceeded` when ``tokens`` or ``cost`` more would pass a budget of the run (this LLM's
        usage and reservations, its peers', and earlier sessions')."""
        group = [self, *self.budget_peers]
        if self.max_tokens is not None:
            used_tokens = self.prior_tokens + sum(
                m.stats.prompt_tokens + m.stats.completion_tokens + m._reserved_tokens for m in group
            )
            if used_tokens + tokens > self.max_tokens:
                raise BudgetExceeded(f"token budget {self.max_tokens} reached")
        if self.max_cost is not None:
            used_cost = self.prior_cost + sum(m.stats.cost + m._reserved_cost for m in group)
            if used_cost + cost > self.max_cost:
                raise BudgetExceeded(f"cost budget ${self.max_cost} reached")

    def _release(self, tokens: int, cost: float) -> None:
        self._reserved_tokens -= tokens
        self._reserved_cost -= cost

    def _backoff(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt ``attempt``: full jitter, at least the Retry-After."""
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        wait = random.uniform(0, backoff)
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait

    def _gave_up(self, e: TransientError) -> RetriesExhausted:
        self.stats.errors += 1
        return RetriesExhausted(
            f"{e} — gave up after {self.max_attempts} attempts; "
            "check that the server is running and --base-url is right"
        )

    def _cached(self, request: ChatRequest) -> tuple[str | None, Completion | None]:
        """(cache key or None, the cached completion if there is one; counted as a call)."""
        if self.cache is None:
            return None, None
        key = request.cache_key(self._identity)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.calls += 1
            self.stats.cached += 1
        return key, hit

    def _account(self, result: Completion, key: str | None, *, keep_empty: bool = True) -> None:
        """Count a finished call and keep it in the cache (an empty one only with ``keep_empty``)."""
        self.stats.calls += 1
        self.stats.ok_calls += 1
        self.stats.prompt_tokens += result.usage.prompt_tokens
        self.stats.completion_tokens += result.usage.completion_tokens
        self.stats.cost += self.price.cost(result.usage.prompt_tokens, result.usage.completion_tokens)
        if key is not None and self.cache is not None and (result.text or keep_empty):
            self.cache.put(key, result)

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1

    # -- calls ----------------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> Completion:
        key, hit = self._cached(request)
        if hit is not None:
            return hit
        sem = self._sem.get()
        tokens, cost = self._reserve(request)
        try:
            await sem.acquire()
            try:
                await self.limiter.acquire(tokens)
                result = await self._retrying(self.backend.complete, request)
            finally:
                handed = sem.release()
        finally:
            self._release(tokens, cost)
        self._account(result, key)
        if handed:
            # The freed slot went to a waiting call: let it go out before this dialogue's own work.
            # Replies arrive in bursts; the first yield puts the woken call ahead of this task, the
            # second puts every call woken by the burst ahead of all the burst's dialogue work.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return result

    async def _retrying(self, attempt: Callable[[ChatRequest], Awaitable[T]], request: ChatRequest) -> T:
        """``attempt(request)``, retried on `TransientError` up to ``max_attempts`` times in all, with
        `_backoff` between attempts; `RetriesExhausted` when every attempt failed. The one retry
        policy of calls and streams."""
        try:  # the common case, a first attempt that works, without building the retry machinery
            return await attempt(request)
        except TransientError as e:
            if self.max_attempts <= 1:
                raise self._gave_up(e) from None
            first = e
        self.stats.retries += 1
        await asyncio.sleep(self._backoff(1, first))
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.max_attempts - 1),
            # attempt k of tenacity is attempt k + 1 of the call
            wait=lambda s: self._backoff(s.attempt_number + 1, s.outcome.exception() if s.outcome else None),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for tried in retrying:
                with tried:
                    return await attempt(request)
        except TransientError as e:
            raise self._gave_up(e) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _first_piece(self, request: ChatRequest) -> tuple[AsyncGenerator[str, None], Completion, str | None]:
        """Open the backend's stream and wait for its first piece (None: it ended without text); what
        `_retrying` retries for a stream, since only a stream that has not yielded yet can be replayed."""
        part = Completion(text="")
        gen = self.backend.stream(request, info=part)  # type: ignore[attr-defined]
        try:
            return gen, part, await anext(gen)
        except StopAsyncIteration:
            return gen, part, None
        except BaseException:
            await gen.aclose()
            raise

    async def stream(self, request: ChatRequest, info: Completion | None = None) -> AsyncIterator[str]:
        """Yield a reply's text as the backend generates it; ``info`` (if given) is filled with the
        joined text, usage, latency and finish reason when the stream ends.

        Same concurrency limit, rate limits and budget as `complete`. Failures before the first piece
        are retried like `complete`; once text has been yielded a failure raises `BackendError` (the
        stream cannot be replayed). Cache: a stream that finishes is stored under the request's key as
        its joined text, exactly like a completion, and a cached request (streamed or completed before)
        is answered with its whole text as one piece. A backend without ``stream`` is answered by
        `complete`, as one piece.
        """
        info = info if info is not None else Completion(text="")
        if getattr(self.backend, "stream", None) is None:  # `complete` (with its cache) answers, as one piece
            c = await self.complete(request)
            _fill(info, c)
            if c.text:
                yield c.text
            return
        key, hit = self._cached(request)
        if hit is not None:
            _fill(info, hit)
            if hit.text:
                yield hit.text
            return
        sem = self._sem.get()
        tokens, cost = self._reserve(request)
        try:
            async with sem:
                await self.limiter.acquire(tokens)
                gen, part, piece = await self._retrying(self._first_piece, request)
                try:
                    if piece is not None:
                        yield piece
                        async for piece in gen:
                            yield piece
                except TransientError as e:
                    self.stats.errors += 1
                    raise BackendError(f"{e} (the stream broke after it had started)") from None
                finally:
                    await gen.aclose()
        finally:
            self._release(tokens, cost)
        self._account(part, key, keep_empty=False)
        _fill(info, part)

    async def aclose(self) -> None:
        """Close the backend's connections and the cache."""
        await self.backend.aclose()
        self.close()

    def close(self) -> None:
        """Close the cache (the backend's connections close with `aclose` in their own loop)."""
        if self.cache is not None:
            self.cache.close()
            self.cache = None
