"""The safety event log: one JSON object per line for every seeker message the safety layer put on the
``protocol`` or ``check_in`` tier (or found ambiguous, or whose denial ended a safety exchange) and every
replaced supporter reply.

Fields: ``ts`` (UTC, ISO 8601), ``source`` (serve, chat, …), ``kind`` (seeker_message or
supporter_output), ``tier`` (none, check_in, protocol), ``stage`` (rules, learned, classifier, followup
or none: what decided the tier), ``score`` (the learned stage's score, or null), ``action`` (protocol,
protocol_followup, check_in, answer_denied, cleared_by_learned, reply_replaced),
``category``, ``rule`` and ``matched`` (the rule id and the words it matched), ``after`` and ``answer``
(the seeker's answer to a protocol reply or check-in: confirm, deny or other), ``learned`` (score,
category, tier) or ``learned_error``, ``verdict`` (the classifier's risk, confidence and reason) or
``classifier_error``, ``locale``, ``message_sha256`` (first 16 hex digits) and ``message_chars``. The
message itself is written only with ``log_text=True``. Request headers, API keys and settings are never
passed to the log, so they cannot end up in it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socialsim.errors import UserError
from socialsim.io import cache_dir, iter_jsonl

log = logging.getLogger(__name__)
_KEYLIKE = re.compile(r"\b(?:sk|pk|key|token)-[A-Za-z0-9_\-]{8,}")


def default_event_log_path() -> Path:
    """``$SOCIALSIM_CACHE_DIR/safety-events.jsonl`` (default ``~/.cache/socialsim/``)."""
    return cache_dir() / "safety-events.jsonl"


class SafetyEventLog:
    """Appends events to a JSONL file (thread-safe; each event is one ``write`` of one line)."""

    def __init__(self, path: str | Path, *, log_text: bool = False) -> None:
        self.path = Path(path)
        self.log_text = log_text
        self._lock = threading.Lock()
        self.written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8"):
                pass
        except OSError as e:
            raise UserError(f"{self.path}: cannot write the safety event log ({e.strerror or e})") from None

    def write(self, event: dict[str, Any], *, message: str | None = None) -> None:
        record: dict[str, Any] = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds")}
        record.update(event)
        if message is not None:
            record["message_sha256"] = hashlib.sha256(message.encode("utf-8")).hexdigest()[:16]
            record["message_chars"] = len(message)
            if self.log_text:
                record["message"] = _KEYLIKE.sub("[redacted]", message)
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            try:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(line)
                self.written += 1
            except OSError as e:  # never take the conversation down, but say so loudly
                log.error("could not write safety event to %s: %s", self.path, e)

    def read(self) -> list[dict[str, Any]]:
        return [obj for _, obj in iter_jsonl(self.path)]
