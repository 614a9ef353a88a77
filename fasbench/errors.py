"""Errors fasbench raises for bad input: each says what is wrong and what to do about it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FasbenchError(Exception):
    """Base class: the CLI prints these as one clean message (no traceback) and exits with status 2."""


class UnknownNameError(FasbenchError, KeyError):
    """A plugin, protocol, domain or suite name that is not known, with a "did you mean" suggestion."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        message = f"unknown {kind} {name!r}"
        if close:
            message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        elif self.known:
            message += f"; known: {', '.join(self.known)}"
        else:
            message += f"; no {kind} is registered"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(FasbenchError):
    """Two plugins registered the same name for the same kind."""


class RegistryFileError(FasbenchError):
    """The benchmark file (registry.yaml, or a file given with --benchmark) breaks the schema."""


class MissingDataError(FasbenchError):
    """A dataset root or a prepared frame cache is missing."""


class TrainingError(FasbenchError):
    """Training cannot go on (e.g. a NaN loss)."""


class SkipVideo(FasbenchError):
    """Raised by ``Dataset.frames`` for a video that cannot be used (corrupt file, no face found).

    The core skips that video, names the file and the reason, and counts it in the cache manifest.
    """
