"""Corpus-engine benchmarks; prints a markdown table. Not a test: run it by hand.

    python bench/bench_engine.py                 # everything (about 10 minutes on 2 cores)
    python bench/bench_engine.py throughput rss  # a subset: throughput, rss, local

throughput  Against the load target (latency L, capacity C, in its own process): the engine's
            wall time vs the ideal (calls x L / C), the same calls in a plain sequential loop,
            and the engine process's CPU time per LLM call; for both HTTP clients.
rss         Peak RSS of a whole `simulate` run of 1,000 vs 100,000 dialogues (turn cap 1) on an
            instant in-process backend, each in a fresh process.
local       The embedded SmolLM2-135M model's completion tokens/s through `simulate_dialogue` vs raw
            llama-cpp-python on the same calls, with and without the prompt cache, in one
            process, interleaved over rounds (median of per-round ratios).

The default embedded model (qwen2.5-1.5b) has its own: bench/bench_local_model.py.
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
from socialsim.schema import BackendConfig, ExecutionConfig, Usage  # noqa: E402

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
    from socialsim.simulate.engine import run_simulation
    from socialsim.simulate.run import simulation_config
    from socialsim.simulate.store import RunStore

    sim = simulation_config(str(personas_file(tmp)), BackendConfig(), n=n, max_turns=max_turns)
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
    latency: float = 0.2, capacity: int = 32, n: int = 400, max_turns: int = 1, seq_calls: int = 250, repeats: int = 3
) -> None:
    proc, url = start_target(latency, capacity)
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            recorded: list[ChatRequest] = []
            # warm-up, not timed: one-time process costs (imports, regex and template compiling)
            engine_run(make_backend("openai", base_url=url, model="m"), 20, max_turns, capacity, tmp)
            for client in ("aiohttp", "openai"):
                runs = []
                for _ in range(repeats):
                    rec = Recording(make_backend("openai", base_url=url, model="m", http_client=client))
                    runs.append(engine_run(rec, n, max_turns, capacity, tmp))
                    recorded = recorded or rec.requests
                runs.sort(key=lambda x: x["wall"])
                r = runs[len(runs) // 2]  # the median run
                ideal = r["calls"] * latency / capacity
                spread = ", ".join(f"{100 * ideal / x['wall']:.1f}" for x in runs)
                row(
                    f"engine wall time, {client} client ({r['calls']} calls, L={latency}s, C={capacity})",
                    f"{r['wall']:.2f} s = {100 * ideal / r['wall']:.1f} % of ideal speed ({ideal:.2f} s)",
                    "≥ 95 %" if client == "aiohttp" else "(reference)",
                    f"median of {repeats} runs ({spread} %)",
                )
                row(
                    f"orchestration CPU per call, {client} client",
                    f"{1000 * r['cpu'] / r['calls']:.2f} ms",
                    "≤ 2 ms" if client == "aiohttp" else "(reference)",
                    "engine process only; server in its own process",
                )

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


def bench_local(n: int = 1, max_turns: int = 2, rounds: int = 3) -> None:
    """Four variants on the same calls, interleaved (round r runs them in a rotated order) so that
    machine noise hits all of them alike; ratios are taken per round, then the median is reported.
    Each variant gets a fresh model instance (load time excluded), so no prompt cache carries over."""
    import statistics

    from socialsim.llm.local import LocalBackend, _lean_ram_cache
    from socialsim.llm.worker import ModelThread
    from socialsim.personas import default_personas
    from socialsim.simulate import DialogueConfig, simulate_dialogue

    personas = default_personas()[:n]
    cfg = DialogueConfig(max_turns=max_turns)

    def simulate(prompt_cache_mb: int, record: list[ChatRequest] | None = None) -> tuple[float, int]:
        backend = LocalBackend(model_name="smollm2-135m", prompt_cache_mb=prompt_cache_mb)
        backend.load()  # load time excluded
        rec = Recording(backend)
        llm = LLM(rec)

        async def go() -> None:
            for i, p in enumerate(personas):
                await simulate_dialogue(llm, p, seed=i, dialogue_id=f"b{i}", config=cfg)

        t0 = time.perf_counter()
        asyncio.run(go())
        wall = time.perf_counter() - t0
        backend.unload()  # ends its model thread: no idle compute threads linger into the next variant
        if record is not None:
            record.extend(rec.requests)
        return wall, llm.stats.completion_tokens

    requests: list[ChatRequest] = []
    simulate(256, requests)  # records the calls (and warms the page cache)
    settings = LocalBackend(model_name="smollm2-135m")
    model_path, n_ctx, n_threads = settings.model_path, settings.n_ctx, settings.n_threads

    def raw(with_cache: bool) -> tuple[float, int]:
        # on a thread of its own, like the backend's model thread, ended afterwards (see llm/worker.py)
        thread = ModelThread("raw-llama")
        try:
            return thread.call(raw_on_thread, with_cache)
        finally:
            thread.close()

    def raw_on_thread(with_cache: bool) -> tuple[float, int]:
        from llama_cpp import Llama

        m = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        if with_cache:
            m.set_cache(_lean_ram_cache(256 << 20))
        t0, out_toks = time.perf_counter(), 0
        for req in requests:
            out_toks += LocalBackend.call(m, req)["usage"]["completion_tokens"]  # as the backend sends it
        wall = time.perf_counter() - t0
        m.close()
        return wall, out_toks

    variants = {
        "sim_cache": lambda: simulate(256),
        "raw_cache": lambda: raw(True),
        "sim_plain": lambda: simulate(0),
        "raw_plain": lambda: raw(False),
    }
    names = list(variants)
    speed: dict[str, list[float]] = {k: [] for k in names}
    tokens: dict[str, set[int]] = {k: set() for k in names}
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            wall, toks = variants[k]()
            speed[k].append(toks / wall)
            tokens[k].add(toks)

    def med(k: str) -> float:
        return statistics.median(speed[k])

    def ratio(a: str, b: str) -> str:
        per_round = [x / y for x, y in zip(speed[a], speed[b], strict=True)]
        return f"{100 * statistics.median(per_round):.1f} % (rounds: {', '.join(f'{100 * x:.0f}' for x in per_round)})"

    same = len(set().union(*tokens.values())) == 1
    note = f"{len(requests)} calls; " + (
        f"every variant wrote the same {next(iter(tokens['sim_cache']))} tokens" if same else f"tokens differ: {tokens}"
    )
    row("embedded model through `simulate_dialogue`, prompt cache on (default)", f"{med('sim_cache'):.1f} tok/s", "")
    row("raw llama-cpp-python, same calls, same prompt cache", f"{med('raw_cache'):.1f} tok/s", "", note)
    row("**simulate / raw, both with the prompt cache**", ratio("sim_cache", "raw_cache"), "≥ 85 %")
    row("embedded model through `simulate_dialogue`, prompt cache off", f"{med('sim_plain'):.1f} tok/s", "")
    row("raw llama-cpp-python, same calls, default settings (no prompt cache)", f"{med('raw_plain'):.1f} tok/s", "")
    row("**simulate / raw, both without a prompt cache**", ratio("sim_plain", "raw_plain"), "≥ 85 %")
    row("simulate (cache on) / raw llama-cpp-python (defaults)", ratio("sim_cache", "raw_plain"), "(reference)")


def main(argv: list[str]) -> None:
    if argv[:1] == ["_rss_child"]:
        _rss_child(int(argv[1]))
        return
    which = argv or ["throughput", "rss", "local"]
    os.environ.setdefault("SOCIALSIM_CACHE_DIR", tempfile.mkdtemp())
    for name in which:
        {"throughput": bench_throughput, "rss": bench_rss, "local": bench_local}[name]()
    print_table()


def print_table() -> None:
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores.\n")
    print("| measure | value | target | note |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
