"""The one exception family whose messages reach users.

Every error a user can cause or fix is a ``TunehouseError``; the CLI prints its message on one
line and exits with ``exit_code`` (2 for bad input, 1 for a failure at run time).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TunehouseError(Exception):
    """Base of all user-facing errors. ``str(err)`` is a complete one-line message."""

    exit_code = 1


class SpecError(TunehouseError):
    """The experiment spec is invalid: names the file, the line when known, and the field."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file, self.field, self.line, self.reason = file, field, line, message
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        what = f"{field}: " if field else ""
        super().__init__(one_line(f"{where}{what}{message}"))


class DataError(SpecError):
    """The data named by a spec is missing, unreadable or unfit for the task."""


class RunError(TunehouseError):
    """A search could not run (Ray failed to start, every trial failed, ...)."""


class InputError(TunehouseError):
    """Bad input to a command other than a spec: a file, a column, a value, a filter."""

    exit_code = 2


class TunehouseWarning(UserWarning):
    """Something a user should know that does not stop the command; the CLI prints one line."""


def one_line(text: str) -> str:
    """Escape newlines and other control characters so a message stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""``."""
    candidates = [str(c) for c in candidates]
    swapped = [c for c in candidates if sorted(c) == sorted(str(name)) and c != name]
    close = swapped or difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
