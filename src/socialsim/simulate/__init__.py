"""Simulation: one dialogue (`simulate_dialogue`) and whole runs."""

from socialsim.simulate.dialogue import DialogueConfig, simulate_dialogue

__all__ = ["DialogueConfig", "simulate_dialogue"]
