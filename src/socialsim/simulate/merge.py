"""`merge_runs`: several runs of one config (e.g. the shards of a job array) into one run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.simulate.engine import write_summary
from socialsim.simulate.run import RunLock
from socialsim.simulate.store import MANIFEST, RunStore


@dataclass
class MergeResult:
    root: Path
    dialogues: int
    duplicates: int
    missing: int
    exports: dict[str, Path]
    summary: dict[str, Any]


def merge_runs(sources: list[str | Path], out: str | Path) -> MergeResult:
    """Copy every dialogue of ``sources`` into a new run ``out``. All sources must share one config
    (the same config hash); a dialogue index present in several sources is kept once (the plan is
    deterministic, so they are the same dialogue). The merged run resumes like any run: its missing
    indices, if any, are simulated by ``simulate --resume``. Sources are only read."""
    if not sources:
        raise UserError("give the run folders to merge, e.g. socialsim merge runs/shard-1 runs/shard-2 --out runs/all")
    out = Path(out)
    if (out / MANIFEST).exists() or (out.exists() and not out.is_dir()):
        raise UserError(f"{out}: already holds a run or a file; choose a new --out")
    stores = [RunStore.open(s) for s in sources]
    try:
        first = stores[0]
        for s in stores[1:]:
            if s.manifest["config_hash"] != first.manifest["config_hash"]:
                raise UserError(
                    f"{s.root}: config {s.manifest['config_hash']} differs from {first.root}'s "
                    f"{first.manifest['config_hash']}; only runs of one config (e.g. shards) can be merged"
                )
        out.mkdir(parents=True, exist_ok=True)
        with RunLock.acquire(out):
            merged = RunStore.create(out, first.manifest["config"], first.manifest["config_hash"])
            try:
                seen: set[int] = set()
                duplicates = 0
                sessions: list[dict[str, Any]] = []
                for s in stores:
                    rows = []
                    for row in s.rows():
                        if row[0] in seen:
                            duplicates += 1
                            continue
                        seen.add(row[0])
                        rows.append(row)
                    merged.insert_rows(rows)
                    sessions.extend(s.get_meta("sessions", []))
                n = int(first.manifest["config"]["n"])
                summary = write_summary(merged, n, sessions)
                exports = merged.export()
            finally:
                merged.close()
    finally:
        for s in stores:
            s.close()
    return MergeResult(out, len(seen), duplicates, n - len(seen), exports, summary)
