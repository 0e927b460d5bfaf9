"""Corpus formats: JSONL of `Dialogue`, ESConv JSON (more exports come with later stages)."""

from socialsim.corpus.esconv import to_esconv, write_esconv

__all__ = ["to_esconv", "write_esconv"]
