"""A SQLite index over one corpus, kept in the cache folder, so the UI can filter and page through
100k dialogues without holding them in memory.

One row per dialogue with what the list filters on (problem and emotion type, end reason, status,
the strategies used as a bit mask, the safety labels) plus a full-text index (SQLite FTS5) of its
turns. Sources:

- a run folder with its SQLite store: read read-only (no run lock needed, the run may go on); the
  index is brought up to date with dialogues committed since, and dialogues are read from the store;
- anything else the corpus readers know (`socialsim.evaluate.readers.load_corpus`: a run's
  ``dialogues.jsonl``, our JSONL, ESConv JSON or TSV, and every format added there): read once when
  the index is built (or the file changed), each dialogue kept in the index as JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.corpus.esconv import DialogueMeta
from socialsim.errors import UserError, validation_message
from socialsim.evaluate.readers import load_corpus, meta_from_persona
from socialsim.schema import DISCLOSURE_LAYERS, Dialogue, Strategy
from socialsim.simulate.store import DB, MANIFEST, open_readonly

INDEX_VERSION = 2
PAGE_SIZE = 50
STRATEGIES: tuple[Strategy, ...] = tuple(Strategy)
STRATEGY_BIT = {s: 1 << i for i, s in enumerate(STRATEGIES)}
RISK_FILTERS = {"flagged": "risk = 1", "clear": "risk = 0", "unchecked": "risk IS NULL"}
REFRESH_EVERY_S = 2.0
_BATCH = 2000

# `d` holds only what the filters read (narrow rows: a filtered count or a deep page scans little);
# `v` what the list and dialogue pages show.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS d (
  row INTEGER PRIMARY KEY, persona_id TEXT, problem TEXT, emotion TEXT, end_reason TEXT, status TEXT,
  strategies INTEGER NOT NULL, risk INTEGER);
CREATE TABLE IF NOT EXISTS v (
  row INTEGER PRIMARY KEY, ref INTEGER NOT NULL UNIQUE, did TEXT NOT NULL, risk_labels TEXT,
  turns INTEGER NOT NULL, tokens INTEGER NOT NULL, max_layer INTEGER, preview TEXT NOT NULL, doc TEXT);
CREATE INDEX IF NOT EXISTS d_problem ON d(problem);
CREATE INDEX IF NOT EXISTS d_emotion ON d(emotion);
CREATE INDEX IF NOT EXISTS d_end ON d(end_reason);
CREATE INDEX IF NOT EXISTS d_status ON d(status);
CREATE INDEX IF NOT EXISTS d_risk ON d(risk);
CREATE VIRTUAL TABLE IF NOT EXISTS t USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
"""


def index_dir() -> Path:
    """``$SOCIALSIM_CACHE_DIR/ui-index`` (default ``~/.cache/socialsim/ui-index``)."""
    from socialsim.io import cache_dir

    return cache_dir() / "ui-index"


def strategy_mask(labels: Iterable[str]) -> int:
    """Bit mask of ESConv strategy labels (exact labels of `Strategy`)."""
    mask = 0
    for label in labels:
        mask |= STRATEGY_BIT[Strategy(label)]
    return mask


def safety_labels(d: Dialogue) -> tuple[int | None, list[str]]:
    """(1 flagged / 0 checked and clear / None never checked, the risk labels found)."""
    labels: list[str] = []
    checked = False
    for t in d.turns:
        if t.speaker == "seeker" and t.risk is not None:
            checked = True
            if t.risk != "none" and t.risk not in labels:
                labels.append(t.risk)
        elif t.speaker == "supporter" and t.risk_reason and t.risk_reason.startswith("protocol:"):
            label = t.risk_reason.split(":", 1)[1]
            if label not in labels:
                labels.append(label)
    if labels:
        return 1, labels
    return (0 if checked else None), labels


def _record(row: int, ref: int, d: Dialogue, m: DialogueMeta, doc: str | None) -> tuple[tuple, tuple, str]:
    mask = 0
    for t in d.turns:
        s = t.strategy or (t.thought.strategy if t.thought else None)
        if t.speaker == "supporter" and s is not None:
            mask |= STRATEGY_BIT[s]
    risk, labels = safety_labels(d)
    u = d.usage
    first = next((t.text for t in d.turns if t.speaker == "seeker"), d.turns[0].text if d.turns else "")
    layers = [t.disclosure_layer for t in d.turns if t.disclosure_layer is not None]
    filters = (row, d.persona_id, m.problem_type, m.emotion_type, d.end_reason, d.status, mask, risk)
    shown = (
        row, ref, d.id, ",".join(labels) or None, len(d.turns), u.prompt_tokens + u.completion_tokens,
        max(layers) if layers else None, first[:200], doc,
    )  # fmt: skip
    body = "\n".join([m.situation or "", *(t.text for t in d.turns)])
    return filters, shown, body


@dataclass
class Filters:
    """What the list page filters on; empty strings mean 'any'."""

    problem: str = ""
    emotion: str = ""
    end_reason: str = ""
    status: str = ""
    strategy: str = ""
    risk: str = ""
    q: str = ""

    def sql(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for col in ("problem", "emotion", "end_reason", "status"):
            value = getattr(self, col)
            if value:
                clauses.append(f"{col} = ?")
                args.append(value)
        if self.strategy:
            bit = STRATEGY_BIT.get(Strategy(self.strategy)) if self.strategy in set(STRATEGIES) else None
            clauses.append("strategies & ? != 0" if bit else "0")
            args += [bit] if bit else []
        if self.risk:
            clauses.append(RISK_FILTERS.get(self.risk, "0"))
        words = [w.replace('"', '""') for w in self.q.split()][:20]
        if words:
            clauses.append("row IN (SELECT rowid FROM t WHERE t MATCH ?)")
            args.append(" ".join(f'"{w}"' for w in words))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    seconds: float


class CorpusIndex:
    """The index of one source; thread-safe (one connection, one lock)."""

    def __init__(self, source: Path, con: sqlite3.Connection, fmt: str, store: sqlite3.Connection | None) -> None:
        self.source = source
        self.name = source.name
        self.format = fmt
        self.con = con
        self.store = store
        self.lock = threading.Lock()
        self._checked = 0.0
        self._facets: dict[str, list[tuple[str, int]]] | None = None
        #: called as ``progress(indexed, total)`` while dialogues are being indexed
        self.progress: Callable[[int, int], None] | None = None

    # -- opening and building --------------------------------------------------------------------
    @classmethod
    def open(
        cls, source: str | Path, cache: Path | None = None, progress: Callable[[int, int], None] | None = None
    ) -> CorpusIndex:
        """Open (building or updating as needed) the index of a run folder or corpus file;
        ``progress(indexed, total)`` is called while it indexes. Raises `UserError` for a missing or
        unreadable source."""
        path = Path(source).expanduser().resolve()
        is_store = path.is_dir() and (path / MANIFEST).is_file() and (path / DB).is_file()
        store = open_readonly(path) if is_store else None
        folder = cache or index_dir()
        folder.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(str(path).encode()).hexdigest()[:20]
        ipath = folder / f"{key}.sqlite"
        signature = _signature(path, store)
        con = _connect(ipath)
        old = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if old.get("signature") != signature or old.get("version") != str(INDEX_VERSION) or not old.get("complete"):
            con.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(ipath) + suffix).unlink(missing_ok=True)
            con = _connect(ipath)
            con.executemany(
                "INSERT INTO meta VALUES (?,?)",
                [("source", str(path)), ("signature", signature), ("version", str(INDEX_VERSION))],
            )
        index = cls(path, con, "run" if store is not None else "", store)
        index.progress = progress
        try:
            if store is not None:
                index._update_from_store()
            elif not old.get("complete") or old.get("signature") != signature:
                index._build_from_corpus()
        except BaseException:
            index.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(ipath) + suffix).unlink(missing_ok=True)
            raise
        index.format = index.format or _meta(con, "format", "")
        return index

    def _insert(self, recs: list[tuple[tuple, tuple, str]]) -> None:
        with self.con:
            self.con.executemany("INSERT INTO d VALUES (?,?,?,?,?,?,?,?)", [r[0] for r in recs])
            self.con.executemany("INSERT INTO v VALUES (?,?,?,?,?,?,?,?,?)", [r[1] for r in recs])
            self.con.executemany("INSERT INTO t(rowid, body) VALUES (?,?)", [(r[0][0], r[2]) for r in recs])

    def _add(self, items: Iterable[tuple[int, Dialogue, DialogueMeta, str | None]], total: int) -> int:
        row = (self.con.execute("SELECT max(row) FROM d").fetchone()[0] or 0) + 1
        recs: list[tuple[tuple, tuple, str]] = []
        n = 0
        for ref, d, m, doc in items:
            recs.append(_record(row, ref, d, m, doc))
            row += 1
            n += 1
            if len(recs) >= _BATCH:
                self._insert(recs)
                recs = []
                if self.progress is not None:
                    self.progress(n, total)
        if recs:
            self._insert(recs)
        if self.progress is not None and n % _BATCH:  # (a multiple of _BATCH was reported in the loop)
            self.progress(n, total)
        self._facets = None
        return n

    def _update_from_store(self) -> int:
        """Index the store's dialogues not indexed yet (dialogues are only ever added to a store)."""
        assert self.store is not None
        n_store = self.store.execute("SELECT count(*) FROM dialogues").fetchone()[0]
        n_have = self.con.execute("SELECT count(*) FROM d").fetchone()[0]
        if n_store != n_have:
            have = {r[0] for r in self.con.execute("SELECT ref FROM v")}
            missing = [r[0] for r in self.store.execute("SELECT idx FROM dialogues ORDER BY idx") if r[0] not in have]
            del have

            def rows() -> Iterable[tuple[int, Dialogue, DialogueMeta, str | None]]:
                for i in range(0, len(missing), 500):
                    chunk = missing[i : i + 500]
                    q = f"SELECT idx, json FROM dialogues WHERE idx IN ({','.join('?' * len(chunk))}) ORDER BY idx"
                    for idx, blob in self.store.execute(q, chunk).fetchall():  # type: ignore[union-attr]
                        try:
                            d = Dialogue.model_validate_json(blob)
                        except ValidationError as e:
                            where = f"{self.source / DB} (dialogue idx {idx})"
                            raise UserError(validation_message(where, None, e)) from None
                        yield idx, d, meta_from_persona(d, f"{self.source}#{idx}"), None

            added = self._add(rows(), len(missing))
        else:
            added = 0
        with self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('format', 'run')")
        return added

    def _build_from_corpus(self) -> None:
        corpus = load_corpus(self.source)

        def rows() -> Iterable[tuple[int, Dialogue, DialogueMeta, str | None]]:
            for i, (d, m) in enumerate(zip(corpus.dialogues, corpus.meta, strict=True)):
                doc = json.dumps({"dialogue": d.model_dump(mode="json"), "meta": dataclasses.asdict(m)})
                yield i, d, m, doc

        self._add(rows(), len(corpus.dialogues))
        with self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (corpus.format,))
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")
        self.format = corpus.format

    def refresh(self) -> None:
        """Pick up dialogues a running simulation committed since (at most every few seconds)."""
        if self.store is None or time.monotonic() - self._checked < REFRESH_EVERY_S:
            return
        with self.lock:
            self._update_from_store()
            self._checked = time.monotonic()

    # -- reading ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self.lock:
            return int(self.con.execute("SELECT count(*) FROM d").fetchone()[0])

    def facets(self) -> dict[str, list[tuple[str, int]]]:
        """Values (with counts) of each filterable column, for the filter menus."""
        with self.lock:
            if self._facets is None:
                out: dict[str, list[tuple[str, int]]] = {}
                for col in ("problem", "emotion", "end_reason", "status"):
                    q = f"SELECT {col}, count(*) FROM d WHERE {col} IS NOT NULL GROUP BY {col} ORDER BY {col}"
                    out[col] = [(str(v), int(n)) for v, n in self.con.execute(q)]
                self._facets = out
            return self._facets

    def page(self, f: Filters, page: int = 1, size: int = PAGE_SIZE) -> Page:
        t0 = time.perf_counter()
        where, args = f.sql()
        with self.lock:
            total = int(self.con.execute(f"SELECT count(*) FROM d{where}", args).fetchone()[0])
            pages = max(1, -(-total // size))
            page = min(max(1, page), pages)
            q = (  # page through the narrow table, then join the 50 rows' display columns
                "SELECT row, did, persona_id, problem, emotion, end_reason, status, strategies, risk, risk_labels,"
                f" turns, tokens, max_layer, preview FROM (SELECT row FROM d{where} ORDER BY row LIMIT ? OFFSET ?)"
                " JOIN d USING (row) JOIN v USING (row) ORDER BY row"
            )
            cur = self.con.execute(q, [*args, size, (page - 1) * size])
            names = [c[0] for c in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            r["strategy_list"] = [s.value for s in STRATEGIES if r["strategies"] & STRATEGY_BIT[s]]
            r["layer_name"] = DISCLOSURE_LAYERS[r["max_layer"]] if r["max_layer"] is not None else None
        return Page(rows=rows, total=total, page=page, pages=pages, seconds=time.perf_counter() - t0)

    def rows_where(self, columns: str, where: str = "", args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Plain column access for study pairing (e.g. ``"row, persona_id, problem"``)."""
        with self.lock:
            return self.con.execute(f"SELECT {columns} FROM d {where}", list(args)).fetchall()

    def get(self, row: int) -> tuple[Dialogue, DialogueMeta] | None:
        with self.lock:
            hit = self.con.execute("SELECT ref, doc FROM v WHERE row = ?", (row,)).fetchone()
            if hit is None:
                return None
            ref, doc = hit
            if doc is None:
                assert self.store is not None
                (blob,) = self.store.execute("SELECT json FROM dialogues WHERE idx = ?", (ref,)).fetchone()
        if doc is None:
            d = Dialogue.model_validate_json(blob)
            return d, meta_from_persona(d, f"{self.source}#{ref}")
        obj = json.loads(doc)
        return Dialogue.model_validate(obj["dialogue"]), DialogueMeta(**obj["meta"])

    def close(self) -> None:
        self.con.close()
        if self.store is not None:
            self.store.close()


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(_SCHEMA)
    return con


def _meta(con: sqlite3.Connection, key: str, default: str) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else default


def _signature(path: Path, store: sqlite3.Connection | None) -> str:
    """What invalidates an index: the run's config hash, or the file's size and modification time."""
    if store is not None:
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            return f"run:{manifest.get('config_hash')}:{manifest.get('created')}"
        except (OSError, ValueError):
            return "run:?"
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"file:{st.st_size}:{st.st_mtime_ns}"
