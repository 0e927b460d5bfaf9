"""Persona CSV and JSONL files: they carry persona fields themselves; nothing is filled in."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.personas.bank import load_personas
from socialsim.personas.importers.common import (
    Builder,
    ImportResult,
    Locator,
    _Bad,
    _collect,
    _read_text,
)
from socialsim.schema import (
    DISCLOSURE_LAYERS,
    BigFive,
    Persona,
)

LIST_FIELDS = ("coping_tried", "support_preferences")
#: Columns a persona CSV may have: the `Persona` fields, with the nested ones dotted.
CSV_COLUMNS: tuple[str, ...] = tuple(
    [f for f in Persona.model_fields if f not in ("disclosure", "personality")]
    + [f"disclosure.{k}" for k in DISCLOSURE_LAYERS]
    + [f"personality.{k}" for k in BigFive.model_fields]
)


def _csv_record(row: dict[str, str], notes: Counter[str]) -> Persona:
    data: dict[str, Any] = {}
    for col, raw in row.items():
        value = (raw or "").strip()
        if not value:
            continue  # an empty cell means "not given": the field's default applies
        if "." in col:
            outer, inner = col.split(".", 1)
            data.setdefault(outer, {})[inner] = value
        elif col in LIST_FIELDS:
            data[col] = [x.strip() for x in value.split(";") if x.strip()]
        else:
            data[col] = value
    return Persona.model_validate(data)


def import_csv(path: str | Path, *, skip_invalid: bool = False) -> ImportResult:
    """A CSV with a header of `Persona` field names: ``disclosure.surface``, ``disclosure.context``,
    ``disclosure.core`` and ``personality.<trait>`` for the nested fields, list fields
    (``coping_tried``, ``support_preferences``) separated by ``;``, empty cells for "not given".
    Errors name the line where the record starts and the column."""
    path = Path(path)
    text = _read_text(path, "CSV file")
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as e:
        raise UserError(f"{path}:1: not valid CSV ({e})") from None
    for col in header:
        if col not in CSV_COLUMNS:
            raise UserError(
                f"{path}:1: field '{col}': unknown column; columns are Persona field names: {', '.join(CSV_COLUMNS)}"
            )
    dupes = [c for c, k in Counter(header).items() if k > 1]
    if dupes:
        raise UserError(f"{path}:1: field '{dupes[0]}': column given twice")

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise UserError(f"{path}:{start}: not valid CSV ({e})") from None
            where, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UserError(
                    f"{path}:{where}: expected {len(header)} cells like the header, found {len(row)} "
                    "(quote cells that contain commas)"
                )
            yield where, partial(_csv_record, dict(zip(header, row, strict=True))), None

    return _collect(path, "csv", records(), skip_invalid)


# -- JSONL ------------------------------------------------------------------------------------------


def import_jsonl(path: str | Path, *, skip_invalid: bool = False) -> ImportResult:
    """Persona JSONL (one persona per line, or a JSON array), validated as `Persona`; aliases
    such as 'issues with parents' are normalised."""
    from socialsim.personas.bank import _records

    path = Path(path)
    if not skip_invalid:
        return ImportResult(load_personas(path), path, "jsonl")

    def build(rec: Any, notes: Counter[str]) -> Persona:
        if not isinstance(rec, dict):
            raise _Bad("(record)", "expected a JSON object with persona fields")
        return Persona.model_validate(rec)

    def records() -> Iterator[tuple[int | str, Builder, Locator | None]]:
        for idx, (lineno, rec) in enumerate(_records(path)):
            yield (lineno if lineno is not None else f"record {idx + 1}"), partial(build, rec), None

    return _collect(path, "jsonl", records(), skip_invalid)
