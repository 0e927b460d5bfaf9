"""Loading, validating and sampling persona banks (JSONL or a JSON array of `Persona`)."""

from __future__ import annotations

import random
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from socialsim.errors import UserError, validation_message
from socialsim.io import iter_jsonl, parse_json
from socialsim.schema import Persona

DEFAULT_BANK = "default_bank.jsonl"


def _records(path: Path) -> list[tuple[int, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: persona file not found; give a JSONL file with one persona per line") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read persona file ({e.__class__.__name__})") from None
    if not text.strip():
        raise UserError(f"{path}: persona file is empty; add one JSON persona per line")
    if text.lstrip().startswith("["):
        data = parse_json(path, text, hint="fix the file")
        return [(None, rec) for rec in data]  # type: ignore[misc]
    return list(iter_jsonl(path, what="a JSON object with persona fields"))


def load_personas(path: str | Path) -> list[Persona]:
    """Read and validate every persona; the first problem raises `UserError` naming file, line
    and field. Duplicate ids are refused."""
    path = Path(path)
    personas: list[Persona] = []
    seen: dict[str, int | None] = {}
    for idx, (lineno, rec) in enumerate(_records(path)):
        where = lineno if lineno is not None else f"record {idx + 1}"
        if not isinstance(rec, dict):
            raise UserError(f"{path}:{where}: expected a JSON object with persona fields")
        try:
            p = Persona.model_validate(rec)
        except ValidationError as e:
            raise UserError(validation_message(path, where, e)) from None  # type: ignore[arg-type]
        if p.id in seen:
            raise UserError(f"{path}:{where}: field 'id': duplicate id {p.id!r} (also at line {seen[p.id]})")
        seen[p.id] = lineno
        personas.append(p)
    return personas


def default_bank_path() -> Path:
    return Path(str(resources.files("socialsim.personas").joinpath("data", DEFAULT_BANK)))


def default_personas() -> list[Persona]:
    """The bank shipped in the package."""
    return load_personas(default_bank_path())


def sample_personas(
    personas: list[Persona],
    n: int,
    *,
    seed: int,
    mode: Literal["stratified", "uniform", "sequential"] = "stratified",
) -> list[Persona]:
    """Pick `n` personas (with repetition once the bank is exhausted), reproducibly from `seed`.

    ``stratified`` cycles through problem types in a shuffled order so every type is covered
    before any repeats; ``uniform`` draws uniformly; ``sequential`` takes the bank in order.
    """
    if not personas:
        raise UserError("the persona bank is empty")
    rng = random.Random(seed)
    if mode == "sequential":
        return [personas[i % len(personas)] for i in range(n)]
    if mode == "uniform":
        return [rng.choice(personas) for _ in range(n)]
    groups: dict[str, list[Persona]] = defaultdict(list)
    for p in personas:
        groups[p.problem_type.value].append(p)
    keys = sorted(groups)
    rng.shuffle(keys)
    pools = {k: [] for k in keys}  # type: dict[str, list[Persona]]
    out: list[Persona] = []
    while len(out) < n:
        for k in keys:
            if not pools[k]:
                pools[k] = groups[k][:]
                rng.shuffle(pools[k])
            out.append(pools[k].pop())
            if len(out) == n:
                break
    return out


#: Persona splits for chatbot evaluation: a fixed share of a bank, chosen by id hash under this seed.
PERSONA_SPLITS: tuple[str, ...] = ("heldout", "train", "all")
HELDOUT_FRACTION = 0.2
HELDOUT_SEED = 7


def split_personas(
    personas: list[Persona], split: str, fraction: float = HELDOUT_FRACTION, seed: int = HELDOUT_SEED
) -> list[Persona]:
    """The personas of ``split``: 'heldout' (a fixed ``fraction`` of the bank, by id hash), 'train'
    (the rest) or 'all'. Raises `ParamError` on ``split`` for an unknown split or an empty one."""
    from socialsim.corpus.sft import in_valid
    from socialsim.errors import ParamError

    if split not in PERSONA_SPLITS:
        raise ParamError("split", f"{split!r}: use heldout, train or all")
    if split == "all":
        return personas
    keep = [p for p in personas if in_valid(p.id, fraction, seed=seed) == (split == "heldout")]
    if not keep:
        raise ParamError("split", f"{split}: no persona in this bank falls in that split")
    return keep
