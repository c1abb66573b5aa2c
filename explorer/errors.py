"""Errors a user can fix. Library code raises them; only the CLI prints them and exits with 2."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable


class ExplorerError(Exception):
    """Bad input: a spec, hardware profile, study file or command-line value.

    Rendered as ``path:line: layer 'name': message`` (parts that are unknown are left out).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        layer: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.layer = layer

    def located(self, path: str | None = None, line: int | None = None) -> ExplorerError:
        """Fill in the location where it is still unknown (inner code rarely knows the file)."""
        if self.path is None:
            self.path = path
        if self.line is None:
            self.line = line
        return self

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        who = f"layer '{self.layer}': " if self.layer else ""
        return f"{where}{who}{self.message}"


class SpecError(ExplorerError):
    """A problem in a spec file."""


class ExpressionError(SpecError):
    """An expression that is not allowed, or cannot be evaluated."""

    unknown: str | None = None  # the name that was not found, when that is what went wrong


class HardwareError(ExplorerError):
    """A problem in a hardware profile."""


class StudyError(ExplorerError):
    """A problem in a study file."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'conv2d'?)`` when a close match exists, else ``""``."""
    if len(word) > 200:  # difflib is quadratic in the lengths
        return ""
    short = sorted(c for c in map(str, choices) if len(c) <= 200)
    close = difflib.get_close_matches(word, short, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxstring, _BRIEF.maxother = 2, 6, 6, 80, 80
_BRIEF.maxlong = 60
BRIEF_CHARS = 120


def brief(value: object) -> str:
    """``repr(value)`` cut short, for error messages about values of any size (aliased YAML lists)."""
    text = _BRIEF.repr(value)
    return text if len(text) <= BRIEF_CHARS else text[:BRIEF_CHARS - 3] + "..."
