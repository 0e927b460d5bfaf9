"""Blind pairwise studies, each in one SQLite file.

An item is two conversations side by side: two dialogues of corpora A and B matched by persona or
problem type, or two chatbots' replies to the same ESConv context. Which side shows A is drawn per
item (balanced: half the items show A on the left); annotators see only the turns' text, never a
system's name, model, strategy or thought. Each annotator answers every item, in an order of their
own, choosing left / tie / right per dimension, with an optional comment. Every answer is one
transaction keyed by (annotator, item), so a closed browser loses nothing and a second tab cannot
answer the same item twice. Tokens are stored only as SHA-256 hashes and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import sqlite3
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import atomic_path

FORMAT = "socialsim-study"
#: ESConv's human-evaluation dimensions, with the question each one asks.
DIMENSION_QUESTIONS: dict[str, str] = {
    "fluency": "Whose replies are more fluent and easier to understand?",
    "identification": "Who explored the seeker's situation better to find out the problem?",
    "comforting": "Who was more skilful at comforting the seeker?",
    "suggestion": "Who gave more helpful suggestions for the seeker's problem?",
    "overall": "Overall, whose emotional support do you prefer?",
}
DEFAULT_DIMENSIONS: tuple[str, ...] = tuple(DIMENSION_QUESTIONS)
CHOICES = ("left", "tie", "right")
MATCHES = ("auto", "persona", "problem", "context")
MAX_COMMENT = 2000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, key TEXT NOT NULL, context TEXT NOT NULL, a TEXT NOT NULL,
  b TEXT NOT NULL, a_ref TEXT NOT NULL, b_ref TEXT NOT NULL, left_is_a INTEGER NOT NULL);
CREATE TABLE annotators (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL,
  created TEXT NOT NULL);
CREATE TABLE answers (annotator_id INTEGER NOT NULL REFERENCES annotators(id),
  item_id INTEGER NOT NULL REFERENCES items(id), choices TEXT NOT NULL, comment TEXT NOT NULL,
  created TEXT NOT NULL, PRIMARY KEY (annotator_id, item_id));
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Annotator:
    id: int
    name: str
    token_hash: str


@dataclass
class Item:
    id: int
    key: str
    context: list[dict[str, Any]]
    left: list[dict[str, Any]]
    right: list[dict[str, Any]]
    left_is_a: bool


@dataclass
class Created:
    path: Path
    items: int
    match: str
    admin_token: str
    tokens: dict[str, str]


class Study:
    """An open study file (thread-safe: one connection, one lock, explicit transactions)."""

    def __init__(self, path: Path, con: sqlite3.Connection) -> None:
        self.path = path
        self.con = con
        self.lock = threading.Lock()
        self.meta: dict[str, Any] = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
        self.dimensions: list[str] = list(self.meta["dimensions"])
        self.seed = int(self.meta.get("seed", 0))
        self._secret = str(self.meta["secret"]).encode()

    @classmethod
    def open(cls, path: str | Path) -> Study:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such study file; create one with `socialsim ui study create`")
        if path.stat().st_size == 0:  # SQLite would take an empty file for a new database and write to it
            raise UserError(f"{path}: empty file, not a socialsim study")
        try:
            con = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            fmt = con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.Error as e:
            raise UserError(f"{path}: not a socialsim study ({e})") from None
        if fmt is None or json.loads(fmt[0]) != FORMAT:
            con.close()
            raise UserError(f"{path}: field 'format': not a socialsim study file")
        return cls(path, con)

    def close(self) -> None:
        self.con.close()

    # -- tokens ---------------------------------------------------------------------------------
    def annotator(self, token: str) -> Annotator | None:
        """The annotator whose token this is; every stored hash is compared, in constant time."""
        given = hash_token(token)
        found = None
        with self.lock:
            rows = self.con.execute("SELECT id, name, token_hash FROM annotators ORDER BY id").fetchall()
        for aid, name, stored in rows:
            if hmac.compare_digest(given, stored):
                found = Annotator(aid, name, stored)
        return found

    def is_admin(self, token: str) -> bool:
        return hmac.compare_digest(hash_token(token), str(self.meta["admin_hash"]))

    def csrf_token(self, scope: str) -> str:
        """The hidden form field that proves a post comes from a page this server rendered for `scope`."""
        return hmac.new(self._secret, b"csrf:" + scope.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, scope: str, given: str) -> bool:
        return hmac.compare_digest(self.csrf_token(scope).encode(), given.encode("utf-8", "surrogatepass"))

    def add_annotator(self, name: str) -> str:
        """A new annotator; returns their token (shown once, stored only as a hash)."""
        name = name.strip()
        if not name or len(name) > 80:
            raise UserError(f"annotator name {name!r}: give 1-80 characters")
        token = new_token()
        with self.lock:
            try:
                self.con.execute(
                    "INSERT INTO annotators (name, token_hash, created) VALUES (?,?,?)",
                    (name, hash_token(token), _now()),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"annotator {name!r} already exists in {self.path}") from None
        return token

    # -- items and answers ------------------------------------------------------------------------
    def item_ids(self) -> list[int]:
        with self.lock:
            return [r[0] for r in self.con.execute("SELECT id FROM items ORDER BY id")]

    def order(self, annotator: Annotator) -> list[int]:
        """The annotator's own order of the items (fixed: derived from the study seed and their id)."""
        ids = self.item_ids()
        random.Random(f"{self.seed}:order:{annotator.id}").shuffle(ids)
        return ids

    def item(self, item_id: int) -> Item | None:
        with self.lock:
            r = self.con.execute(
                "SELECT id, key, context, a, b, left_is_a FROM items WHERE id = ?", (item_id,)
            ).fetchone()
        if r is None:
            return None
        a, b = json.loads(r[3]), json.loads(r[4])
        left_is_a = bool(r[5])
        return Item(r[0], r[1], json.loads(r[2]), a if left_is_a else b, b if left_is_a else a, left_is_a)

    def answers_of(self, annotator: Annotator) -> dict[int, dict[str, Any]]:
        with self.lock:
            rows = self.con.execute(
                "SELECT item_id, choices, comment, created FROM answers WHERE annotator_id = ?", (annotator.id,)
            ).fetchall()
        return {i: {"choices": json.loads(c), "comment": m, "created": t} for i, c, m, t in rows}

    def next_item(self, annotator: Annotator) -> tuple[Item | None, int, int]:
        """(the first unanswered item in the annotator's order or None, answered count, total)."""
        order = self.order(annotator)
        done = self.answers_of(annotator)
        nxt = next((i for i in order if i not in done), None)
        return (self.item(nxt) if nxt is not None else None), len(done), len(order)

    def record(self, annotator: Annotator, item_id: int, sides: dict[str, str], comment: str) -> bool:
        """Save one answer (choices as the annotator saw them: left / tie / right) in one transaction.
        Returns False when this annotator already answered the item (the first answer is kept).
        Raises `ValueError` for an unknown item, a missing or invalid choice, or a too long comment."""
        missing = [d for d in self.dimensions if sides.get(d) not in CHOICES]
        if missing:
            raise ValueError(f"choose left, tie or right for: {', '.join(missing)}")
        if len(comment) > MAX_COMMENT:
            raise ValueError(f"the comment is longer than {MAX_COMMENT} characters")
        with self.lock:
            row = self.con.execute("SELECT left_is_a FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise ValueError(f"no item {item_id} in this study")
            left_is_a = bool(row[0])
            unblind = {"left": "a" if left_is_a else "b", "right": "b" if left_is_a else "a", "tie": "tie"}
            choices = {d: unblind[sides[d]] for d in self.dimensions}
            try:
                self.con.execute("BEGIN IMMEDIATE")
                self.con.execute(
                    "INSERT INTO answers VALUES (?,?,?,?,?)",
                    (annotator.id, item_id, json.dumps(choices), comment.strip(), _now()),
                )
                self.con.execute("COMMIT")
            except sqlite3.IntegrityError:
                self.con.execute("ROLLBACK")
                return False
            except BaseException:
                if self.con.in_transaction:
                    self.con.execute("ROLLBACK")
                raise
        return True

    def all_answers(self) -> list[dict[str, Any]]:
        """Every answer, unblinded (``a`` / ``b`` / ``tie`` per dimension), with annotator and item."""
        with self.lock:
            rows = self.con.execute(
                "SELECT s.item_id, n.name, s.choices, s.comment, s.created, i.key, i.left_is_a, i.a_ref, i.b_ref"
                " FROM answers s JOIN annotators n ON n.id = s.annotator_id JOIN items i ON i.id = s.item_id"
                " ORDER BY s.item_id, n.name"
            ).fetchall()
        return [
            {"item": r[0], "annotator": r[1], "choices": json.loads(r[2]), "comment": r[3], "created": r[4],
             "key": r[5], "left": "a" if r[6] else "b", "a_ref": r[7], "b_ref": r[8]}
            for r in rows
        ]  # fmt: skip

    def annotators(self) -> list[tuple[int, str]]:
        with self.lock:
            return [(int(i), str(n)) for i, n in self.con.execute("SELECT id, name FROM annotators ORDER BY id")]


# -- creating a study ---------------------------------------------------------------------------


def _turns(turns: Any) -> list[dict[str, str]]:
    """What an annotator sees of a turn: who speaks and the text, nothing else."""
    return [{"speaker": t.speaker, "text": t.text} for t in turns]


def _pairs_from_corpora(a: Path, b: Path, n: int, match: str, rng: random.Random) -> tuple[str, list[tuple]]:
    from socialsim.ui.index import CorpusIndex

    ia, ib = CorpusIndex.open(a), CorpusIndex.open(b)
    try:
        ok = "WHERE status = 'ok'"
        rows_a = ia.rows_where("row, persona_id, problem", ok)
        rows_b = ib.rows_where("row, persona_id, problem", ok)

        def groups(rows: list[tuple], col: int) -> dict[str, list[int]]:
            g: dict[str, list[int]] = defaultdict(list)
            for r in rows:
                if r[col]:
                    g[str(r[col])].append(int(r[0]))
            return g

        if match == "auto":
            common = set(groups(rows_a, 1)) & set(groups(rows_b, 1))
            match = "persona" if common else "problem"
        col = 1 if match == "persona" else 2
        ga, gb = groups(rows_a, col), groups(rows_b, col)
        keys = sorted(set(ga) & set(gb))
        if not keys:
            hint = "try --match problem" if match == "persona" else "give corpora with problem types (TSV has none)"
            what = "persona" if match == "persona" else "problem type"
            raise UserError(f"--a {a} and --b {b}: no ok dialogues share a {what}; {hint}")
        for k in keys:
            rng.shuffle(ga[k])
            rng.shuffle(gb[k])
        rng.shuffle(keys)
        chosen: list[tuple[str, int, int]] = []
        while len(chosen) < n and keys:  # round robin over the shared keys: balanced personas / problems
            for k in list(keys):
                if len(chosen) == n:
                    break
                if not ga[k] or not gb[k]:
                    keys.remove(k)
                    continue
                chosen.append((k, ga[k].pop(), gb[k].pop()))
        pairs = []
        for k, ra, rb in chosen:
            da, db = ia.get(ra), ib.get(rb)
            assert da is not None and db is not None
            pairs.append(
                (k, [], _turns(da[0].turns), _turns(db[0].turns), f"{ia.name}:{da[0].id}", f"{ib.name}:{db[0].id}")
            )
        return match, pairs
    finally:
        ia.close()
        ib.close()


def _pairs_from_replies(a: Path, b: Path, contexts: Path | None, n: int, rng: random.Random) -> list[tuple]:
    """Two chatbots' replies (``chatbot-eval responses`` JSONL: ``line``, ``response``) to the same
    ESConv TSV context (``--contexts``)."""
    from socialsim.corpus.esconv_tsv import read_tsv_examples
    from socialsim.io import iter_jsonl

    if contexts is None:
        raise UserError("--match context: give --contexts, the ESConv TSV file both chatbots replied to")
    examples = {ex.line: ex for ex in read_tsv_examples(contexts)}

    def replies(path: Path, opt: str) -> dict[int, str]:
        out: dict[int, str] = {}
        if not path.is_file():
            raise UserError(f"{opt} {path}: no such file")
        try:
            for lineno, obj in iter_jsonl(path):
                if not isinstance(obj.get("line"), int) or not isinstance(obj.get("response"), str):
                    raise UserError(f"{path}:{lineno}: fields 'line' (number) and 'response' (text) are required")
                if obj["response"].strip():
                    out[obj["line"]] = obj["response"].strip()
        except ValueError as e:
            raise UserError(str(e)) from None
        return out

    ra, rb = replies(a, "--a"), replies(b, "--b")
    lines = sorted(set(ra) & set(rb) & set(examples))
    if not lines:
        raise UserError(f"--a {a} and --b {b}: no context line of {contexts} has a reply from both")
    rng.shuffle(lines)
    return [
        (f"line {ln}", _turns(examples[ln].context), [{"speaker": "supporter", "text": ra[ln]}],
         [{"speaker": "supporter", "text": rb[ln]}], f"{a.name}:{ln}", f"{b.name}:{ln}")
        for ln in sorted(lines[:n])
    ]  # fmt: skip


def create_study(
    a: str | Path,
    b: str | Path,
    out: str | Path,
    *,
    n: int = 50,
    dimensions: list[str] | None = None,
    annotators: list[str] | None = None,
    match: str = "auto",
    contexts: str | Path | None = None,
    seed: int = 0,
    name_a: str | None = None,
    name_b: str | None = None,
) -> Created:
    """Pair items from A and B, blind them and write the study file `out` (never overwritten).
    Returns the annotators' tokens and the admin token: they are shown once and stored only as hashes."""
    out, a, b = Path(out), Path(a), Path(b)
    if out.exists():
        raise UserError(
            f"--out {out}: already exists; choose a new study file (an existing study is never overwritten)"
        )
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if match not in MATCHES:
        raise UserError(f"--match {match!r}: expected one of {', '.join(MATCHES)}")
    dims = [d.strip().lower() for d in (dimensions or DEFAULT_DIMENSIONS) if d.strip()]
    bad = [d for d in dims if not d.replace("_", "").replace("-", "").isalnum() or len(d) > 40]
    if not dims or bad or len(set(dims)) != len(dims):
        raise UserError(f"--dimensions: give distinct names of letters, digits, - or _ (got {', '.join(dims)})")
    names = [x.strip() for x in (annotators or ["annotator-1"]) if x.strip()]
    if len(set(names)) != len(names):
        raise UserError("--annotator: names must be distinct")
    rng = random.Random(seed)
    if match == "context":
        pairs = _pairs_from_replies(a, b, Path(contexts) if contexts else None, n, rng)
    else:
        match, pairs = _pairs_from_corpora(a, b, n, match, rng)
    sides = [i < len(pairs) // 2 for i in range(len(pairs))] if len(pairs) > 1 else [rng.random() < 0.5]
    rng.shuffle(sides)
    admin = new_token()
    meta = {
        "format": FORMAT, "created": _now(), "a": name_a or a.name, "b": name_b or b.name, "a_path": str(a),
        "b_path": str(b), "match": match, "dimensions": dims, "seed": seed, "admin_hash": hash_token(admin),
        "secret": secrets.token_hex(32), "questions": {d: DIMENSION_QUESTIONS.get(d, "") for d in dims},
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        con = sqlite3.connect(str(tmp))
        try:
            con.executescript(_SCHEMA)
            with con:
                con.executemany("INSERT INTO meta VALUES (?,?)", [(k, json.dumps(v)) for k, v in meta.items()])
                con.executemany(
                    "INSERT INTO items (key, context, a, b, a_ref, b_ref, left_is_a) VALUES (?,?,?,?,?,?,?)",
                    [(k, json.dumps(c), json.dumps(x), json.dumps(y), ra, rb, int(s))
                     for (k, c, x, y, ra, rb), s in zip(pairs, sides, strict=True)],
                )  # fmt: skip
        finally:
            con.close()
    study = Study.open(out)
    try:
        tokens = {name: study.add_annotator(name) for name in names}
    finally:
        study.close()
    return Created(path=out, items=len(pairs), match=match, admin_token=admin, tokens=tokens)
