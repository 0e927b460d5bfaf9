"""``socialsim export`` as a library call: read a run folder or a corpus file and write it in the
asked formats (SFT splits, parquet, the Hub layout, dialogues JSONL, ESConv JSON, SSConv JSON).
Errors name parameters (`socialsim.errors.ParamError`); the command line maps them to its options."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from socialsim.errors import ParamError, UserError

EXPORT_FORMATS = ("sft", "parquet", "hf", "jsonl", "esconv", "ssconv")
SFT_FORMATS = ("sft", "parquet", "hf")
FILE_FORMATS = (("dialogues.jsonl", "jsonl"), ("esconv.json", "esconv"), ("ssconv.json", "ssconv"))


def export_corpus(
    source: Path,
    out: Path,
    formats: Sequence[str] = ("sft",),
    *,
    with_strategy: bool = True,
    with_thought: bool = False,
    valid_fraction: float = 0.1,
    seed: int = 0,
    include_flagged: bool = False,
) -> dict[str, Any] | None:
    """Write the dialogues of `source` (a run folder or a corpus file) into `out` in each of `formats`.
    Nothing is written unless every check passes: known formats, a source with dialogues, no file
    of this export already in `out`. Returns the SFT export's summary (None without an SFT format); its
    ``left_out_examples`` counts the supporter turns that made no example (crisis-protocol replies, replies the
    safety screen replaced, replies after a seeker slip or fallback line), which ``include_flagged`` keeps."""
    from socialsim.corpus.esconv import write_esconv
    from socialsim.corpus.sft import export_sft
    from socialsim.corpus.ssconv import write_ssconv
    from socialsim.evaluate.readers import load_dialogues
    from socialsim.schema import write_jsonl

    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise ParamError("format", f"unknown format {bad[0]!r} (use {', '.join(sorted(EXPORT_FORMATS))})")
    dialogues = load_dialogues(source)
    if not dialogues:
        raise UserError(f"{source}: holds no dialogues")
    sft_formats = tuple(f for f in formats if f in SFT_FORMATS)
    for name, f in FILE_FORMATS:
        if f in formats and (out / name).exists():
            raise ParamError("out", f"{out / name} already exists; choose a new folder")
    meta = None
    if sft_formats:
        from socialsim.corpus.hf_card import describe_source

        meta = export_sft(
            dialogues,
            out,
            with_strategy=with_strategy,
            with_thought=with_thought,
            valid_fraction=valid_fraction,
            seed=seed,
            formats=sft_formats,
            source=describe_source(source),
            include_flagged=include_flagged,
        )
    out.mkdir(parents=True, exist_ok=True)
    writers = {"jsonl": write_jsonl, "esconv": write_esconv, "ssconv": write_ssconv}
    for name, f in FILE_FORMATS:
        if f in formats:
            writers[f](dialogues, out / name)
    return meta
