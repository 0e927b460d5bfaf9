"""ESConv's TSV training format (``devWithStrategy_short.tsv``): one example a line, turns joined by
`` EOS ``, each ``<weight> <speaker 0/1> <index> <text>``; the last turn is the target supporter
response, tagged ``[Strategy]``. Examples are also stitched back into dialogues by utterance index."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from socialsim.chat_format import split_strategy_tag
from socialsim.corpus.esconv import EXTERNAL_BACKEND, EXTERNAL_MODEL, DialogueMeta
from socialsim.errors import UserError
from socialsim.schema import Dialogue, Strategy, Turn


@dataclass
class ResponseExample:
    """One line of ESConv's TSV format: the context, the reference supporter response and its strategy."""

    line: int
    context: list[Turn]
    reference: str
    strategy: Strategy | None
    #: index of the dialogue this example was stitched into (see `Corpus.dialogues`)
    dialogue_index: int = 0


_TURN = re.compile(r"^(\S+) (\S+) (\S+)(?: (.*))?$", re.S)


def read_tsv_examples(path: str | Path) -> list[ResponseExample]:
    """ESConv's TSV training format → one `ResponseExample` per line (context turns, reference
    response, strategy). See SCHEMA.md: turns joined by `` EOS ``, each
    ``<weight> <speaker 0/1> <index> <text>``; the last turn is the target supporter response.
    `ResponseExample.dialogue_index` tells which stitched dialogue a line belongs to."""
    return read_tsv(Path(path))[0]


def read_tsv(path: Path) -> tuple[list[ResponseExample], list[dict[int, Turn]]]:
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


def read_tsv_dialogues(path: Path) -> tuple[list[ResponseExample], list[Dialogue], list[DialogueMeta]]:
    """The TSV's examples, and the dialogues stitched back from them (with where each starts)."""
    examples, stitched = read_tsv(path)
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
    return examples, dialogues, meta
