"""personagraph's own records seen through the LangGraph store interface.

Below a user label, `facts`, `events` and `episodes` are that user's records (active facts
only: a retracted or superseded fact is history, kept for `explain`, not a current item) and
`profile` is the profile derived from them, one item per field. Writes go through the memory
API, so they keep its rules: events are never rewritten, deleting an event forgets what rests
on it, deleting a fact retracts it, and the profile is read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.store.base import Item
from pydantic import ValidationError

from .api import Memory
from .errors import InvalidRecordError
from .models import Episode, Event, Fact, Record, now
from .scope import Scope
from .store_namespaces import NativeCollection

RECORD_KIND = {"facts": "fact", "events": "event", "episodes": "episode"}
COLLECTION_OF = {kind: collection for collection, kind in RECORD_KIND.items()}


def record_item(namespace: tuple[str, ...], record: Record) -> Item:
    return Item(
        value=record.model_dump(mode="json"), key=record.id, namespace=namespace,
        created_at=record.created_at, updated_at=record.created_at,
    )


def visible(record: Record | None) -> bool:
    """Is this record an item of its collection (facts: only while active)?"""
    return record is not None and (not isinstance(record, Fact) or record.status == "active")


def list_items(memory: Memory, scope: Scope, collection: NativeCollection, namespace: tuple[str, ...]) -> list[Item]:
    if collection == "profile":
        return _profile_items(memory, scope, namespace)
    records = memory.records.list(scope, RECORD_KIND[collection])  # type: ignore[arg-type]
    return [record_item(namespace, r) for r in records if visible(r)]


def get_item(memory: Memory, scope: Scope, collection: NativeCollection, namespace: tuple[str, ...], key: str) -> Item | None:
    if collection == "profile":
        return next((i for i in _profile_items(memory, scope, namespace) if i.key == key), None)
    record = memory.records.get(scope, RECORD_KIND[collection], key)  # type: ignore[arg-type]
    return record_item(namespace, record) if visible(record) else None


def check_put(memory: Memory, scope: Scope, collection: NativeCollection, key: str, value: Mapping[str, Any]) -> None:
    """Refuse, before anything of a batch is written, a put that the memory API would refuse."""
    if collection == "profile":
        raise InvalidRecordError("the profile is derived from facts: put facts under 'facts' instead")
    fields = _fields(value)
    if collection == "events":
        event = _validated(Event, {**fields, "id": key})
        old = memory.records.get(scope, "event", key)
        if old is not None and not event.same_message(old):  # type: ignore[attr-defined, arg-type]
            raise InvalidRecordError(f"event id {key!r} is taken by a different message")
        return
    _check_sources(memory, scope, fields.get("sources", []))
    if collection == "episodes":
        _validated(Episode, {**fields, "id": key})
        return
    existing = memory.records.get(scope, "fact", key)
    if existing is not None and not visible(existing):
        raise InvalidRecordError(f"fact {key!r} is {existing.status} (history is not edited): put it under a new key")  # type: ignore[attr-defined]
    _validated(Fact, {**(existing.model_dump() if existing else {}), **fields, "id": key})


def check_delete(collection: NativeCollection) -> None:
    if collection in ("profile", "episodes"):
        raise InvalidRecordError(f"{collection} are derived: forget the events they rest on instead")


def put_item(memory: Memory, scope: Scope, collection: NativeCollection, key: str, value: Mapping[str, Any]) -> None:
    """Create or correct a record from a store put; the key is the record id."""
    check_put(memory, scope, collection, key, value)
    fields = _fields(value)
    if collection == "events":
        memory.add_event(scope, {**fields, "id": key})
    elif collection == "episodes":
        memory.add_episode(scope, {**fields, "id": key})
    elif memory.records.get(scope, "fact", key) is None:
        memory.add_fact(scope, {**fields, "id": key})
    else:
        memory.update_fact(scope, key, **fields)


def delete_item(memory: Memory, scope: Scope, collection: NativeCollection, key: str) -> None:
    """Events are forgotten (with what rests on them alone); facts are retracted."""
    check_delete(collection)
    record = memory.records.get(scope, RECORD_KIND[collection], key)  # type: ignore[arg-type]
    if not visible(record):
        return  # deleting what is not there is a no-op, as in every LangGraph store
    if collection == "events":
        memory.forget_event(scope, key)
    else:
        memory.retract_fact(scope, key)


def _fields(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("kind", "id", "created_at")}


def _validated(model: type[Record], data: dict[str, Any]) -> Record:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecordError(f"invalid {model.__name__}: {exc}") from exc


def _check_sources(memory: Memory, scope: Scope, sources: Any) -> None:
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise InvalidRecordError("sources must be a list of event ids")
    found = memory.records.get_many(scope, "event", sources)
    missing = [s for s in sources if s not in found]
    if missing:
        raise InvalidRecordError(f"sources {missing} are not events of this user")


def _profile_items(memory: Memory, scope: Scope, namespace: tuple[str, ...]) -> list[Item]:
    profile = memory.profile(scope).model_dump(mode="json")
    stamp = now()
    return [
        Item(value={"field": field, "value": value}, key=field, namespace=namespace, created_at=stamp, updated_at=stamp)
        for field, value in profile.items() if value not in (None, [], {}) and not (field == "style" and not any(value.values()))
    ]

