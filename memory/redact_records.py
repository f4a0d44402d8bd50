"""Redaction of whole records: which fields of each kind hold free text a person typed.

Ids, times and links are left alone (an event's id was derived from its text before redaction,
as a hash, so a replay of the same message still finds it). An event that lost a secret says
which kinds in `metadata["redacted"]`, so the owner can see that something was withheld.
"""

from __future__ import annotations

from typing import Any

from .models import Entity, Event, Feedback, PromptMessage, Record
from .redaction import Redactor, redact_value

_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "event": ("text", "caption"),
    "episode": ("summary",),
    "fact": ("text", "subject", "object"),
    "entity": ("name",),
    "relation": ("predicate",),
    "feedback": ("query", "response", "edited", "comment"),
    "item": ("text",),
    "reflection": ("reason",),
    "adapter": ("reason",),
}


def redact_record(record: Record, redactor: Redactor) -> Record:
    """`record` with its free text redacted; the same object when there was nothing to redact."""
    if not redactor.enabled:
        return record
    changes: dict[str, Any] = {}
    found: list[str] = []
    for name in _TEXT_FIELDS.get(record.kind, ()):
        value = getattr(record, name)
        if isinstance(value, str):
            clean, kinds = redactor.redact(value)
            if kinds:
                changes[name], found = clean, found + kinds
    if isinstance(record, Entity):
        aliases = [redactor.text(a) for a in record.aliases]
        if aliases != record.aliases:
            changes["aliases"] = aliases
    if isinstance(record, Feedback):
        alternatives = [redactor.text(a) for a in record.alternatives]
        if alternatives != record.alternatives:
            changes["alternatives"] = alternatives
        prompt = [PromptMessage(role=m.role, content=redactor.text(m.content)) for m in record.prompt]
        if prompt != record.prompt:
            changes["prompt"] = prompt
    if record.kind == "item":
        value = redact_value(redactor, record.value)  # type: ignore[attr-defined]
        if value != record.value:  # type: ignore[attr-defined]
            changes["value"] = value
    if isinstance(record, Event):
        metadata = {k: redactor.text(v) for k, v in record.metadata.items()}
        if found:
            previous = [k for k in metadata.get("redacted", "").split(",") if k]
            metadata["redacted"] = ",".join(sorted(set(previous) | set(found)))
        if metadata != record.metadata:
            changes["metadata"] = metadata
    return record.model_copy(update=changes) if changes else record
