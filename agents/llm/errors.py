"""Typed errors of the local chat model, beside those in `personagraph.memory.errors`."""

from __future__ import annotations

from personagraph.memory.errors import PersonagraphError


class UnknownAdapterError(PersonagraphError, KeyError):
    """A call named a LoRA adapter that was never loaded (or was unloaded)."""


class SchemaError(PersonagraphError, ValueError):
    """A JSON schema that constrained decoding cannot compile into a grammar."""
