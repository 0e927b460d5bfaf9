"""The run store: a directory with ``manifest.json`` (full config and its hash) and ``run.sqlite``
(WAL) holding every finished dialogue, each committed atomically. Exports are written from here."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socialsim.corpus.esconv import write_esconv
from socialsim.errors import UserError
from socialsim.io import atomic_write_text
from socialsim.schema import Dialogue, write_jsonl

MANIFEST = "manifest.json"
DB = "run.sqlite"
FORMAT_VERSION = 1


class RunStore:
    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.db = sqlite3.connect(str(root / DB), timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the process being killed (kill -9 included) at once; only a
        # power cut may lose the last few, which a resume simulates again. FULL's fsync per dialogue
        # stalled the event loop for ~5 ms each.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS dialogues (idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
            " persona_id TEXT NOT NULL, status TEXT NOT NULL, turns INTEGER NOT NULL,"
            " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
            " json TEXT NOT NULL, created TEXT NOT NULL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | Path,
        config: dict[str, Any],
        config_hash: str,
        *,
        shard: str | None = None,
        model: dict[str, Any] | None = None,
    ) -> RunStore:
        """A new run folder; ``model`` (name, sha256 of the model file when known) goes into the manifest."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise UserError(f"{root}: exists and is not a directory; choose another --out")
        if (root / MANIFEST).exists() or (root / DB).exists():
            raise UserError(f"{root}: already holds a run; continue it with --resume {root} or choose a new --out")
        root.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": "socialsim-run",
            "version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config_hash": config_hash,
            "config": config,
        }
        if shard is not None:  # this run simulates only shard K/N of the plan (see engine.plan_indices)
            manifest["shard"] = shard
        if model is not None:
            manifest["model"] = model
        store = cls(root, manifest)
        atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        return store

    @classmethod
    def open(cls, root: str | Path) -> RunStore:
        root = Path(root)
        mpath = root / MANIFEST
        if not root.is_dir():
            raise UserError(f"{root}: no such run directory")
        if not mpath.is_file():
            raise UserError(f"{root}: not a socialsim run (no {MANIFEST}); give the --out folder of a run")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            line = getattr(e, "lineno", "?")
            raise UserError(
                f"{mpath}:{line}: corrupt manifest ({e.__class__.__name__}); the run cannot be resumed"
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != "socialsim-run":
            raise UserError(f"{mpath}: field 'format': not a socialsim run manifest")
        for key in ("config", "config_hash", "version"):
            if key not in manifest:
                raise UserError(f"{mpath}: field '{key}': missing from the manifest; the run cannot be resumed")
        if manifest["version"] != FORMAT_VERSION:
            raise UserError(f"{mpath}: field 'version': run format {manifest['version']} is not supported")
        if not (root / DB).is_file():
            raise UserError(f"{root}: run database {DB} is missing; the run cannot be resumed")
        try:
            store = cls(root, manifest)
            store.db.execute("SELECT count(*) FROM dialogues").fetchone()
        except sqlite3.DatabaseError as e:
            raise UserError(f"{root / DB}: not a usable run database ({e})") from None
        return store

    def record_environment(self, env: dict[str, Any]) -> None:
        """Keep what this session runs on (software versions, the server's model entry) in the
        manifest: ``environment`` is the latest session's, ``environment_first`` the first one's."""
        self.manifest.setdefault("environment_first", env)
        self.manifest["environment"] = env
        atomic_write_text(self.root / MANIFEST, json.dumps(self.manifest, indent=2, ensure_ascii=False) + "\n")

    # -- dialogues ----------------------------------------------------------------------------
    def done_indices(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT idx FROM dialogues")}

    def commit(self, idx: int, d: Dialogue) -> None:
        """Insert one finished dialogue in its own transaction (all or nothing)."""
        u = d.usage
        self.db.execute(
            "INSERT INTO dialogues VALUES (?,?,?,?,?,?,?,?,?)",
            (
                idx,
                d.id,
                d.persona_id,
                d.status,
                len(d.turns),
                u.prompt_tokens,
                u.completion_tokens,
                d.model_dump_json(),
                d.created_at,
            ),
        )

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Every stored dialogue as its raw row (idx first), in index order: for copying between stores."""
        yield from self.db.execute("SELECT * FROM dialogues ORDER BY idx")

    def insert_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert raw rows from `rows` of another store of the same config, in one transaction."""
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO dialogues VALUES (?,?,?,?,?,?,?,?,?)", rows)
        self.db.execute("COMMIT")

    def iter_dialogues(self) -> Iterator[Dialogue]:
        for (blob,) in self.db.execute("SELECT json FROM dialogues ORDER BY idx"):
            yield Dialogue.model_validate_json(blob)

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, count(*), coalesce(sum(turns),0) FROM dialogues GROUP BY status")
        out = {"ok": 0, "failed": 0, "turns": 0}
        for status, n, turns in rows:
            out[status] = n
            out["turns"] += turns
        return out

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def integrity_check(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- exports ------------------------------------------------------------------------------
    def export(self) -> dict[str, Path]:
        """Write ``dialogues.jsonl`` and ``esconv.json`` from the store, atomically."""
        jsonl = self.root / "dialogues.jsonl"
        esconv = self.root / "esconv.json"
        write_jsonl(self.iter_dialogues(), jsonl)
        write_esconv(self.iter_dialogues(), esconv)
        return {"jsonl": jsonl, "esconv": esconv}

    def close(self) -> None:
        self.db.close()


def open_readonly(root: str | Path) -> sqlite3.Connection:
    """A run's database opened read-only: no schema change, no write, no run lock needed (for readers
    such as ``socialsim ui`` that look at a run, possibly while it goes on). Raises `UserError`."""
    path = Path(root) / DB
    if not path.is_file():
        raise UserError(f"{Path(root)}: run database {DB} is missing")
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=60, check_same_thread=False)
        con.execute("SELECT count(*) FROM dialogues").fetchone()
    except sqlite3.Error as e:
        raise UserError(f"{path}: not a usable run database ({e})") from None
    return con
