"""One dedicated thread per in-process model.

llama.cpp (OpenMP build) and torch keep a pool of compute threads per calling thread. Calls handed
to asyncio's default executor land on whichever of its threads is free, so several pools pile up and
outnumber the cores (libgomp, we think, then stops spinning between parallel regions): the same
calls decoded ~25 % slower on 2 cores than from one thread (bench/bench_engine.py local). Loading
the model and every call to it therefore run on one thread that lives as long as the backend.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ModelThread:
    """A single worker thread: `run` from async code, `call` from sync code (inline on the thread itself)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._ident: int | None = None
        self._guard = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name, initializer=self._mark)
            return self._pool

    def _mark(self) -> None:
        self._ident = threading.get_ident()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread and wait for it."""
        if threading.get_ident() == self._ident:
            return fn(*args)
        return self._executor().submit(fn, *args).result()

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Schedule ``fn(*args)`` on the model thread; await the result."""
        return asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)

    def close(self) -> None:
        """Let the thread end (a later call starts a new one)."""
        with self._guard:
            pool, self._pool, self._ident = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=True)
