"""Typed errors: every bad input gets one of these, with a message that says what to fix."""

from __future__ import annotations

import reprlib


class PersonagraphError(Exception):
    """Base class of every error personagraph raises on purpose."""


class InvalidScopeError(PersonagraphError, ValueError):
    """A tenant or user label is empty, too long or holds forbidden characters."""


class InvalidRecordError(PersonagraphError, ValueError):
    """A record (event, fact, relation...) failed validation; nothing was written."""


class RecordNotFoundError(PersonagraphError, KeyError):
    """The record does not exist in this scope (it may exist in another; that is not told)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IngestFormatError(PersonagraphError, ValueError):
    """An input file is not in a format personagraph can read; the message names the line."""


class ConfigurationError(PersonagraphError, ValueError):
    """Settings name a backend that cannot be used as configured."""


class StoreInUseError(ConfigurationError):
    """Another process (or another open in this one) holds this embedded data dir: SQLite + Qdrant
    Edge take one process per data dir. Nothing was opened or changed; the message says how to
    share memory between processes (Qdrant and PostgreSQL servers)."""


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80


def shown(value: object) -> str:
    """A caller's value as an error message quotes it: short, and safe for any value (the repr of
    a deeply nested one would itself fail with RecursionError)."""
    return _SHOWN.repr(value)
