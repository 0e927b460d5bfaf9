"""The default embedded model (qwen2.5-1.5b) on this machine; prints a markdown table. Not a test: run it
by hand, alone on the machine (under `flock /tmp/socialsim-heavy.lock` here).

    python bench/bench_local_model.py prefill    # llama.cpp CPU prefill options (~5 min on 2 cores)
    python bench/bench_local_model.py simulate   # simulate vs raw llama-cpp-python (~10 min on 2 cores)
    python bench/bench_local_model.py nocopy     # the copy ban's cost per generated token (~3 min)

prefill   One fixed thought prompt (~450 tokens) read from scratch by a fresh model per option set
          (batch sizes, flash attention, KV cache type), rounds interleaved; llama.cpp's own counters
          give prompt and decode tokens/s.
simulate  One dialogue through `simulate_dialogue` (3 supporter turns) on `LocalBackend`, recorded; then
          the same calls replayed on a raw `llama_cpp.Llama` with the same options and prompt cache.
          Same seeds, so both do the same work: the wall-time ratio is simulate's share of raw speed.
          Prompt reuse: the share of prompt tokens not re-read (served by the prompt cache / kept
          context), from llama.cpp's counters.
nocopy    One seeker line (a `text` prompt after six seeker lines) generated with and without its copy ban
          (`ChatRequest.avoid_copying`: a logits processor in Python on every token), same seeds, rounds
          interleaved: wall ms per generated token either way (the prompt is cached after the first call, so
          that is decoding and sampling; llama.cpp's own counters leave out the sampling).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import Recording, print_table, row  # noqa: E402

from socialsim.llm import LLM, ChatRequest  # noqa: E402

MODEL = "qwen2.5-1.5b"
WARM_UP = ChatRequest.of([{"role": "user", "content": "Hi"}], max_tokens=2, seed=0)


def perf(llm: Any) -> dict[str, float]:
    """llama.cpp's counters for this context: prompt tokens evaluated and their ms, decoded tokens and ms."""
    import llama_cpp

    d = llama_cpp.llama_perf_context(llm._ctx.ctx)
    return {"n_p": d.n_p_eval, "t_p": d.t_p_eval_ms, "n_e": d.n_eval, "t_e": d.t_eval_ms}


def reset_perf(llm: Any) -> None:
    import llama_cpp

    llama_cpp.llama_perf_context_reset(llm._ctx.ctx)


def _thought_prompt() -> list[dict[str, str]]:
    from socialsim.agents.prompts import Prompts
    from socialsim.agents.supporter import Supporter
    from socialsim.schema import Turn

    turns = [
        Turn(speaker="seeker", text="I've been feeling so stressed about school lately."),
        Turn(speaker="supporter", text="That sounds heavy. What has been weighing on you the most?"),
        Turn(
            speaker="seeker",
            text="My finals start Monday and I failed a midterm, so I need an A to keep my scholarship.",
        ),
        Turn(speaker="supporter", text="So a lot rides on these exams, and the midterm still stings."),
        Turn(speaker="seeker", text="Yes, and I'm scared my parents will see I'm not as smart as they think."),
    ]
    return Supporter(None, Prompts(), seed=0).thought_messages(turns)  # type: ignore[arg-type]


def bench_prefill(rounds: int = 2) -> None:
    from llama_cpp import Llama

    from socialsim.llm.local import LocalBackend
    from socialsim.llm.worker import ModelThread

    settings = LocalBackend(model_name=MODEL)
    path, n_ctx, n_threads = str(settings.model_path), settings.n_ctx, settings.n_threads
    variants: dict[str, dict[str, Any]] = {
        "defaults (n_batch 512, n_ubatch 512, f16 KV)": {},
        "n_batch 128, n_ubatch 128": {"n_batch": 128, "n_ubatch": 128},
        "flash_attn": {"flash_attn": True},
        "flash_attn + q8_0 KV cache": {"flash_attn": True, "type_k": 8, "type_v": 8},
    }
    messages = _thought_prompt()
    prompt_s: dict[str, list[float]] = {k: [] for k in variants}
    decode_s: dict[str, list[float]] = {k: [] for k in variants}
    n_prompt = 0

    def one(opts: dict[str, Any]) -> dict[str, float]:
        kw = {"n_threads": n_threads, **opts}
        m = Llama(model_path=path, n_ctx=n_ctx, verbose=False, **kw)
        try:
            m.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=4, seed=0)  # warm-up
            m.reset()
            reset_perf(m)
            m.create_chat_completion(messages=messages, max_tokens=48, temperature=0.0, seed=0)
            return perf(m)
        finally:
            m.close()

    names = list(variants)
    thread = ModelThread("bench-prefill")
    try:
        for r in range(rounds):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                p = thread.call(one, variants[k])
                n_prompt = int(p["n_p"])
                prompt_s[k].append(1000 * p["n_p"] / p["t_p"])
                decode_s[k].append(1000 * p["n_e"] / max(p["t_e"], 1e-9))
                print(f"  {k}: prompt {prompt_s[k][-1]:.1f} tok/s, decode {decode_s[k][-1]:.1f} tok/s", file=sys.stderr)
    finally:
        thread.close()
    base = statistics.median(prompt_s[names[0]])
    for k in names:
        pm, dm = statistics.median(prompt_s[k]), statistics.median(decode_s[k])
        row(
            f"prefill: {k}",
            f"prompt {pm:.1f} tok/s ({100 * pm / base:.0f} %), decode {dm:.1f} tok/s",
            "",
            f"{n_prompt} prompt tokens; rounds: {', '.join(f'{x:.1f}' for x in prompt_s[k])}",
        )


def bench_simulate(max_turns: int = 3, rounds: int = 2) -> None:
    from llama_cpp import Llama

    from socialsim.llm.local import LocalBackend, _lean_ram_cache
    from socialsim.llm.worker import ModelThread
    from socialsim.personas import default_personas
    from socialsim.simulate import DialogueConfig, simulate_dialogue

    persona = default_personas()[0]
    cfg = DialogueConfig(max_turns=max_turns)
    requests: list[ChatRequest] = []

    def simulate() -> dict[str, float]:
        backend = LocalBackend(model_name=MODEL)
        backend.load()  # load time excluded
        backend.complete_sync(WARM_UP)  # pages the weights in: the first variant must not pay for that alone
        rec = Recording(backend)
        llm = LLM(rec)
        backend._thread.call(reset_perf, backend._llm)
        t0 = time.perf_counter()
        asyncio.run(simulate_dialogue(llm, persona, seed=0, dialogue_id="b0", config=cfg))
        wall = time.perf_counter() - t0
        p = backend._thread.call(perf, backend._llm)
        backend.unload()
        if not requests:
            requests.extend(rec.requests)
        return {"wall": wall, "prompt": llm.stats.prompt_tokens, "out": llm.stats.completion_tokens, **p}

    settings = LocalBackend(model_name=MODEL)

    def raw_on_thread() -> dict[str, float]:
        m = Llama(
            model_path=str(settings.model_path),
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            verbose=False,
            **settings.llama_options,
        )
        m.set_cache(_lean_ram_cache(settings.prompt_cache_mb << 20))
        LocalBackend.call(m, WARM_UP)
        reset_perf(m)
        t0, prompt, out = time.perf_counter(), 0, 0
        for req in requests:
            u = LocalBackend.call(m, req)["usage"]  # as the backend sends it, its copy ban included
            prompt += u["prompt_tokens"]
            out += u["completion_tokens"]
        wall = time.perf_counter() - t0
        p = perf(m)
        m.close()
        return {"wall": wall, "prompt": prompt, "out": out, **p}

    def raw() -> dict[str, float]:
        thread = ModelThread("raw-llama")
        try:
            return thread.call(raw_on_thread)
        finally:
            thread.close()

    results: dict[str, list[dict[str, float]]] = {"sim": [], "raw": []}
    for r in range(rounds):
        order = ["sim", "raw"] if r % 2 == 0 else ["raw", "sim"]
        for k in order:
            results[k].append(simulate() if k == "sim" else raw())
            x = results[k][-1]
            print(f"  {k}: {x}", file=sys.stderr, flush=True)

    def med(k: str, f: Any) -> float:
        return statistics.median(f(x) for x in results[k])

    def reuse(x: dict[str, float]) -> float:
        return 1 - x["n_p"] / x["prompt"]

    pairs = zip(results["sim"], results["raw"], strict=True)
    ratios = [s["out"] / s["wall"] / (r["out"] / r["wall"]) for s, r in pairs]
    calls = len(requests)
    for k, label in (("raw", "raw llama-cpp-python, same calls and prompt cache"), ("sim", "`simulate_dialogue`")):
        row(
            f"{MODEL}: {label}",
            f"prompt {med(k, lambda x: 1000 * x['n_p'] / x['t_p']):.1f} tok/s, decode "
            f"{med(k, lambda x: 1000 * x['n_e'] / x['t_e']):.1f} tok/s; {med(k, lambda x: x['wall']):.0f} s wall, "
            f"{med(k, lambda x: x['out'] / x['wall']):.2f} completion tok/s end to end",
            "",
            f"{calls} calls, {results[k][0]['prompt']:.0f} prompt + {results[k][0]['out']:.0f} completion tokens",
        )
        row(
            f"{MODEL}: prompt tokens not re-read ({label})",
            f"{100 * med(k, reuse):.1f} %",
            "(reported)",
            f"{results[k][0]['n_p']:.0f} of {results[k][0]['prompt']:.0f} read",
        )
    row(
        f"**{MODEL}: simulate / raw speed, same calls**",
        f"{100 * statistics.median(ratios):.1f} % (rounds: {', '.join(f'{100 * x:.0f}' for x in ratios)})",
        "≥ 90 %",
    )


def bench_nocopy(rounds: int = 3, lines: int = 8) -> None:
    from socialsim.llm.local import LocalBackend

    said = [f"I keep thinking about my sister and the things we said to each other, number {i}." for i in range(6)]
    chat = "".join(f"Supporter: Tell me more.\nAnna: {x}\n" for x in said)
    prompt = f"A chat on an emotional-support website.\n\n{chat}Supporter: How does that feel?\nAnna:"
    backend = LocalBackend(model_name=MODEL)
    backend.load()
    # untimed: the prompt read once (later calls reuse it) and the ban's one-time vocabulary decoding
    backend.complete_sync(ChatRequest.text(prompt, max_tokens=2, seed=0, avoid_copying=(*said,)))
    ms: dict[str, list[float]] = {"ban": [], "no ban": []}
    for r in range(rounds):
        for kind in (["ban", "no ban"] if r % 2 == 0 else ["no ban", "ban"]):
            avoid = (*said, "How does that feel?") if kind == "ban" else ()
            wall, tokens = 0.0, 0
            for i in range(lines):
                req = ChatRequest.text(prompt, max_tokens=40, seed=i, temperature=0.8, avoid_copying=avoid)
                t0 = time.perf_counter()
                tokens += backend.complete_sync(req).usage.completion_tokens
                wall += time.perf_counter() - t0
            ms[kind].append(1000 * wall / tokens)
            print(f"  {kind}: {ms[kind][-1]:.1f} ms a token over {tokens} tokens", file=sys.stderr, flush=True)
    backend.unload()
    for kind in ms:
        row(f"{MODEL}: ms per generated token, {kind}", f"{statistics.median(ms[kind]):.1f}", "",
            f"rounds: {', '.join(f'{x:.1f}' for x in ms[kind])}")
    ratio = statistics.median(ms["ban"]) / statistics.median(ms["no ban"])
    row(f"**{MODEL}: copy ban / no ban, ms per token**", f"{ratio:.3f}", "")


def main(argv: list[str]) -> None:
    import os

    from socialsim.llm.models import models_dir

    os.environ.setdefault("SOCIALSIM_MODELS_DIR", str(models_dir()))  # the assembled model, built once
    os.environ.setdefault("SOCIALSIM_CACHE_DIR", tempfile.mkdtemp())
    for name in argv or ["prefill", "simulate"]:
        {"prefill": bench_prefill, "simulate": bench_simulate, "nocopy": bench_nocopy}[name]()
    print_table()


if __name__ == "__main__":
    main(sys.argv[1:])
