"""Helpers for the `socialsim ui` tests: a `socialsim ui serve` subprocess; the synthetic corpora
come from `socialsim.testing.ui_data`."""

from __future__ import annotations

from serve_helpers import ServeProcess
from socialsim.testing.ui_data import HOSTILE, make_dialogue, synthetic_store, write_run  # noqa: F401 - re-exported


class UIProcess(ServeProcess):
    """``python -m socialsim.cli ui serve --port 0 ...``; `url` is its address (``http://127.0.0.1:PORT``).
    Stopped with SIGINT, as a user's Ctrl-C."""

    COMMAND = ("ui", "serve")
    READY = r"socialsim ui: (http://127\.0\.0\.1:(\d+))/"
    NAME = "ui"

    @property
    def url(self) -> str:
        return self.base_url
