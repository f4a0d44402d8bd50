"""Redaction of whole records: which fields of each kind hold free text a person typed.

Times and links are left alone. An id derived from the text (an event's, an entity's) is derived
again from the redacted text: a hash of the raw text would let anyone holding the store try every
PIN against it. Redaction is deterministic, so a replay of the same message still finds it. An
event that lost a secret says which kinds in `metadata["redacted"]`, so its owner can see that
something was withheld. The result is validated again: a marker may not push a field past its limit.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .errors import InvalidRecordError
from .models import Entity, Event, Feedback, PromptMessage, Record, entity_key
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
    if not changes:
        return record
    data = {**record.model_dump(), **changes}
    if _id_from_content(record):
        del data["id"]  # derived again, from the redacted text
    try:
        return type(record).model_validate(data)
    except ValidationError as exc:
        raise InvalidRecordError(f"{record.kind} {record.id!r} cannot be kept once redacted: {exc.errors()[0]['msg']}") from None


def _id_from_content(record: Record) -> bool:
    """Was the record's id derived from its (raw) text, rather than given by the caller?"""
    if isinstance(record, Event):
        return Event.model_validate(record.model_dump(exclude={"id"})).id == record.id
    if isinstance(record, Entity):
        return entity_key(record.name) == record.id
    return False
