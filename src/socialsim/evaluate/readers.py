"""Load any corpus into `Dialogue`s: a run folder, our JSONL, ESConv JSON, or ESConv's TSV format.

External corpora have no persona; what ESConv tells about a dialogue (problem, emotion, situation,
survey scores) is kept beside it in `DialogueMeta`, so `socialsim.schema` stays as it is.

Formats, told apart by content, not by file name:

- a folder with ``manifest.json``: a socialsim run, read from its SQLite store (``run.sqlite``),
  or from ``dialogues.jsonl`` when the store is absent;
- a file starting with ``{``: our JSONL, one `Dialogue` per line;
- a file starting with ``[``: ESConv's JSON list (``seeker``/``supporter`` or the older
  ``speaker``/``listener`` labels; older strategy names are mapped onto the eight current ones),
  or SocialSim's SSConv list (objects with a ``Dialogue`` list; see `socialsim.corpus.ssconv`).
  Our own ``esconv.json`` exports are read back with their ``socialsim`` extras (thoughts,
  disclosure layers, status);
- anything else: ESConv's TSV training format (``devWithStrategy_short.tsv``): one example a
  line, turns joined by `` EOS ``, each ``<weight> <speaker 0/1> <index> <text>``; the last turn
  is the target supporter response. Its examples are also stitched back into dialogues by the
  utterance index, so the TSV can be measured like any other corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.corpus.esconv import DialogueMeta, read_esconv
from socialsim.corpus.esconv_tsv import ResponseExample, read_tsv_dialogues
from socialsim.errors import UserError, validation_message
from socialsim.io import parse_json
from socialsim.schema import Dialogue


@dataclass
class Corpus:
    """Dialogues of one source plus per-dialogue metadata (same order, same length)."""

    name: str
    path: Path
    format: str  # "run", "jsonl", "esconv-json", "ssconv", "esconv-tsv"
    dialogues: list[Dialogue]
    meta: list[DialogueMeta]
    examples: list[ResponseExample] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.meta) != len(self.dialogues):
            raise ValueError("Corpus.meta must hold one entry per dialogue")

    def __len__(self) -> int:
        return len(self.dialogues)


def meta_from_persona(d: Dialogue, source: str = "") -> DialogueMeta:
    p = d.persona
    if p is None:
        return DialogueMeta(source=source)
    return DialogueMeta(
        problem_type=p.problem_type.value,
        emotion_type=p.emotion_type.value,
        situation=p.situation,
        experience_type=p.experience_type,
        source=source,
    )


def load_dialogues(source: str | Path) -> list[Dialogue]:
    """Dialogues from a run folder (its store) or a corpus file in any format `load_corpus` reads
    (dialogues JSONL, ESConv JSON, SSConv JSON); one-line errors. An empty run is not an error."""
    source = Path(source)
    if source.is_dir():
        return read_run(source).dialogues
    if not source.is_file():
        raise UserError(f"{source}: not found; give a run folder or a dialogues JSONL file")
    return load_corpus(source).dialogues


# -- detection --------------------------------------------------------------------------------


def load_corpus(path: str | Path, name: str | None = None) -> Corpus:
    """Read a run folder or a corpus file in any supported format. Raises `UserError` (one line
    naming file, line or dialogue, and field) for a missing path, a wrong schema or an empty corpus."""
    path = Path(path)
    if path.is_dir():
        corpus = read_run(path)
    elif not path.exists():
        raise UserError(f"{path}: no such file or run folder")
    else:
        first = _first_char(path)
        if first == "":
            raise UserError(f"{path}: the file is empty; give a corpus with at least one dialogue")
        if first == "{":
            corpus = read_jsonl_corpus(path)
        elif first == "[":
            corpus = read_esconv_json(path)
        else:
            corpus = read_tsv_corpus(path)
    if name:
        corpus.name = name
    if not corpus.dialogues:
        raise UserError(f"{path}: no dialogues in this corpus; nothing to evaluate")
    return corpus


def _first_char(path: Path) -> str:
    try:
        with path.open(encoding="utf-8-sig") as f:
            while True:
                chunk = f.read(4096)
                if not chunk:
                    return ""
                stripped = chunk.lstrip()
                if stripped:
                    return stripped[0]
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; expected JSONL, ESConv JSON or ESConv TSV") from None
    except IsADirectoryError:  # pragma: no cover - handled by is_dir
        raise UserError(f"{path}: is a folder without manifest.json") from None


# -- runs and JSONL ---------------------------------------------------------------------------


def read_run(root: Path) -> Corpus:
    """A run folder: its SQLite store (every finished dialogue, even while the run goes on), or
    its exported ``dialogues.jsonl`` when the store is missing."""
    from socialsim.simulate.store import DB, MANIFEST, RunStore

    if not (root / MANIFEST).is_file():
        raise UserError(
            f"{root}: not a socialsim run (no {MANIFEST}); give a run folder, a dialogues JSONL, "
            "an ESConv JSON or an ESConv TSV file"
        )
    if not (root / DB).is_file() and (root / "dialogues.jsonl").is_file():
        corpus = read_jsonl_corpus(root / "dialogues.jsonl")
        corpus.name, corpus.path, corpus.format = root.name, root, "run"
        return corpus
    import sqlite3

    try:
        store = RunStore.open(root)
    except sqlite3.Error as e:  # e.g. a read-only copy of a run: fall back to its export
        if (root / "dialogues.jsonl").is_file():
            corpus = read_jsonl_corpus(root / "dialogues.jsonl")
            corpus.name, corpus.path, corpus.format = root.name, root, "run"
            return corpus
        raise UserError(f"{root / DB}: cannot read the run database ({e})") from None
    try:
        dialogues = list(_iter_store(store, root))
    finally:
        store.close()
    meta = [meta_from_persona(d, f"{root}#{i}") for i, d in enumerate(dialogues)]
    return Corpus(name=root.name, path=root, format="run", dialogues=dialogues, meta=meta)


def _iter_store(store: Any, root: Path) -> Any:
    try:
        yield from store.iter_dialogues()
    except ValidationError as e:
        raise UserError(validation_message(root / "run.sqlite", None, e)) from None


def read_jsonl_corpus(path: Path) -> Corpus:
    from socialsim.schema import read_dialogues

    try:
        dialogues = read_dialogues(path)
    except ValueError as e:
        raise UserError(str(e)) from None
    meta = [meta_from_persona(d, f"{path}:{i + 1}") for i, d in enumerate(dialogues)]
    return Corpus(name=path.name, path=path, format="jsonl", dialogues=dialogues, meta=meta)


# -- ESConv JSON ------------------------------------------------------------------------------


def read_esconv_json(path: Path) -> Corpus:
    """ESConv's JSON list of dialogues (also our own ``esconv.json`` exports, extras included)."""
    data = parse_json(path, path.read_text(encoding="utf-8-sig"))
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of ESConv dialogues")
    from socialsim.corpus.ssconv import looks_like_ssconv, read_ssconv

    if looks_like_ssconv(data):  # SocialSim's SSConv release: {"ID", "Dialogue": [{"Seeker"}, {"Supporter"}]}
        dialogues = read_ssconv(path, data)
        meta = [DialogueMeta(source=f"{path}#{i}") for i in range(len(dialogues))]
        return Corpus(name=path.name, path=path, format="ssconv", dialogues=dialogues, meta=meta)
    dialogues, meta = read_esconv(path, data)
    return Corpus(name=path.name, path=path, format="esconv-json", dialogues=dialogues, meta=meta)


# -- ESConv TSV -------------------------------------------------------------------------------


def read_tsv_corpus(path: Path) -> Corpus:
    """The TSV as a corpus: its examples, and the dialogues stitched back from them."""
    examples, dialogues, meta = read_tsv_dialogues(path)
    return Corpus(name=path.name, path=path, format="esconv-tsv", dialogues=dialogues, meta=meta, examples=examples)
