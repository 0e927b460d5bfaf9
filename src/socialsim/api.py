"""The Python API: socialsim from a notebook or a script.

(Being written: load personas, describe a backend, simulate, open a run, evaluate, export, screen a message.)
"""

from __future__ import annotations

__all__: list[str] = []
