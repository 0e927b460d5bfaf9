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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.errors import UserError, validation_message
from socialsim.io import parse_json
from socialsim.schema import PROBLEM_ALIASES, Dialogue, ProblemType, Strategy, Turn, parse_strategy

#: ESConv speaker labels, current and older, mapped to ours.
SPEAKER_LABELS = {
    "seeker": "seeker",
    "speaker": "seeker",
    "usr": "seeker",
    "user": "seeker",
    "supporter": "supporter",
    "listener": "supporter",
    "sys": "supporter",
    "system": "supporter",
}

EXTERNAL_BACKEND = "esconv"
EXTERNAL_MODEL = "human"


@dataclass
class DialogueMeta:
    """What a corpus says about one dialogue besides its turns (ESConv's metadata or the persona's)."""

    problem_type: str | None = None
    emotion_type: str | None = None
    situation: str | None = None
    experience_type: str | None = None
    survey: dict[str, Any] = field(default_factory=dict)
    #: where the dialogue came from: ``file#index`` or ``file:line``
    source: str = ""


@dataclass
class ResponseExample:
    """One line of ESConv's TSV format: the context, the reference supporter response and its strategy."""

    line: int
    context: list[Turn]
    reference: str
    strategy: Strategy | None
    #: index of the dialogue this example was stitched into (see `Corpus.dialogues`)
    dialogue_index: int = 0


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


def normalise_problem(value: str | None) -> str | None:
    """ESConv and persona problem types onto `ProblemType` values; unknown labels stay as given."""
    if value is None:
        return None
    key = value.strip().lower()
    if not key:
        return None
    for p in ProblemType:
        if p.value == key:
            return p.value
    if key in PROBLEM_ALIASES:
        return PROBLEM_ALIASES[key].value
    return key


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
    stem = path.stem
    dialogues: list[Dialogue] = []
    meta: list[DialogueMeta] = []
    for i, obj in enumerate(data):
        d, m = esconv_to_dialogue(obj, where=f"{path}: dialogue [{i}]", default_id=f"{stem}-{i:04d}")
        m.source = f"{path}#{i}"
        dialogues.append(d)
        meta.append(m)
    return Corpus(name=path.name, path=path, format="esconv-json", dialogues=dialogues, meta=meta)


def esconv_to_dialogue(obj: Any, *, where: str, default_id: str) -> tuple[Dialogue, DialogueMeta]:
    """One ESConv dialogue object → (`Dialogue`, `DialogueMeta`); `where` prefixes error messages."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object with a 'dialog' list")
    dialog = obj.get("dialog")
    if dialog is None:
        raise UserError(f"{where}: field 'dialog': required field is missing")
    if not isinstance(dialog, list):
        raise UserError(f"{where}: field 'dialog': expected a list of utterances")
    extra = obj.get("socialsim") if isinstance(obj.get("socialsim"), dict) else None
    extra_turns = extra.get("turns") if extra and isinstance(extra.get("turns"), list) else None
    if extra_turns is not None and len(extra_turns) != len(dialog):
        extra_turns = None
    turns: list[Turn] = []
    feedback: list[int] = []
    for j, u in enumerate(dialog):
        fwhere = f"{where}: field 'dialog[{j}]"
        if not isinstance(u, dict):
            raise UserError(f"{fwhere}': expected an object with speaker and content")
        label = u.get("speaker")
        if not isinstance(label, str):
            raise UserError(f"{fwhere}.speaker': required field is missing")
        speaker = SPEAKER_LABELS.get(label.strip().lower())
        if speaker is None:
            raise UserError(
                f"{fwhere}.speaker': unknown speaker {label!r} (expected seeker/supporter or speaker/listener)"
            )
        content = u.get("content")
        if not isinstance(content, str):
            raise UserError(f"{fwhere}.content': expected a string")
        ann = u.get("annotation") or {}
        if not isinstance(ann, dict):
            raise UserError(f"{fwhere}.annotation': expected an object")
        strategy = None
        if speaker == "supporter" and ann.get("strategy"):
            try:
                strategy = parse_strategy(str(ann["strategy"]))
            except ValueError as e:
                raise UserError(f"{fwhere}.annotation.strategy': {e}") from None
        if speaker == "seeker" and str(ann.get("feedback", "")).strip().isdigit():
            feedback.append(int(str(ann["feedback"]).strip()))
        kw: dict[str, Any] = {}
        if extra_turns is not None and isinstance(extra_turns[j], dict):
            x = extra_turns[j]
            kw = {k: x[k] for k in ("thought", "disclosure_layer", "role_fallback", "usage", "latency_s") if k in x}
            kw = {k: v for k, v in kw.items() if v is not None}
        try:
            turns.append(Turn(speaker=speaker, text=content.strip(), strategy=strategy, **kw))  # type: ignore[arg-type]
        except ValidationError as e:
            raise UserError(validation_message(f"{fwhere}'", None, e)) from None
    survey = obj.get("survey_score") if isinstance(obj.get("survey_score"), dict) else {}
    if feedback:
        survey = {**survey, "seeker_feedback": feedback}
    m = DialogueMeta(
        problem_type=normalise_problem(obj.get("problem_type") if isinstance(obj.get("problem_type"), str) else None),
        emotion_type=(obj.get("emotion_type") or None) if isinstance(obj.get("emotion_type"), str) else None,
        situation=obj.get("situation") if isinstance(obj.get("situation"), str) else None,
        experience_type=obj.get("experience_type") if isinstance(obj.get("experience_type"), str) else None,
        survey=survey,
    )
    fields: dict[str, Any] = {
        "id": default_id,
        "persona_id": default_id,
        "backend": EXTERNAL_BACKEND,
        "model": EXTERNAL_MODEL,
        "seed": 0,
        "turns": turns,
        "created_at": "",
    }
    if extra is not None:  # our own export: restore what the ESConv schema has no place for
        mapping = {"dialogue_id": "id", "persona_id": "persona_id", "backend": "backend", "model": "model"}
        for src, dst in mapping.items():
            if isinstance(extra.get(src), str) and extra[src]:
                fields[dst] = extra[src]
        for key in ("seed", "status", "end_reason", "failure_reason"):
            if extra.get(key) is not None:
                fields[key] = extra[key]
    try:
        return Dialogue(**fields), m
    except ValidationError as e:
        raise UserError(validation_message(where, None, e)) from None


# -- ESConv TSV -------------------------------------------------------------------------------

_TAG = re.compile(r"^\[([^\]]+)\]\s*")
_TURN = re.compile(r"^(\S+) (\S+) (\S+)(?: (.*))?$", re.S)


def split_strategy_tag(text: str) -> tuple[Strategy | None, str]:
    """``"[Questions] How are you?"`` → (Strategy.QUESTION, "How are you?"). Raises `ValueError`
    for an unknown tag; text without a tag gives (None, text)."""
    m = _TAG.match(text)
    if not m:
        return None, text.strip()
    return parse_strategy(m.group(1)), text[m.end() :].strip()


def read_tsv_examples(path: str | Path) -> list[ResponseExample]:
    """ESConv's TSV training format → one `ResponseExample` per line (context turns, reference
    response, strategy). See SCHEMA.md: turns joined by `` EOS ``, each
    ``<weight> <speaker 0/1> <index> <text>``; the last turn is the target supporter response.
    `ResponseExample.dialogue_index` tells which stitched dialogue a line belongs to."""
    return _read_tsv(Path(path))[0]


def _read_tsv(path: Path) -> tuple[list[ResponseExample], list[dict[int, Turn]]]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    examples: list[ResponseExample] = []
    indexed: list[list[tuple[int, Turn]]] = []
    try:
        with path.open(encoding="utf-8-sig") as f:  # universal newlines: the file has CRLF endings
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                ex, turns = _parse_tsv_line(path, lineno, line.rstrip("\n"))
                examples.append(ex)
                indexed.append(turns)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    if not examples:
        raise UserError(f"{path}: no examples in this TSV file")
    return examples, stitch_tsv_dialogues(examples, indexed)


def _parse_tsv_line(path: Path, lineno: int, line: str) -> tuple[ResponseExample, list[tuple[int, Turn]]]:
    parts = line.split(" EOS ")
    turns: list[tuple[int, Turn]] = []
    for k, raw in enumerate(parts):
        m = _TURN.match(raw.strip())
        where = f"{path}:{lineno}: turn {k + 1}"
        if not m:
            raise UserError(f"{where}: expected '<weight> <speaker 0/1> <index> <text>', got {raw.strip()[:40]!r}")
        weight, spk, idx, text = m.group(1), m.group(2), m.group(3), (m.group(4) or "")
        try:
            float(weight)
        except ValueError:
            raise UserError(f"{where}: field 'weight': expected a number, got {weight!r}") from None
        if spk not in ("0", "1"):
            raise UserError(f"{where}: field 'speaker': expected 0 (seeker) or 1 (supporter), got {spk!r}")
        if not idx.isdigit():
            raise UserError(f"{where}: field 'index': expected a whole number, got {idx!r}")
        strategy = None
        if spk == "1":
            try:
                strategy, text = split_strategy_tag(text)
            except ValueError as e:
                raise UserError(f"{where}: field 'strategy': {e}") from None
        turn = Turn(speaker="supporter" if spk == "1" else "seeker", text=text.strip(), strategy=strategy)
        turns.append((int(idx), turn))
    if turns[-1][1].speaker != "supporter":
        raise UserError(f"{path}:{lineno}: the last turn must be the supporter's target response (speaker 1)")
    target = turns[-1][1]
    ctx = [t for _, t in turns[:-1]]
    return ResponseExample(line=lineno, context=ctx, reference=target.text, strategy=target.strategy), turns


def stitch_tsv_dialogues(
    examples: list[ResponseExample], indexed: list[list[tuple[int, Turn]]]
) -> list[dict[int, Turn]]:
    """Rebuild dialogues from consecutive TSV examples by utterance index.

    `indexed[k]` holds the (utterance index, turn) pairs of `examples[k]`, target last. A new
    dialogue starts when a line's target index does not grow past the previous line's, or when a
    context utterance disagrees with the one already seen at the same index. Utterances that fell
    out of every context window (rare: more than four seeker utterances in a row) stay missing.
    Sets `ResponseExample.dialogue_index`; returns index → turn maps, one per dialogue.
    """
    dialogues: list[dict[int, Turn]] = []
    current: dict[int, Turn] | None = None
    prev_target = -1
    for ex, turns in zip(examples, indexed, strict=True):
        target = turns[-1][0]
        conflict = current is not None and any(i in current and current[i].text != t.text for i, t in turns)
        if current is None or target <= prev_target or conflict:
            current = {}
            dialogues.append(current)
        for i, t in turns:
            current.setdefault(i, t)
        ex.dialogue_index = len(dialogues) - 1
        prev_target = target
    return dialogues


def read_tsv_corpus(path: Path) -> Corpus:
    """The TSV as a corpus: its examples, and the dialogues stitched back from them."""
    examples, stitched = _read_tsv(path)
    first_line: dict[int, int] = {}
    for ex in examples:
        first_line.setdefault(ex.dialogue_index, ex.line)
    dialogues = []
    meta = []
    for i, turns in enumerate(stitched):
        did = f"{path.stem}-{i:04d}"
        dialogues.append(
            Dialogue(
                id=did,
                persona_id=did,
                backend=EXTERNAL_BACKEND,
                model=EXTERNAL_MODEL,
                seed=0,
                turns=[turns[k] for k in sorted(turns)],
                created_at="",
            )
        )
        meta.append(DialogueMeta(source=f"{path}:{first_line[i]}"))
    return Corpus(name=path.name, path=path, format="esconv-tsv", dialogues=dialogues, meta=meta, examples=examples)
