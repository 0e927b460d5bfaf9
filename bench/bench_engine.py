"""Corpus-engine benchmarks; prints a markdown table. Not a test: run it by hand.

    python bench/bench_engine.py                 # everything (about 10 minutes on 2 cores)
    python bench/bench_engine.py throughput rss  # a subset: throughput, rss, local

throughput  Against the load target (latency L, capacity C, in its own process): the engine's
            wall time vs the ideal (calls x L / C), the same calls in a plain sequential loop,
            and the engine process's CPU time per LLM call; for both HTTP clients.
rss         Peak RSS of a whole `simulate` run of 1,000 vs 100,000 dialogues (turn cap 1) on an
            instant in-process backend, each in a fresh process.
local       The embedded model's completion tokens/s through `simulate_dialogue` vs raw
            llama-cpp-python on the same prompts with the same settings, in one process.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from socialsim.llm import LLM, ChatRequest, Completion, make_backend  # noqa: E402
from socialsim.schema import ExecutionConfig, SimulationConfig, Usage  # noqa: E402

ROWS: list[tuple[str, str, str, str]] = []


def row(measure: str, value: str, target: str, note: str = "") -> None:
    ROWS.append((measure, value, target, note))
    print(f"  {measure}: {value} ({target}) {note}", file=sys.stderr, flush=True)


def start_target(latency: float, capacity: int) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "socialsim.testing.load_target",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--capacity",
            str(capacity),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    line = p.stdout.readline()  # type: ignore[union-attr]
    return p, f"http://127.0.0.1:{int(line.split()[1])}/v1"


class Recording:
    """Wraps a backend and keeps every request, to replay the same calls elsewhere."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.kind, self.model = inner, inner.kind, inner.model
        self.requests: list[ChatRequest] = []

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def complete(self, req: ChatRequest) -> Completion:
        self.requests.append(req)
        return await self.inner.complete(req)

    async def aclose(self) -> None:
        await self.inner.aclose()


def personas_file(tmp: Path) -> Path:
    from socialsim.personas.bank import default_bank_path

    return default_bank_path()


def engine_run(backend: Any, n: int, max_turns: int, concurrency: int, tmp: Path, cache: bool = False) -> dict:
    from socialsim.agents.prompts import Prompts
    from socialsim.simulate.engine import file_sha256, run_simulation
    from socialsim.simulate.store import RunStore

    bank = personas_file(tmp)
    sim = SimulationConfig(
        personas=str(bank),
        personas_sha256=file_sha256(bank),
        n=n,
        max_turns=max_turns,
        templates_digest=Prompts().source_digest(),
    )
    ex = ExecutionConfig(concurrency=concurrency, cache=cache, cache_path=str(tmp / "cache.sqlite"))
    llm = LLM(backend, concurrency=concurrency)
    out = tmp / f"run-{time.monotonic_ns()}"
    store = RunStore.create(out, sim.model_dump(mode="json"), sim.config_hash())
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = run_simulation(store, sim, ex, llm=llm)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    store.close()
    return {"wall": wall, "cpu": cpu, "calls": llm.stats.calls, "summary": result.summary, "llm": llm}


# -- throughput ---------------------------------------------------------------------------------


def bench_throughput(
    latency: float = 0.2, capacity: int = 32, n: int = 400, max_turns: int = 1, seq_calls: int = 250
) -> None:
    proc, url = start_target(latency, capacity)
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            recorded: list[ChatRequest] = []
            for client in ("aiohttp", "openai"):
                rec = Recording(make_backend("openai", base_url=url, model="m", http_client=client))
                r = engine_run(rec, n, max_turns, capacity, tmp)
                ideal = r["calls"] * latency / capacity
                row(
                    f"engine wall time, {client} client ({r['calls']} calls, L={latency}s, C={capacity})",
                    f"{r['wall']:.2f} s = {100 * ideal / r['wall']:.1f} % of ideal speed ({ideal:.2f} s)",
                    "≥ 95 %",
                )
                row(
                    f"orchestration CPU per call, {client} client",
                    f"{1000 * r['cpu'] / r['calls']:.2f} ms",
                    "≤ 2 ms",
                    "engine process only; server in its own process",
                )
                recorded = recorded or rec.requests

            async def sequential() -> float:
                backend = make_backend("openai", base_url=url, model="m", http_client="aiohttp")
                t0 = time.perf_counter()
                for req in recorded[:seq_calls]:
                    await backend.complete(req)
                await backend.aclose()
                return time.perf_counter() - t0

            part = asyncio.run(sequential())
            k = min(seq_calls, len(recorded))
            seq = part * len(recorded) / k
            ideal = len(recorded) * latency / capacity
            row(
                f"plain sequential loop over the same {len(recorded)} calls",
                f"{seq:.1f} s = {100 * ideal / seq:.1f} % of ideal speed",
                "(reference)",
                f"timed over the first {k} calls, scaled",
            )
    finally:
        proc.terminate()


# -- memory ---------------------------------------------------------------------------------------


class Instant:
    """An in-process backend that answers at once (load only; the load target's answers)."""

    kind, model = "instant", "instant"

    def __init__(self) -> None:
        from socialsim.testing.load_target import Target

        self._content = Target.__new__(Target)
        self._content.unparseable = False

    def identity(self) -> dict[str, Any]:
        return {"kind": "instant"}

    async def complete(self, req: ChatRequest) -> Completion:
        body = {"messages": req.message_dicts(), "seed": req.seed}
        if req.json_schema:
            body["response_format"] = {"type": "json_object"}
        text = self._content._content(body)  # noqa: SLF001
        last = req.messages[-1][1]
        if "ready to say now" in last:  # a seeker turn: say the opened layer, as a good model would
            text = last.split("in their own words: ", 1)[1].split('"')[1]
        return Completion(text=text, usage=Usage(prompt_tokens=100, completion_tokens=20))

    async def aclose(self) -> None:
        pass


def _rss_child(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        r = engine_run(Instant(), n, 1, 8, Path(d))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(
            json.dumps(
                {"n": n, "peak_kib": peak, "wall": r["wall"], "calls": r["calls"], "ok": r["summary"]["dialogues_ok"]}
            )
        )


def bench_rss(small: int = 1000, large: int = 100_000) -> None:
    res = {}
    for n in (small, large):
        out = subprocess.run(
            [sys.executable, __file__, "_rss_child", str(n)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        res[n] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  rss {n}: {res[n]}", file=sys.stderr)
    a, b = res[small]["peak_kib"] / 1024, res[large]["peak_kib"] / 1024
    row(
        f"peak RSS, {small:,} vs {large:,} dialogues (turn cap 1)",
        f"{a:.0f} MiB vs {b:.0f} MiB, ratio {b / a:.3f}",
        "≤ 1.2",
        f"{res[large]['calls']:,} calls in {res[large]['wall']:.0f} s",
    )


# -- embedded model ---------------------------------------------------------------------------------


def bench_local(n: int = 1, max_turns: int = 2) -> None:
    from socialsim.llm.local import LocalBackend
    from socialsim.personas import default_personas
    from socialsim.simulate import DialogueConfig, simulate_dialogue

    personas = default_personas()[:n]
    rec = Recording(LocalBackend())
    llm = LLM(rec)

    async def sim() -> None:
        for i, p in enumerate(personas):
            await simulate_dialogue(llm, p, seed=i, dialogue_id=f"b{i}", config=DialogueConfig(max_turns=max_turns))

    rec.inner._load()  # noqa: SLF001 - load time excluded from both sides
    t0 = time.perf_counter()
    asyncio.run(sim())
    t_sim = time.perf_counter() - t0
    toks = llm.stats.completion_tokens

    def raw(with_cache: bool) -> tuple[float, int]:
        from llama_cpp import Llama, LlamaRAMCache

        m = Llama(
            model_path=str(rec.inner.model_path), n_ctx=rec.inner.n_ctx, n_threads=rec.inner.n_threads, verbose=False
        )
        if with_cache:
            m.set_cache(LlamaRAMCache(capacity_bytes=rec.inner.prompt_cache_mb << 20))
        t0, out_toks = time.perf_counter(), 0
        for req in rec.requests:
            kw: dict[str, Any] = {
                "messages": req.message_dicts(),
                "temperature": req.temperature,
                "top_p": req.top_p,
                "max_tokens": req.max_tokens,
                "repeat_penalty": req.repeat_penalty,
                "seed": req.seed,
            }
            if req.json_schema:
                kw["response_format"] = {"type": "json_object", "schema": req.json_schema}
            out_toks += m.create_chat_completion(**kw)["usage"]["completion_tokens"]
        return time.perf_counter() - t0, out_toks

    t_raw, raw_toks = raw(True)
    t_plain, plain_toks = raw(False)
    row(
        f"embedded model through simulate ({len(rec.requests)} calls, {toks} tokens out)",
        f"{toks / t_sim:.1f} tok/s",
        "",
    )
    row(
        "raw llama-cpp-python, same prompts, same settings (prompt cache on)",
        f"{raw_toks / t_raw:.1f} tok/s; simulate = {100 * (toks / t_sim) / (raw_toks / t_raw):.1f} % of raw",
        "≥ 85 %",
        "same seeds: same tokens" if raw_toks == toks else f"tokens differ: {raw_toks}",
    )
    row(
        "raw llama-cpp-python, same prompts, default settings (no prompt cache)",
        f"{plain_toks / t_plain:.1f} tok/s",
        "(reference)",
    )


def main(argv: list[str]) -> None:
    if argv[:1] == ["_rss_child"]:
        _rss_child(int(argv[1]))
        return
    which = argv or ["throughput", "rss", "local"]
    os.environ.setdefault("SOCIALSIM_CACHE_DIR", tempfile.mkdtemp())
    for name in which:
        {"throughput": bench_throughput, "rss": bench_rss, "local": bench_local}[name]()
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores.\n")
    print("| measure | value | target | note |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
