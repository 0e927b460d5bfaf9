"""What every persona importer shares: the result type, one-line errors naming file, line and
field, the build-and-collect loop (`--skip-invalid`), text helpers and the atomic writer."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialsim.errors import UserError, validation_message
from socialsim.io import atomic_write_lines, parse_json
from socialsim.schema import (
    Persona,
)

#: What an importer writes for a name, gender or occupation its source does not give.
UNKNOWN = "unknown"
#: Always part of ``life_stage`` when ``age`` is a placeholder; stats read it to count the age as unknown.
AGE_PLACEHOLDER_MARK = "the age field is a placeholder"
#: The placeholder age for a source that gives no age at all (ESConv's crowd workers were adults).
DEFAULT_PLACEHOLDER_AGE = 30
#: The intensity written for a role card without an ``Intensity:`` line (the midpoint of 1–5).
DEFAULT_CARD_INTENSITY = 3
#: A derived disclosure layer is cut (at a word) to at most this many characters.
LAYER_MAX_CHARS = 400


@dataclass
class ImportResult:
    """Personas read from a source, what was filled in and how (counted), and records left out."""

    personas: list[Persona]
    source: Path
    kind: str
    notes: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)


class _Bad(Exception):
    """One record is bad: `field` and a message; the caller adds file and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _where(path: Path, where: int | str | None) -> str:
    return f"{path}:{where}" if where is not None else str(path)


def _bad_line(path: Path, where: int | str | None, err: Exception) -> str:
    if isinstance(err, _Bad):
        if not err.field:
            return f"{_where(path, where)}: {err.message}"
        return f"{_where(path, where)}: field '{err.field}': {err.message}"
    if isinstance(err, ValidationError):
        return validation_message(path, where, err)  # type: ignore[arg-type]
    return f"{_where(path, where)}: {err}"


def _read_text(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found; check the path") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read {what} ({e.__class__.__name__}); give a UTF-8 text file") from None
    if not text.strip():
        raise UserError(f"{path}: {what} is empty; nothing to import")
    return text


def slug(text: str) -> str:
    """Lower-case letters, digits and dashes only (for ids)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _clean(text: object) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip()


def cut_at_word(text: str, limit: int = LAYER_MAX_CHARS) -> str:
    """`text` unchanged when short enough, else cut at the last space before `limit` plus '…'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def three_parts(units: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Cut a list into three consecutive, non-empty, near-equal parts (needs ≥ 3 items)."""
    k = len(units)
    a = max(1, round(k / 3))
    b = max(a + 1, round(2 * k / 3))
    return units[:a], units[a:b], units[b:]


def _placeholder_life_stage(said: str, age: int) -> str:
    return f"{said} (exact age not given by the source; {AGE_PLACEHOLDER_MARK}: {age})"


Builder = Callable[[Counter[str]], Persona]
Locator = Callable[[Exception], "int | str"]


def _collect(
    path: Path,
    kind: str,
    records: Iterable[tuple[int | str, Builder, Locator | None]],
    skip_invalid: bool,
) -> ImportResult:
    """Build each record, check ids are unique, and stop at (or, with `skip_invalid`, list and
    leave out) bad records. `records` yields (where, build, locate): `locate` may point an error
    at a more precise line than `where`."""
    result = ImportResult([], path, kind)
    seen: dict[str, int | str] = {}
    for where, build, locate in records:
        notes: Counter[str] = Counter()
        try:
            p = build(notes)
            if p.id in seen:
                raise _Bad("id", f"duplicate id {p.id!r} (also at {seen[p.id]})")
        except (_Bad, ValidationError) as e:
            line = _bad_line(path, locate(e) if locate else where, e)
            if not skip_invalid:
                raise UserError(line) from None
            result.skipped.append(line)
            continue
        seen[p.id] = where
        result.notes.update(notes)
        result.personas.append(p)
    if not result.personas:
        first = f": {result.skipped[0]}" if result.skipped else ""
        raise UserError(f"{path}: no valid persona in the file ({len(result.skipped)} skipped{first})")
    return result


def check_fallbacks(fallback_problem_type: str | None, fallback_emotion: str | None) -> None:
    """One-line `UserError` naming the option when a fallback is not a known problem type / emotion."""
    for value, name, opt in (
        (fallback_problem_type, "problem_type", "--fallback-problem-type"),
        (fallback_emotion, "emotion_type", "--fallback-emotion"),
    ):
        if value is not None:
            try:
                Persona.model_validate({name: value})
            except ValidationError as e:
                errs = [x for x in e.errors() if x["loc"] and x["loc"][0] == name]
                if errs:
                    raise UserError(f"option {opt}: {errs[0]['msg']}") from None


def read_json_list(path: Path, text: str, what: str) -> list[Any]:
    """`text` parsed as a JSON list, or a one-line `UserError` naming file and line."""
    data = parse_json(path, text)
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of {what}")
    return data


def _first_field(err: Exception) -> str:
    if isinstance(err, ValidationError) and err.errors():
        return ".".join(str(p) for p in err.errors()[0]["loc"])
    return ""


def write_personas(personas: list[Persona], out: str | Path) -> int:
    """Write personas as JSONL atomically (a temporary file in the same folder, then a rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_lines(out, (p.model_dump_json(exclude_none=True) for p in personas))
