"""A small OpenAI-compatible load target for benchmarks and fault-injection tests.

It answers ``POST /v1/chat/completions`` after a fixed latency with at most ``capacity``
requests served at once (the rest queue), and returns valid completions: a valid
`SupporterThought` JSON when the request carries a ``response_format``, a short sentence
otherwise. With ``--fault-rate`` it injects 429 (with Retry-After), 500, a response slower than
the client's timeout, and malformed bodies; with ``--unparseable`` every structured request (with
``--unparseable-for NAME`` only those for the model NAME, e.g. ``RealizedStrategy``) gets non-JSON text.
It is a stand-in for load and faults only; real
behaviour is tested against real servers.

Run: ``python -m socialsim.testing.load_target --port 0 --latency 0.2 --capacity 32``; it prints
``PORT <n>`` once listening. ``GET /stats`` returns its counters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import time
from typing import Any

from aiohttp import web

STRATEGIES = [
    "Question",
    "Restatement or Paraphrasing",
    "Reflection of feelings",
    "Self-disclosure",
    "Affirmation and Reassurance",
    "Providing Suggestions",
    "Information",
    "Others",
]
SEEKER_LINES = [
    "I just feel stuck with all of this.",
    "It started a few months ago and it keeps getting worse.",
    "Honestly I am scared it means something is wrong with me.",
    "I haven't told anyone else yet.",
]
SEEKER_CUES = ("next chat message", "is the one who needs help, not the helper")
"""Phrases of the seeker's system prompt (this and earlier template versions): such requests get seeker lines."""
SUPPORTER_LINES = [
    "That sounds really hard. What has been weighing on you most?",
    "It makes sense that you feel this way after everything that happened.",
    "You have been carrying a lot, and reaching out took courage.",
]
FAULTS = ("429", "500", "slow", "malformed")


class Target:
    def __init__(
        self,
        latency: float,
        capacity: int,
        fault_rate: float = 0.0,
        seed: int = 0,
        slow_s: float = 5.0,
        unparseable: bool = False,
        faults: tuple[str, ...] = FAULTS,
        unparseable_for: tuple[str, ...] = (),
        seeker_line: str | None = None,
    ) -> None:
        self.latency = latency
        self.seeker_line = seeker_line
        self.sem = asyncio.Semaphore(capacity)
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.slow_s = slow_s
        self.unparseable = unparseable
        self.unparseable_for = unparseable_for
        self.faults = faults
        self.stats: dict[str, Any] = {
            "requests": 0,
            "served": 0,
            "late": 0,
            "active": 0,
            "max_active": 0,
            **{f"fault_{f}": 0 for f in FAULTS},
        }

    def _content(self, body: dict[str, Any]) -> str:
        text = json.dumps(body.get("messages", []), sort_keys=True)
        h = int(hashlib.sha256((text + str(body.get("seed"))).encode()).hexdigest()[:8], 16)
        if body.get("response_format"):
            rf = body["response_format"]
            title = str((rf.get("json_schema") or {}).get("name") or (rf.get("schema") or {}).get("title") or "")
            if self.unparseable or title in self.unparseable_for:
                return "I think the seeker feels sad (no JSON here)"
            if "Appraisal" in title:
                return json.dumps(
                    {
                        "felt_understood": 2 + h % 4,
                        "judged_or_rushed": h % 7 == 0,
                        "reply_did": ["asked", "reflected", "validated", "advised"][h % 4],
                        "ready_to_say_more": h % 2 == 0,
                    }
                )
            if "Realized" in title:
                return json.dumps({"strategy": STRATEGIES[h % len(STRATEGIES)]})
            return json.dumps(
                {
                    "emotion": ["sadness", "anxiety", "anger", "fear"][h % 4],
                    "intensity": 1 + h % 5,
                    "cause": "A hard change in their life.",
                    "need": "To feel heard.",
                    "strategy": STRATEGIES[h % len(STRATEGIES)],
                    "rationale": "It fits this moment.",
                }
            )
        system = (body.get("messages") or [{}])[0].get("content", "")
        if any(cue in system for cue in SEEKER_CUES):
            return self.seeker_line if self.seeker_line is not None else SEEKER_LINES[h % len(SEEKER_LINES)]
        return SUPPORTER_LINES[h % len(SUPPORTER_LINES)]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.stats["requests"] += 1
        body = await request.json()
        fault = None
        if self.fault_rate and self.rng.random() < self.fault_rate:
            fault = self.rng.choice(self.faults)
            self.stats[f"fault_{fault}"] += 1
        async with self.sem:
            self.stats["active"] += 1
            self.stats["max_active"] = max(self.stats["max_active"], self.stats["active"])
            try:
                if fault == "slow":
                    await asyncio.sleep(self.slow_s)
                else:
                    await asyncio.sleep(self.latency)
            finally:
                self.stats["active"] -= 1
        if fault == "429":
            return web.json_response({"error": {"message": "rate limited"}}, status=429, headers={"Retry-After": "0.2"})
        if fault == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "malformed":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        text = "prompt" in body  # /v1/completions: answered as a chat whose one message is the prompt
        if text:
            body = {**body, "messages": [{"role": "system", "content": str(body["prompt"])}]}
        content = self._content(body)
        self.stats["late" if fault == "slow" else "served"] += 1
        prompt_tokens = sum(len(m.get("content", "")) for m in body.get("messages", [])) // 4
        return web.json_response(
            {
                "id": f"chatcmpl-{self.stats['requests']}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "load-target"),
                "choices": [
                    {"index": 0, "finish_reason": "stop", "text": content}
                    if text
                    else {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content) // 4,
                    "total_tokens": prompt_tokens + len(content) // 4,
                },
            }
        )

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "load-target", "object": "model"}]})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 << 20)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.get_stats)
        return app


class InstantBackend:
    """The load target's answers in process, without HTTP: a backend for measuring the engine's own
    CPU per call (``latency`` 0) or its scheduling against calls that each take ``latency`` seconds
    (the call slots are then the `LLM`'s own ``concurrency``). Load and faults only, like the target
    (``unparseable_for``: model names whose structured requests get non-JSON text)."""

    kind, model = "openai", "m"

    def __init__(self, latency: float = 0.0, unparseable_for: tuple[str, ...] = ()) -> None:
        self.latency = latency
        self._target = Target(0.0, 1, unparseable_for=unparseable_for)

    def identity(self) -> dict[str, Any]:
        return {"kind": "instant"}

    async def complete(self, req: Any) -> Any:
        from socialsim.llm.base import Completion
        from socialsim.schema import Usage

        if self.latency:
            await asyncio.sleep(self.latency)
        # a text completion (the seeker's 'text' format) is answered as a chat whose one message is its prompt
        messages = req.message_dicts() if req.prompt is None else [{"role": "system", "content": req.prompt}]
        body: dict[str, Any] = {"messages": messages, "seed": req.seed}
        if req.json_schema:
            body["response_format"] = {"type": "json_object", "schema": req.json_schema}
        return Completion(text=self._target._content(body), usage=Usage(prompt_tokens=100, completion_tokens=20))

    async def aclose(self) -> None:
        pass


async def serve(args: argparse.Namespace) -> None:
    target = Target(
        args.latency, args.capacity, args.fault_rate, args.seed, args.slow_s, args.unparseable,
        unparseable_for=tuple(args.unparseable_for or ()), seeker_line=args.seeker_line,
    )
    runner = web.AppRunner(target.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--capacity", type=int, default=32)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--slow-s", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unparseable", action="store_true", help="Structured requests get non-JSON text.")
    ap.add_argument(
        "--unparseable-for", action="append", metavar="NAME",
        help="Structured requests for the model NAME (e.g. RealizedStrategy, SeekerAppraisal) get non-JSON text.",
    )
    ap.add_argument("--seeker-line", default=None, help="Every seeker request gets this line.")
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
