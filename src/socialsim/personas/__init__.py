"""Persona banks: the default bank shipped in ``data/``, loading, validation and sampling."""

from socialsim.personas.bank import default_personas, load_personas, sample_personas

__all__ = ["default_personas", "load_personas", "sample_personas"]
