"""The engine at scale, side by side with a raw aiohttp client in the same run. Not a test.

    python bench/bench_scale.py                  # both workloads, 3 interleaved rounds
    python bench/bench_scale.py small --rounds 1 # one workload
    python bench/bench_scale.py profile          # where the engine's CPU per call goes (cProfile)
    python bench/bench_scale.py profile --instant [--n N]  # the same without HTTP (in-process backend)
    python bench/bench_scale.py --baseline OTHER/src   # also another source tree (before/after)
    python bench/bench_scale.py --no-limit-raw   # without the raw client limited to C calls in flight
    python bench/bench_scale.py --legacy-corpus --baseline OLD/src  # this tree on the pre-issue-12 corpus
    python bench/bench_scale.py tail [--n N --latency L --capacity C]  # where the slots go idle (in-process)

Workloads (against the load target, latency L, capacity C, in its own process):
  small  100 dialogues, L = 0.2 s, C = 32
  large  800 dialogues, L = 0.5 s, C = 256
Each round runs, in alternating order, `socialsim simulate` as a user runs it (a fresh process,
--concurrency C, no cache) and `bench/raw_client.py` (a fresh process) replaying the very calls a
recording run made. Efficiency = calls x L / C / wall; CPU per call = the whole process's user +
system time (startup included) / calls. Reported: the median of the rounds, and the median of
the per-round ratios socialsim / raw.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

WORKLOADS = {"small": (100, 0.2, 32), "large": (800, 0.5, 256)}


def start_target(latency: float, capacity: int) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "socialsim.testing.load_target", "--port", "0",
         "--latency", str(latency), "--capacity", str(capacity)],
        stdout=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    line = p.stdout.readline()  # type: ignore[union-attr]
    return p, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def timed(cmd: list[str], src: Path | None = None) -> tuple[float, float, str]:
    """(wall s, user+system CPU s of that process, stdout) of a fresh process. Its CPU is the growth
    of the children's rusage (the load target, also a child, is counted only once it is reaped)."""
    env = ENV if src is None else {**ENV, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(f"{cmd[:4]} failed: {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


#: ``--legacy-corpus``: this tree simulates the corpus of the trees before issue 12 (disclosure by
#: the strategy rule, no realized-strategy call, no fidelity embeddings), so a ``--baseline`` of such
#: a tree does the same work per dialogue and the two compare like for like.
LEGACY_FLAGS = ["--disclosure", "strategy-rule", "--no-realized-strategy", "--no-fidelity"]
LEGACY_FIELDS = {"disclosure": "strategy-rule", "realized_strategy": False, "fidelity": False}
LEGACY = False


def _simulate_cmd(url: str, n: int, capacity: int, out: Path, *, this_tree: bool = True) -> list[str]:
    return [sys.executable, "-m", "socialsim.cli", "simulate", "--n", str(n), "--backend", "openai",
            "--base-url", url, "--model", "m", "--concurrency", str(capacity), "--no-cache", "-q",
            "--out", str(out), *(LEGACY_FLAGS if LEGACY and this_tree else [])]  # fmt: skip


def _knows_legacy_flags(src: Path) -> bool:
    """Whether a ``--baseline`` tree has the flags of `LEGACY_FLAGS` (it is newer than issue 12): such a
    tree gets them too under ``--legacy-corpus``, so that both trees simulate the same corpus."""
    return any("realized_strategy" in f.read_text() for f in (src / "socialsim").rglob("*.py"))


def configs(url: str, n: int, capacity: int) -> tuple[Any, Any]:
    """The configs `socialsim simulate --n N --concurrency C --no-cache` builds for the load target."""
    from socialsim.schema import BackendConfig, ExecutionConfig
    from socialsim.simulate.run import simulation_config

    extra = LEGACY_FIELDS if LEGACY else {}
    sim = simulation_config("default", BackendConfig(kind="openai", base_url=url, model="m"), n=n, **extra)
    return sim, ExecutionConfig(concurrency=capacity, cache=False)


def record_chains(url: str, n: int, capacity: int, path: Path) -> int:
    """Run the workload once in-process, keeping each dialogue's request bodies in call order."""
    from socialsim.llm import LLM, make_backend
    from socialsim.simulate.engine import run_simulation
    from socialsim.simulate.store import RunStore

    inner = make_backend("openai", base_url=url, model="m", http_client="aiohttp")
    # one asyncio task per dialogue here: the engine keeps more dialogues in flight than n
    chains: dict[int, list[dict[str, Any]]] = {}

    class Recording:
        kind, model = inner.kind, inner.model

        def identity(self) -> dict[str, Any]:
            return inner.identity()

        async def complete(self, req: Any) -> Any:
            chains.setdefault(id(asyncio.current_task()), []).append(inner.body(req))  # type: ignore[attr-defined]
            return await inner.complete(req)

        async def aclose(self) -> None:
            await inner.aclose()

    sim, ex = configs(url, n, capacity)
    with tempfile.TemporaryDirectory() as d:
        store = RunStore.create(Path(d) / "run", sim.model_dump(mode="json"), sim.config_hash())
        run_simulation(store, sim, ex, llm=LLM(Recording(), concurrency=capacity))  # type: ignore[arg-type]
        store.close()
    path.write_text(json.dumps(list(chains.values())))
    return sum(len(c) for c in chains.values())


def bench_workload(name: str, rounds: int, baseline: Path | None = None, limit_raw: bool = True) -> dict[str, Any]:
    n, latency, capacity = WORKLOADS[name]
    proc, url = start_target(latency, capacity)
    variants = ["raw"] + (["raw_limit_c"] if limit_raw else []) + ["socialsim"] + (["baseline"] if baseline else [])
    baseline_legacy_ok = baseline is not None and _knows_legacy_flags(baseline)
    res: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            chains = tmp / "chains.json"
            recorded = record_chains(url, n, capacity, chains)
            print(f"[{name}] recorded {recorded} calls", file=sys.stderr, flush=True)
            for r in range(rounds):
                order = variants[r % len(variants) :] + variants[: r % len(variants)]  # rotated: interleaved
                for who in order:
                    if who.startswith("raw"):
                        raw = [sys.executable, str(ROOT / "bench" / "raw_client.py"), url, str(chains)]
                        raw += [str(capacity)] if who == "raw_limit_c" else []
                        wall, cpu, out = timed(raw)
                        got = json.loads(out)
                        calls, run_wall = got["calls"], got["wall"]
                    else:
                        run = tmp / f"run-{who}-{r}"
                        src = baseline if who == "baseline" else None
                        legacy_ok = src is None or baseline_legacy_ok
                        wall, cpu, _ = timed(_simulate_cmd(url, n, capacity, run, this_tree=legacy_ok), src)
                        summary = json.loads((run / "summary.json").read_text())
                        calls, run_wall = summary["calls"], summary["wall_s"]
                    m = {
                        "calls": calls,
                        "eff": calls * latency / capacity / run_wall,
                        "eff_process": calls * latency / capacity / wall,
                        "cpu_ms": 1000 * cpu / calls,
                        "wall": run_wall,
                    }
                    res[who].append(m)
                    print(f"[{name}] round {r + 1} {who}: " + json.dumps({k: round(v, 4) for k, v in m.items()}),
                          file=sys.stderr, flush=True)  # fmt: skip
    finally:
        proc.terminate()
    return {"name": name, "n": n, "latency": latency, "capacity": capacity, **res}


def table(results: list[dict[str, Any]]) -> str:
    def med(xs: list[dict[str, float]], k: str) -> float:
        return statistics.median(x[k] for x in xs)

    lines = [
        "| workload | client | calls | efficiency (run) | efficiency (process) | CPU/call (whole process) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        label = f"{r['n']} dialogues, L = {r['latency']} s, C = {r['capacity']}"
        for who in [w for w in ("raw", "raw_limit_c", "socialsim", "baseline") if w in r]:
            xs = r[who]
            lines.append(
                f"| {label} | {who} | {med(xs, 'calls'):.0f} | {med(xs, 'eff'):.3f} | {med(xs, 'eff_process'):.3f}"
                f" | {med(xs, 'cpu_ms'):.2f} ms |"
            )
        ratio = statistics.median(s["eff"] / w["eff"] for s, w in zip(r["socialsim"], r["raw"], strict=True))
        ratio_p = statistics.median(
            s["eff_process"] / w["eff_process"] for s, w in zip(r["socialsim"], r["raw"], strict=True)
        )
        lines.append(f"| {label} | **socialsim / raw** | | **{ratio:.3f}** (target ≥ 0.97) | {ratio_p:.3f} | "
                     f"target ≤ 1.0 ms |")  # fmt: skip
        if "raw_limit_c" in r:
            lim = statistics.median(s["eff"] / w["eff"] for s, w in zip(r["socialsim"], r["raw_limit_c"], strict=True))
            lines.append(f"| {label} | socialsim / raw_limit_c | | {lim:.3f} | | |")
        if "baseline" in r:
            b = statistics.median(s["eff"] / w["eff"] for s, w in zip(r["baseline"], r["raw"], strict=True))
            lines.append(f"| {label} | baseline / raw | | {b:.3f} | | |")
    return "\n".join(lines)


def profile(
    n: int = 300, latency: float = 0.05, capacity: int = 64, top: int = 30, instant: bool = False,
    dump: str | None = None, profiler: bool = True,
) -> None:
    """cProfile (CPU-time timer) of the in-process engine on the load target, or with ``instant`` on
    an in-process backend without HTTP (`InstantBackend`); prints the top functions by own and by
    cumulative time."""
    import cProfile
    import pstats

    from socialsim.llm import LLM
    from socialsim.simulate.engine import run_simulation
    from socialsim.simulate.store import RunStore
    from socialsim.testing.load_target import InstantBackend

    proc, url = (None, "http://127.0.0.1:9/v1") if instant else start_target(latency, capacity)
    try:
        sim, ex = configs(url, n, capacity)
        llm = LLM(InstantBackend(), concurrency=capacity) if instant else None  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as d:
            store = RunStore.create(Path(d) / "run", sim.model_dump(mode="json"), sim.config_hash())
            prof = cProfile.Profile(time.process_time)  # CPU time: other processes distort less
            cpu0 = time.process_time()
            if profiler:
                prof.enable()
            result = run_simulation(store, sim, ex, llm=llm)
            prof.disable()
            cpu = time.process_time() - cpu0
            store.close()
        calls = result.stats["calls"]
        state = "on" if profiler else "off"
        print(f"{calls} calls, {1000 * cpu / calls:.3f} ms CPU per call in the run (profiler {state})")
        if not profiler:
            return
        if dump:
            prof.dump_stats(dump)
        pstats.Stats(prof).sort_stats("tottime").print_stats(top)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    finally:
        if proc is not None:
            proc.terminate()


def tail(n: int = 800, latency: float = 0.5, capacity: int = 256) -> None:
    """The engine in-process against a backend that answers after ``latency``, with ``capacity``
    slots: calls in flight over time (sampled by the progress hook every 0.25 s), when the slots
    stopped being full, how long the tail after that lasted, and the efficiency."""
    from socialsim.llm import LLM
    from socialsim.simulate.engine import run_simulation
    from socialsim.simulate.store import RunStore
    from socialsim.testing.load_target import InstantBackend

    sim, ex = configs("http://127.0.0.1:9/v1", n, capacity)
    llm = LLM(InstantBackend(latency), concurrency=capacity)  # type: ignore[arg-type]
    samples: list[tuple[float, int]] = []
    t0 = time.perf_counter()

    def on_progress(live: Any, m: Any) -> None:
        sem = m._sem.get()  # noqa: SLF001
        samples.append((time.perf_counter() - t0, capacity - sem._free))  # noqa: SLF001

    with tempfile.TemporaryDirectory() as d:
        store = RunStore.create(Path(d) / "run", sim.model_dump(mode="json"), sim.config_hash())
        result = run_simulation(store, sim, ex, llm=llm, on_progress=on_progress)
        chains = sorted(sum(t.calls for t in dl.turns) for dl in store.iter_dialogues())
        store.close()
    calls, wall = result.stats["calls"], result.wall_s
    full = [t for t, k in samples if k >= 0.95 * capacity]
    full_until = full[-1] if full else 0.0
    print(f"{n} dialogues, L {latency} s, C {capacity}: {calls} calls in {wall:.1f} s, "
          f"efficiency {calls * latency / capacity / wall:.3f} (ideal wall {calls * latency / capacity:.1f} s)")
    print(f"slots >= 95 % busy until {full_until:.1f} s; tail {wall - full_until:.1f} s")
    if chains:
        print(f"calls per dialogue: min {chains[0]}, median {chains[len(chains) // 2]}, max {chains[-1]}")
    last = [(round(t, 1), k) for t, k in samples if t >= full_until - 1.0]
    print("in flight over the tail (s, calls):", " ".join(f"{t}:{k}" for t, k in last[::4]))


def main(argv: list[str]) -> None:
    os.environ.setdefault("SOCIALSIM_CACHE_DIR", tempfile.mkdtemp())
    ENV["SOCIALSIM_CACHE_DIR"] = os.environ["SOCIALSIM_CACHE_DIR"]
    if argv[:1] == ["tail"]:
        global LEGACY
        LEGACY = "--legacy-corpus" in argv

        def opt(name: str, default: float) -> float:
            return float(argv[argv.index(name) + 1]) if name in argv else default

        tail(int(opt("--n", 800)), opt("--latency", 0.5), int(opt("--capacity", 256)))
        return
    if argv[:1] == ["profile"]:
        LEGACY = "--legacy-corpus" in argv
        n = int(argv[argv.index("--n") + 1]) if "--n" in argv else 300
        dump = argv[argv.index("--dump") + 1] if "--dump" in argv else None
        profile(n=n, instant="--instant" in argv, dump=dump, profiler="--no-profiler" not in argv)
        return
    rounds = 3
    if "--rounds" in argv:
        i = argv.index("--rounds")
        rounds = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    baseline = None
    if "--baseline" in argv:
        i = argv.index("--baseline")
        baseline = Path(argv[i + 1]).resolve()
        argv = argv[:i] + argv[i + 2 :]
    limit_raw = "--no-limit-raw" not in argv
    LEGACY = "--legacy-corpus" in argv
    argv = [a for a in argv if a != "--legacy-corpus"]
    argv = [a for a in argv if a != "--no-limit-raw"]
    names = argv or list(WORKLOADS)
    results = [bench_workload(name, rounds, baseline, limit_raw) for name in names]
    load = os.getloadavg()
    print(f"\nMeasured {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores, median of {rounds} interleaved "
          f"rounds; load average at the end {load[0]:.2f}.\n")  # fmt: skip
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
