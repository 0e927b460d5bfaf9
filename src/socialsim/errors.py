"""Errors that reach the user as one clear line, and the exit codes of every socialsim command.

==== ==========================================================================================
code meaning
==== ==========================================================================================
0    done
1    another failure (a bug or a broken environment): one line on stderr; set
     ``SOCIALSIM_DEBUG=1`` for the traceback
2    bad input or an unusable setting (`UserError`): one line naming file, line, field or option
3    stopped but resumable (`Stopped`): a budget ran out, dialogues were deferred after a
     backend gave up, or Ctrl-C; finished work is saved and the same command (or ``--resume``)
     continues it
==== ==========================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from socialsim.llm.base import Completion

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_RESUMABLE = 3


class UserError(Exception):
    """Bad input or an unusable setting: the CLI prints the message on one line and exits 2."""


class ParamError(UserError):
    """A bad or missing value of one named parameter. The library names the parameter (``n``,
    ``max_turns``, ``contender``); a command line maps it to its option (``--n``, ``--max-turns``)."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param, self.problem = param, problem

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable (Ray sends errors between processes)
        return (type(self), (self.param, self.problem))

    @classmethod
    def from_validation(cls, err: ValidationError, default: str = "?") -> ParamError:
        """The first error of a config model's validation, named by its field (``default`` when it has none)."""
        first = err.errors()[0]
        param = str(first["loc"][-1]) if first["loc"] else default
        return cls(param, f"{first['msg']} (got {first.get('input')!r})")


class Stopped(Exception):
    """Work stopped before the end but is saved and can be continued: the CLI prints the message
    (which says how to continue) and exits 3."""


class BackendError(UserError):
    """The LLM backend could not be reached or refused the request after bounded retries."""


class RetriesExhausted(BackendError):
    """Transient failures (429, 5xx, timeouts, resets) outlasted the bounded retries of one call."""


class StructuredOutputError(Exception):
    """Model output stayed unparseable after repair and bounded retries. ``completions``: the calls made
    (a caller that goes on without the output still counts their tokens)."""

    def __init__(self, message: str, raw: str = "", completions: Sequence[Completion] = ()) -> None:
        super().__init__(message)
        self.raw = raw
        self.completions: list[Completion] = list(completions)


def validation_message(path: Path | str, lineno: int | None, err: Exception) -> str:
    """One line naming file, line and the first offending field of a validation error."""
    where = f"{path}:{lineno}" if lineno is not None else f"{path}"
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(record)"
        msg = first["msg"]
        if first["type"] == "missing":
            msg = "required field is missing"
        more = len(err.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        return f"{where}: field '{field}': {msg}{extra}. Fix this record and run again."
    return f"{where}: {str(err).splitlines()[0]}"
