"""Synthetic corpora for the `socialsim ui` tests and benchmarks: dialogues with every field the pages
show, small run stores through `RunStore.commit`, a large one written with executemany in the
store's own schema (seconds for 100k dialogues), and `measure` (list-page timings and peak RSS, run
in a fresh process: ``python -m socialsim.testing.ui_data measure RUN``)."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from socialsim.schema import Dialogue, Persona, Strategy, SupporterThought, Turn, Usage

PROBLEMS = ["academic pressure", "job crisis", "breakup with partner", "grief", "loneliness"]
EMOTIONS = ["anxiety", "sadness", "fear", "anger", "shame"]
STRATS = list(Strategy)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def make_dialogue(i: int, *, persona_id: str | None = None, problem: str | None = None, text_extra: str = "",
                  risk: str = "none", status: str = "ok") -> Dialogue:  # fmt: skip
    problem = problem or PROBLEMS[i % len(PROBLEMS)]
    emotion = EMOTIONS[i % len(EMOTIONS)]
    pid = persona_id or f"p-{i % 7}"
    persona = Persona.model_validate(_persona(pid, problem, emotion))
    s1, s2 = STRATS[i % 8], STRATS[(i + 3) % 8]
    turns = [
        Turn(speaker="seeker", text=f"I feel stuck with {problem} {text_extra}".strip(), disclosure_layer=0, risk=risk),
        Turn(
            speaker="supporter",
            text=f"That sounds hard. Tell me more (dialogue {i}).",
            strategy=s1,
            thought=SupporterThought(
                emotion=emotion, intensity=3, cause=f"cause {i}", need="to be heard", strategy=s1, rationale="open up"
            ),  # fmt: skip
            usage=Usage(prompt_tokens=100 + i % 10, completion_tokens=20),
            latency_s=0.5,
            calls=2,
        ),
        Turn(
            speaker="seeker", text=f"My exams start soon and I failed one, number {i}.", disclosure_layer=1, risk="none"
        ),
        Turn(
            speaker="supporter",
            text="You have carried a lot.",
            strategy=s2,
            usage=Usage(prompt_tokens=150, completion_tokens=25),
        ),  # fmt: skip
    ]
    if risk != "none":
        turns[1] = turns[1].model_copy(update={"risk_reason": f"protocol:{risk}", "thought": None, "strategy": None})
    return Dialogue(
        id=f"d{i:06d}", persona_id=pid, persona=persona, backend="local", model="smollm2", seed=i, turns=turns,
        end_reason=("seeker_goodbye", "turn_cap")[i % 2] if status == "ok" else "failure", status=status,
        failure_reason=None if status == "ok" else "thought unparseable",
    )  # fmt: skip


def write_run(root: Path, dialogues: list[Dialogue]) -> Path:
    """A real run folder through `RunStore` (manifest + run.sqlite, one commit per dialogue)."""
    from socialsim.simulate.store import RunStore

    store = RunStore.create(root, {"test": True}, "cafe")
    for i, d in enumerate(dialogues):
        store.commit(i, d)
    store.close()
    return root


def synthetic_store(root: Path, n: int, variants: int = 40) -> Path:
    """A run store with `n` dialogues, written with executemany in RunStore's own schema (seconds for 100k)."""
    from socialsim.simulate.store import RunStore

    store = RunStore.create(root, {"synthetic": n}, "beef")
    base = [make_dialogue(v, risk="suicide" if v == 5 else "none", status="failed" if v == 7 else "ok")
            for v in range(variants)]  # fmt: skip
    blobs = [d.model_dump_json() for d in base]
    rows = []
    for i in range(n):
        v = i % variants
        d = base[v]
        old = f'"id":"{d.id}"'
        blob = blobs[v].replace(old, f'"id":"s{i:07d}"', 1)
        if i % 1000 == 999:
            blob = blob.replace("I feel stuck with", "I feel stuck with zebracorn", 1)
        u = d.usage
        rows.append((i, f"s{i:07d}", d.persona_id, d.status, len(d.turns), u.prompt_tokens, u.completion_tokens,
                     blob, d.created_at))  # fmt: skip
        if len(rows) == 10_000:
            _insert(store.db, rows)
            rows = []
    if rows:
        _insert(store.db, rows)
    store.close()
    return root


def _insert(db: Any, rows: list[tuple[Any, ...]]) -> None:
    db.execute("BEGIN")  # the store's connection is in autocommit mode: one transaction per batch
    db.executemany("INSERT INTO dialogues VALUES (?,?,?,?,?,?,?,?,?)", rows)
    db.execute("COMMIT")


def _persona(pid: str, problem: str, emotion: str) -> dict[str, Any]:
    return {
        "id": pid, "name": "Maya", "age": 19, "gender": "woman", "occupation": "student",
        "problem_type": problem, "emotion_type": emotion, "initial_intensity": 4,
        "situation": "I have finals next week and I can't focus at all.",
        "disclosure": {
            "surface": "I'm just really stressed about school.",
            "context": "My finals start Monday and I failed a midterm, so I need an A to keep my scholarship.",
            "core": "I'm scared my parents will see I'm not as smart as they think.",
        },
    }  # fmt: skip


def measure(root: str | Path, repeats: int = 5) -> dict[str, Any]:
    """Open (build) the index of run `root`, then time list pages through the ASGI app: first page,
    a deep page, a filtered page, a text search and a dialogue page (median of `repeats`, ms), and
    report this process's peak RSS (MiB)."""
    from fastapi.testclient import TestClient

    from socialsim.ui.app import create_app
    from socialsim.ui.index import CorpusIndex

    t0 = time.perf_counter()
    index = CorpusIndex.open(root)
    build_s = time.perf_counter() - t0
    n = len(index)
    client = TestClient(create_app([index]))
    pages = max(1, -(-n // 50))
    urls = {
        "first page": "/c/0",
        "deep page": f"/c/0?page={pages - 1}",
        "filtered (problem + strategy + status)": "/c/0?problem=grief&strategy=Question&status=ok",
        "text search": "/c/0?q=zebracorn",
        "dialogue page": f"/c/0/d/{max(1, n - 5)}",
    }
    out: dict[str, Any] = {"dialogues": n, "index_build_s": round(build_s, 2), "ms": {}, "rows": {}}
    for name, url in urls.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            r = client.get(url)
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (url, r.status_code)
        out["ms"][name] = round(sorted(times)[len(times) // 2], 1)
        out["rows"][name] = r.text.count("/c/0/d/")
    index.close()
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


if __name__ == "__main__":  # pragma: no cover - run by the tests and bench in a fresh process
    if sys.argv[1:2] == ["measure"]:
        print(json.dumps(measure(sys.argv[2])))
    elif sys.argv[1:2] == ["store"]:
        synthetic_store(Path(sys.argv[2]), int(sys.argv[3]))
