"""The one backend protocol every stage shares, and the request/response types it speaks."""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from socialsim.schema import Usage

Message = dict[str, str]

TOKEN_SINK: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("TOKEN_SINK", default=None)
"""When set (e.g. by a live transcript), backends that can stream hand each generated piece of text to it
while `complete` runs; the completion returned is the same. Called from the backend's model thread."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion call. Everything that can change the output is a field here.

    With ``prompt`` set it is a plain-text completion instead: the model continues ``prompt`` as written, no
    chat template (an OpenAI-compatible server's ``/completions``, llama.cpp's ``create_completion``), and
    ``messages`` is empty. The seeker's ``text`` format uses it: a small instruct model continuing a written
    transcript after the seeker's name slips out of the role less than when it answers as the chat assistant.

    ``avoid_copying`` lists texts the completion should not copy (the seeker's earlier lines, the message it
    answers): the embedded llama.cpp backend forbids the tokens that would (`socialsim.llm.nocopy`); other backends
    ignore it, and the caller's own checks still catch a copy."""

    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.7
    max_tokens: int = 256
    seed: int | None = None
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    json_schema: dict[str, Any] | None = None
    stop: tuple[str, ...] = ()
    prompt: str | None = None
    avoid_copying: tuple[str, ...] = ()

    @classmethod
    def of(cls, messages: list[Message], **kw: Any) -> ChatRequest:
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **kw)

    @classmethod
    def text(cls, prompt: str, **kw: Any) -> ChatRequest:
        """A plain-text completion of ``prompt`` (see the class)."""
        return cls(messages=(), prompt=prompt, **kw)

    def message_dicts(self) -> list[Message]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def cache_key(self, backend_identity: dict[str, Any]) -> str:
        """A hash of the backend identity and every field of the request."""
        payload = {
            "backend": backend_identity,
            "messages": self.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "top_p": self.top_p,
            "repeat_penalty": self.repeat_penalty,
            "json_schema": self.json_schema,
            "stop": self.stop,
        }
        if self.prompt is not None:  # only then: chat requests keep the keys they had before the field existed
            payload["prompt"] = self.prompt
        if self.avoid_copying:  # likewise; with the ban's own settings, which change what the model writes
            from socialsim.llm.nocopy import BAN

            payload["avoid_copying"] = [BAN, *self.avoid_copying]
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def model_record(backend: Any) -> dict[str, Any]:
    """What a run manifest records about the model: its name and, for a model file, its sha256."""
    return {
        "name": getattr(backend, "model_name", None) or backend.model,
        "title": backend.model,
        "sha256": getattr(backend, "sha256", None),
    }


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: str | None = None
    cached: bool = False


class TransientError(Exception):
    """A failure worth retrying (429, 5xx, timeout, connection reset)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@runtime_checkable
class Backend(Protocol):
    """An LLM that answers chat requests.

    Implementations raise `TransientError` for failures worth retrying and
    `socialsim.errors.BackendError` for permanent ones; retries, caching and limits are
    added around any backend by `socialsim.llm.client.LLM`.
    """

    kind: str
    model: str

    def identity(self) -> dict[str, Any]:
        """What identifies this backend's outputs (kind, model, endpoint or model-file hash)."""
        ...

    async def complete(self, request: ChatRequest) -> Completion: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that can also stream a reply's text as it is generated.

    ``stream`` yields text pieces; when it ends, it has filled ``info`` (if given) with the joined
    text, usage (as far as the backend reports it), latency and finish reason. Failures before the
    first piece raise like `complete`; `socialsim.llm.client.LLM.stream` adds retries around that.
    """

    def stream(self, request: ChatRequest, info: Completion | None = None) -> AsyncIterator[str]: ...
