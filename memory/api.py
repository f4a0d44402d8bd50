"""The memory facade: every read and write of a user's memory goes through `Memory`.

Write path: validate → embed → one atomic record batch (records + a journal entry) → index
upsert/delete → clear the journal entry → update the cached graph. A crash after the record
batch leaves the journal entry, and `reconcile()` (run on open) replays it onto the index.
Search (memory/search.py) reads every hit back from the record store, so an index point
without a record (an orphan) is never returned.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from .artifacts import remove_weights, weights_left
from .cascade import plan_event_cascade
from .changes import ChangeSet
from .embedding import Bm25Encoder, Embedder
from .errors import InvalidRecordError, RecordNotFoundError, shown
from .graph import GraphCache, ScopeGraph
from .index.base import OPEN_END, OPEN_START, IndexPoint, IndexQuery, VectorIndex, ts
from .models import (
    INDEXED_KINDS,
    RECORD_KINDS,
    AdapterRecord,
    Entity,
    Episode,
    Event,
    Fact,
    Feedback,
    Profile,
    Record,
    RecordKind,
    ReflectionRun,
    Relation,
    StoreItem,
    check_text,
    entity_key,
    now,
    record_time,
)
from .profile import derive_profile, profile_owners
from .records import RecordStore
from .redact_records import redact_record
from .redaction import Redactor
from .retrieval import Key, RetrievalConfig
from .scope import Scope, validate_label
from .search import Retriever, SearchResult
from .timeline import TimelineCache

R = TypeVar("R", bound=Record)
T = TypeVar("T")


class ForgetReceipt(BaseModel):
    scope: Scope
    target: str
    records_deleted: dict[str, int]
    records_updated: int = 0
    index_points_deleted: int
    graph_nodes_deleted: int = 0
    graph_edges_deleted: int = 0
    residue: dict[str, int] = Field(description="what is left of the target per store; all zero when complete")

    @property
    def complete(self) -> bool:
        return not any(self.residue.values())


def _coerce(model: type[R], value: R | dict[str, Any]) -> R:
    if isinstance(value, model):
        return value
    if isinstance(value, BaseModel):
        raise InvalidRecordError(f"expected a {model.__name__}, got a {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidRecordError(f"invalid {model.__name__}: {exc}") from exc


def _indexable(record: Record) -> bool:
    """Search sees this record: an indexed kind, and a store item only when put with text to index."""
    return record.kind in INDEXED_KINDS and not (isinstance(record, StoreItem) and not record.text)


def _check_scope(scope: Scope) -> Scope:
    if not isinstance(scope, Scope):
        raise InvalidRecordError(f"every memory call takes a Scope, got {type(scope).__name__}")
    validate_label(scope.tenant, "tenant")  # a model_copy(update=...) skips the model's checks
    validate_label(scope.user_id, "user_id")
    return scope


def _serialized(method: Callable[..., T]) -> Callable[..., T]:
    """Run a read-check-write method whole under the write lock (re-entrant): what it read cannot
    change before it writes, so two supersedes of one fact cannot both win, a fact's entity keeps
    every source, and a forget cannot miss a write racing it."""
    @functools.wraps(method)
    def run(self: Memory, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)
    return run


class Memory:
    """Scoped episodic, semantic and graph memory over a record store and a vector index."""

    def __init__(
        self,
        records: RecordStore,
        index: VectorIndex,
        embedder: Embedder,
        sparse: Bm25Encoder | None = None,
        retrieval: RetrievalConfig | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        """`redactor`: secrets removed before any write (on by default; `Redactor(kinds=())` keeps all text)."""
        self.records = records
        self.redactor = redactor if redactor is not None else Redactor()
        self.index = index
        self.embedder = embedder
        self.sparse = sparse or Bm25Encoder()
        self.retrieval = retrieval or RetrievalConfig()
        self._lock = threading.RLock()  # writes and view builds, so a cached view never misses a write
        self.graphs = GraphCache(lambda s: (self.records.list(s, "entity"), self.records.list(s, "relation")), self._lock)
        self.timelines = TimelineCache(lambda s: self.records.list(s, "event"), self._lock)  # type: ignore[arg-type, return-value]
        self.retriever = Retriever(records, index, embedder, self.sparse, self.graphs, self.timelines)
        self.replayed_on_open = self.reconcile_journal()

    def close(self) -> None:
        self.index.flush()
        self.index.close()
        self.records.close()

    # ================================================================== write plumbing
    def _points(self, scope: Scope, records: Sequence[Record]) -> list[IndexPoint]:
        indexed = [r for r in records if _indexable(r)]
        if not indexed:
            return []
        texts = [r.index_text() for r in indexed]  # type: ignore[attr-defined]
        dense = self.embedder.embed_documents(texts)
        lexical = self._lexical_texts(scope, indexed, texts)
        points = []
        for record, text, vector in zip(indexed, lexical, dense, strict=True):
            if isinstance(record, Event):
                start, end, status = ts(record.time, OPEN_START), OPEN_END, "active"
            elif isinstance(record, Episode):
                start, end, status = ts(record.start, OPEN_START), OPEN_END, "active"
            elif isinstance(record, StoreItem):
                start, end, status = ts(record.created_at, OPEN_START), OPEN_END, "active"  # expiry is checked on the record
            else:
                assert isinstance(record, Fact)
                start, end, status = ts(record.valid_from, OPEN_START), ts(record.valid_to, OPEN_END), record.status
            points.append(IndexPoint(
                scope, record.kind, record.id, vector, self.sparse.embed_document(text), status, start, end,
                record_time(record).timestamp(),
            ))
        return points

    def _lexical_texts(self, scope: Scope, records: Sequence[Record], texts: list[str]) -> list[str]:
        """BM25 text: an event's text is prefixed with the turn before it in its thread."""
        events = {r.id: r for r in records if isinstance(r, Event)}
        if not events:
            return texts
        timeline = self.timelines.get(scope)
        timeline.add(list(events.values()))
        previous = {eid: timeline.previous(eid) for eid in events}
        stored = self.records.get_many(scope, "event", [p for p in previous.values() if p and p not in events])
        out = []
        for record, text in zip(records, texts, strict=True):
            prev = previous.get(record.id) if isinstance(record, Event) else None
            before = (events.get(prev) or stored.get(prev)) if prev else None
            out.append(f"{before.speaker}: {before.text}\n{text}" if before else text)  # type: ignore[attr-defined]
        return out

    def _parse(self, model: type[R], value: R | dict[str, Any]) -> R:
        """Validate a caller's record and strip its secrets, so what is returned is what is kept."""
        return redact_record(_coerce(model, value), self.redactor)  # type: ignore[return-value]

    def _write(self, scope: Scope, put: Sequence[Record] = (), delete: Sequence[tuple[RecordKind, str]] = ()) -> list[Record]:
        """Write as one logical operation; returns the records as kept (redacted)."""
        put = [redact_record(r, self.redactor) for r in put]  # every path, change sets and store items too
        try:
            with self._lock:
                self._write_through(scope, put, delete)
        except BaseException:
            self.graphs.drop(scope)  # caches may hold what never landed: rebuild from records
            self.timelines.drop(scope)
            raise
        return put

    def _write_through(self, scope: Scope, put: Sequence[Record], delete: Sequence[tuple[RecordKind, str]]) -> None:
        points = self._points(scope, put)
        entry = {
            "id": uuid.uuid4().hex, "tenant": scope.tenant, "user_id": scope.user_id,
            "keys": [[r.kind, r.id] for r in put] + [list(k) for k in delete],
        }
        self.records.write(scope, put=put, delete=delete, journal=entry)
        self.index.upsert(points)
        unindexed = [(r.kind, r.id) for r in put if r.kind in INDEXED_KINDS and not _indexable(r)]
        self.index.delete(scope, [k for k in delete if k[0] in INDEXED_KINDS] + unindexed)
        self.records.clear_journal(entry["id"])
        self._update_graph(scope, put, delete)
        if self.timelines.loaded(scope):
            self.timelines.get(scope).remove([rid for kind, rid in delete if kind == "event"])

    def _update_graph(self, scope: Scope, put: Sequence[Record], delete: Sequence[tuple[RecordKind, str]]) -> None:
        if not self.graphs.loaded(scope):
            return
        graph = self.graphs.get(scope)
        for kind, rid in delete:
            if kind == "entity":
                graph.remove_entity(rid)
            elif kind == "relation":
                graph.remove_relation(rid)
        for record in put:
            if isinstance(record, Entity):
                graph.add_entity(record)
            elif isinstance(record, Relation):
                graph.add_relation(record)

    def _require(self, scope: Scope, kind: RecordKind, record_id: str) -> Record:
        record = self.records.get(_check_scope(scope), kind, record_id)
        if record is None:
            raise RecordNotFoundError(f"no {kind} {shown(record_id)} in this scope")
        return record

    # ================================================================== episodic
    def add_event(self, scope: Scope, event: Event | dict[str, Any]) -> Event:
        return self.add_events(scope, [event])[0]

    @_serialized
    def add_events(self, scope: Scope, events: Iterable[Event | dict[str, Any]]) -> list[Event]:
        """Add messages. A message already stored is left as it was (replays change nothing);
        an id already used for a different message is refused: events are never rewritten."""
        given = [self._parse(Event, e) for e in events]
        stored: dict[str, Record] = dict(self.records.get_many(_check_scope(scope), "event", [e.id for e in given]))
        new: list[Event] = []
        for event in given:
            old = stored.get(event.id)
            if old is None:
                stored[event.id] = event
                new.append(event)
            elif not event.same_message(old):  # type: ignore[arg-type]
                raise InvalidRecordError(f"event id {event.id!r} is taken by a different message")
        timeline = self.timelines.get(scope)
        timeline.add(new)
        # A message that arrives out of order becomes the previous turn of one already
        # indexed, whose BM25 text quotes its previous turn: index that one again too.
        followers = {timeline.next(e.id) for e in new} - {e.id for e in new} - {None}
        refresh = self.records.get_many(scope, "event", sorted(followers)).values()  # type: ignore[arg-type]
        self._write(scope, put=[*new, *refresh])
        return [stored[e.id] for e in given]  # type: ignore[misc]

    @_serialized
    def add_episode(self, scope: Scope, episode: Episode | dict[str, Any]) -> Episode:
        parsed = self._parse(Episode, episode)
        self._write(_check_scope(scope), put=[parsed])
        return parsed

    def events(self, scope: Scope, thread_id: str | None = None) -> list[Event]:
        found = self.records.list(_check_scope(scope), "event", {"thread_id": thread_id} if thread_id else None)
        return sorted(found, key=lambda e: (e.time, e.id))  # type: ignore[attr-defined]

    # ================================================================== semantic + graph
    def _fact_links(self, scope: Scope, fact: Fact) -> list[Record]:
        """Entities and a relation for a fact with subject, predicate and object."""
        if not (fact.subject and fact.predicate and fact.object):
            return []
        subject = Entity(name=fact.subject, sources=fact.sources)
        obj = Entity(name=fact.object, sources=fact.sources)
        existing = self.records.get_many(scope, "entity", [subject.id, obj.id])
        merged = []
        for entity in (subject, obj):
            if old := existing.get(entity.id):
                entity = old.model_copy(update={"sources": sorted(set(old.sources) | set(fact.sources))})  # type: ignore[attr-defined]
            merged.append(entity)
        relation = Relation(
            id=f"rel_{fact.id}", subject_id=subject.id, predicate=fact.predicate, object_id=obj.id,
            fact_id=fact.id, valid_from=fact.valid_from, valid_to=fact.valid_to, sources=fact.sources,
        )
        return [*merged, relation]

    @_serialized
    def add_fact(self, scope: Scope, fact: Fact | dict[str, Any]) -> Fact:
        """Add a fact; with subject, predicate and object it also becomes a graph edge."""
        parsed = self._parse(Fact, fact)
        self._write(_check_scope(scope), put=[parsed, *self._fact_links(scope, parsed)])
        return parsed

    def get_fact(self, scope: Scope, fact_id: str) -> Fact:
        return self._require(scope, "fact", fact_id)  # type: ignore[return-value]

    def facts(self, scope: Scope, status: str | None = "active") -> list[Fact]:
        return self.records.list(_check_scope(scope), "fact", {"status": status} if status else None)  # type: ignore[return-value]

    @_serialized
    def update_fact(self, scope: Scope, fact_id: str, **changes: Any) -> Fact:
        """Edit a fact in place (a correction, not a change in the world: use supersede for that)."""
        old = self.get_fact(scope, fact_id)
        if {"id", "kind"} & changes.keys():
            raise InvalidRecordError("a fact's id and kind cannot change")
        updated = self._parse(Fact, {**old.model_dump(), **changes})
        links = self._fact_links(scope, updated)
        stale = [] if links else [("relation", r.id) for r in self.records.list(scope, "relation", {"fact_id": fact_id})]
        self._write(scope, put=[updated, *links], delete=stale)
        return updated

    def _close_fact(self, scope: Scope, fact: Fact, status: str, when: datetime, **extra: Any) -> list[Record]:
        end = fact.valid_to or when
        if fact.valid_from and end < fact.valid_from:
            end = fact.valid_from  # closed before it began (a retracted plan): an empty interval
        closed = fact.model_copy(update={"status": status, "valid_to": end, **extra})
        relations = self.records.list(scope, "relation", {"fact_id": fact.id})
        return [closed, *(r.model_copy(update={"valid_to": r.valid_to or end}) for r in relations)]

    @_serialized
    def supersede_fact(self, scope: Scope, old_id: str, new_fact: Fact | dict[str, Any]) -> Fact:
        """The world changed: close the old fact (and its edges) where the new one starts."""
        old = self.get_fact(scope, old_id)
        new = self._parse(Fact, new_fact)
        if old.status != "active":
            raise InvalidRecordError(f"fact {old_id!r} is {old.status}; only an active fact can be superseded")
        if new.id == old.id:
            raise InvalidRecordError("the new fact needs an id of its own")
        when = new.valid_from or now()
        if new.valid_from is None:
            new = new.model_copy(update={"valid_from": when})
        closed = self._close_fact(scope, old, "superseded", when, superseded_by=new.id)
        self._write(scope, put=[*closed, new, *self._fact_links(scope, new)])
        return new

    @_serialized
    def retract_fact(self, scope: Scope, fact_id: str) -> Fact:
        """The fact was wrong: it stops matching searches, its edges close, its record stays."""
        closed = self._close_fact(scope, self.get_fact(scope, fact_id), "retracted", now())
        self._write(scope, put=closed)
        return closed[0]  # type: ignore[return-value]

    @_serialized
    def upsert_entity(self, scope: Scope, entity: Entity | dict[str, Any]) -> Entity:
        """Create or update an entity; sources and aliases add to what is stored (provenance stays)."""
        parsed = self._parse(Entity, entity)
        old = self.records.get(_check_scope(scope), "entity", parsed.id)
        if old is not None:
            parsed = parsed.model_copy(update={
                "sources": sorted(set(old.sources) | set(parsed.sources)),  # type: ignore[attr-defined]
                "aliases": list(dict.fromkeys([*old.aliases, *parsed.aliases])),  # type: ignore[attr-defined]
            })
        self._write(scope, put=[parsed])
        return parsed

    @_serialized
    def add_relation(self, scope: Scope, relation: Relation | dict[str, Any]) -> Relation:
        parsed = self._parse(Relation, relation)
        ends = self.records.get_many(_check_scope(scope), "entity", [parsed.subject_id, parsed.object_id])
        missing = {parsed.subject_id, parsed.object_id} - ends.keys()
        if missing:
            raise RecordNotFoundError(f"relation names unknown entities {sorted(missing)}; upsert them first")
        self._write(scope, put=[parsed])
        return parsed

    @_serialized
    def apply(self, scope: Scope, changes: ChangeSet) -> list[Record]:
        """Write a whole change set as one logical operation: records, index, graph (and so the
        profile) land together or, after a crash, are finished by the journal replay."""
        _check_scope(scope)
        when = now()
        put: dict[tuple[str, str], Record] = {}

        def queue(records: Iterable[Record]) -> None:
            for record in records:
                key = (record.kind, record.id)
                old = put.get(key)
                if isinstance(record, Entity) and isinstance(old, Entity):  # two facts name it: keep both provenances
                    record = record.model_copy(update={
                        "sources": sorted(set(old.sources) | set(record.sources)),
                        "aliases": list(dict.fromkeys([*old.aliases, *record.aliases])),
                    })
                put[key] = record

        stored = self.records.get_many(scope, "fact", [*changes.retract, *(old for old, _ in changes.supersede)])
        for old_id, new in changes.supersede:
            old = stored.get(old_id)
            if old is None or old.status != "active":  # type: ignore[attr-defined]
                raise InvalidRecordError(f"fact {old_id!r} is not an active fact of this scope")
            if new.valid_from is None:
                new = new.model_copy(update={"valid_from": when})
            queue(self._close_fact(scope, old, "superseded", new.valid_from, superseded_by=new.id))  # type: ignore[arg-type]
            queue([new, *self._fact_links(scope, new)])
        for fact_id in changes.retract:
            if (old := stored.get(fact_id)) is None:
                raise RecordNotFoundError(f"no fact {fact_id!r} in this scope")
            queue(self._close_fact(scope, old, "retracted", when))  # type: ignore[arg-type]
        for fact in [*changes.add, *changes.update]:
            queue([fact, *self._fact_links(scope, fact)])
        existing = self.records.get_many(scope, "entity", [e.id for e in changes.entities])
        for entity in changes.entities:
            if old := existing.get(entity.id):
                entity = entity.model_copy(update={
                    "sources": sorted(set(old.sources) | set(entity.sources)),  # type: ignore[attr-defined]
                    "aliases": list(dict.fromkeys([*old.aliases, *entity.aliases])),  # type: ignore[attr-defined]
                    "entity_type": old.entity_type if entity.entity_type == "thing" else entity.entity_type,  # type: ignore[attr-defined]
                })
            queue([entity])
        queue([*changes.episodes, *changes.extra])
        if any(kind != "reflection" for kind, _ in changes.delete):
            raise InvalidRecordError("a change set deletes reflection records only; forget events to delete memories")
        return self._write(scope, put=list(put.values()), delete=[k for k in changes.delete if k not in put])

    def similar_facts(self, scope: Scope, texts: Sequence[str], k: int = 5) -> list[list[tuple[Fact, float]]]:
        """For each text, the k most similar active facts with their cosine similarity."""
        _check_scope(scope)
        if not texts:
            return []
        out = []
        for vector in self.embedder.embed_documents(list(texts)):
            hits = self.index.search_dense(IndexQuery(scope, limit=k, kinds=("fact",)), vector)
            found = self.records.get_many(scope, "fact", [h.record_id for h in hits])
            out.append([(found[h.record_id], h.score) for h in hits if h.record_id in found])  # type: ignore[misc]
        return out

    # ================================================================== reflection bookkeeping
    def reflections(self, scope: Scope, status: str | None = None) -> list[ReflectionRun]:
        runs = self.records.list(_check_scope(scope), "reflection", {"status": status} if status else None)
        return sorted(runs, key=lambda r: (r.created_at, r.id))  # type: ignore[return-value]

    def unreflected_events(self, scope: Scope, thread_id: str | None = None) -> list[Event]:
        """Events no finished reflection run covers, oldest first: what reflection still owes."""
        covered = {eid for run in self.reflections(scope) if run.reflected for eid in run.sources}
        return [e for e in self.events(scope, thread_id) if e.id not in covered]

    # ================================================================== adapters
    def adapters(self, scope: Scope, adapter_kind: str | None = None, status: str | None = None) -> list[AdapterRecord]:
        """The user's adapter records, newest first."""
        found = self.records.list(_check_scope(scope), "adapter")
        chosen = [
            a for a in found
            if (adapter_kind is None or a.adapter_kind == adapter_kind) and (status is None or a.status == status)  # type: ignore[attr-defined]
        ]
        return sorted(chosen, key=lambda a: (a.created_at, a.id), reverse=True)  # type: ignore[return-value]

    @_serialized
    def register_adapter(self, scope: Scope, adapter: AdapterRecord | dict[str, Any]) -> AdapterRecord:
        """Record a trained adapter (registered or rejected); its events must be this user's."""
        record = self._parse(AdapterRecord, adapter)
        found = self.records.get_many(_check_scope(scope), "event", record.sources)
        if missing := sorted(set(record.sources) - set(found)):
            raise RecordNotFoundError(f"adapter sources are not events of this scope: {missing[:5]}")
        self._write(scope, put=[record])
        return record

    @_serialized
    def delete_adapter(self, scope: Scope, adapter_id: str) -> AdapterRecord:
        """Delete one adapter: its record and its weights on disk."""
        record = self._require(scope, "adapter", adapter_id)
        self._write(scope, delete=[("adapter", adapter_id)])
        remove_weights([record])
        return record  # type: ignore[return-value]

    # ================================================================== feedback
    @_serialized
    def add_feedback(self, scope: Scope, feedback: Feedback | dict[str, Any]) -> Feedback:
        """Keep one piece of feedback; the exchange it names must be this user's."""
        record = self._parse(Feedback, feedback)
        wanted = [*record.sources, *([record.reply_event_id] if record.reply_event_id else [])]
        found = self.records.get_many(_check_scope(scope), "event", wanted)
        if missing := sorted(set(wanted) - set(found)):
            raise RecordNotFoundError(f"feedback names events that are not this user's: {missing[:5]}")
        if record.reply_event_id and record.reply_event_id not in record.sources:
            raise InvalidRecordError("the reply feedback names must be among its sources, so forgetting it forgets the feedback")
        gone = set(record.memory_ids)
        for kind in INDEXED_KINDS:
            gone -= set(self.records.get_many(scope, kind, sorted(gone)))
        if gone:  # a quoted memory was forgotten (or was never this user's): keep none of its text
            record = record.model_copy(update={"memory_ids": [m for m in record.memory_ids if m not in gone], "prompt": []})
        if self.records.get(scope, "feedback", record.id) is not None:
            raise InvalidRecordError(f"feedback {record.id!r} exists already; feedback is never rewritten")
        self._write(scope, put=[record])
        return record

    def feedback(self, scope: Scope, feedback_kind: str | None = None) -> list[Feedback]:
        """The user's feedback, oldest first."""
        found = self.records.list(_check_scope(scope), "feedback", {"feedback_kind": feedback_kind} if feedback_kind else None)
        return sorted(found, key=lambda f: (f.created_at, f.id))  # type: ignore[return-value]

    @_serialized
    def delete_feedback(self, scope: Scope, feedback_id: str) -> list[str]:
        """Delete one piece of feedback and every adapter trained on it; returns what was deleted."""
        self._require(scope, "feedback", feedback_id)
        doomed = [a for a in self.adapters(scope) if feedback_id in a.feedback_ids]
        self._write(scope, delete=[("feedback", feedback_id), *(("adapter", a.id) for a in doomed)])
        remove_weights(doomed)
        return [feedback_id, *(a.id for a in doomed)]

    # ================================================================== store items
    def put_items(self, scope: Scope, items: Sequence[StoreItem], delete_ids: Sequence[str] = ()) -> None:
        """Write and delete LangGraph store items of one scope in one logical write."""
        _check_scope(scope)
        for item in items:
            if not isinstance(item, StoreItem):
                raise InvalidRecordError(f"expected a StoreItem, got {type(item).__name__}")
        self._write(scope, put=list(items), delete=[("item", i) for i in delete_ids])

    def refresh_items(self, scope: Scope, item_ids: Sequence[str]) -> dict[str, StoreItem]:
        """Restart the TTL of the listed items still there and unexpired; returns them as stored.

        Read and written under the write lock, so a put or delete racing with a read's refresh
        is never undone by it. Expiry lives on the record alone: the index is untouched."""
        _check_scope(scope)
        with self._lock:
            stamp = now()
            found = self.records.get_many(scope, "item", list(item_ids)).values()
            fresh = {
                r.id: r.model_copy(update={"expires_at": stamp + timedelta(minutes=r.ttl_minutes)})
                for r in found if isinstance(r, StoreItem) and r.ttl_minutes and not r.expired(stamp)
            }
            if fresh:
                self.records.write(scope, put=list(fresh.values()))
            return fresh

    def sweep_items(self, scope: Scope) -> int:
        """Delete the scope's expired items (checked under the write lock); returns how many."""
        _check_scope(scope)
        with self._lock:
            stamp = now()
            doomed = [r.id for r in self.items(scope) if r.expired(stamp)]
            if doomed:
                self._write(scope, delete=[("item", i) for i in doomed])
            return len(doomed)

    def items(self, scope: Scope) -> list[StoreItem]:
        """The scope's store items, expired ones included (the store decides what to show)."""
        return self.records.list(_check_scope(scope), "item")  # type: ignore[return-value]

    def graph(self, scope: Scope) -> ScopeGraph:
        return self.graphs.get(_check_scope(scope))

    def entity_id(self, name: str) -> str:
        return entity_key(name)

    def profile(self, scope: Scope) -> Profile:
        """The profile from the facts about the user: their own messages' speakers are who they are."""
        facts = self.facts(scope)
        sources = self.records.get_many(scope, "event", sorted({s for f in facts for s in f.sources}))
        return derive_profile(facts, profile_owners(scope.user_id, sources.values()))  # type: ignore[arg-type]

    # ================================================================== search
    def search(
        self,
        scope: Scope,
        query: str,
        *,
        kinds: Sequence[RecordKind] | None = None,
        k: int = 10,
        as_of: datetime | None = None,
        token_budget: int | None = None,
        config: RetrievalConfig | None = None,
    ) -> SearchResult:
        """Hybrid retrieval for one user: ranked items with scores, stages and sources."""
        _check_scope(scope)
        if as_of is not None and not isinstance(as_of, datetime):
            raise InvalidRecordError(f"as_of must be a datetime, got {type(as_of).__name__}")
        for name, value in (("k", k), ("token_budget", token_budget)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidRecordError(f"{name} must be an integer, got {type(value).__name__}")
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)  # naive times are UTC, as in the models
        check_text(query, "query")
        if k is None or not 1 <= k <= 1000:
            raise InvalidRecordError("k must be between 1 and 1000")
        if token_budget is not None and token_budget < 1:
            raise InvalidRecordError("token_budget must be positive")
        bad_kinds = set(kinds or ()) - set(INDEXED_KINDS)
        if bad_kinds:
            raise InvalidRecordError(f"searchable kinds are {INDEXED_KINDS}, not {sorted(bad_kinds)}")
        return self.retriever.search(scope, query, kinds, k, as_of, token_budget, config or self.retrieval)

    # ================================================================== forget / export
    def forget_event(self, scope: Scope, event_id: str) -> ForgetReceipt:
        """Forget one message and everything that rests on it alone."""
        with self._lock:  # the cascade is planned and written under one lock: a concurrent write cannot slip between
            self._require(scope, "event", event_id)
            plan = plan_event_cascade(
                {event_id}, self.facts(scope, status=None), self.records.list(scope, "relation"),
                self.records.list(scope, "entity"), self.records.list(scope, "episode"),
                self.records.list(scope, "reflection"),  # type: ignore[arg-type]
                self.adapters(scope),
                self.feedback(scope),
            )
            doomed_adapters = [a for a in self.adapters(scope) if ("adapter", a.id) in plan.delete]
            # The next turn's BM25 text quotes this one: re-index it once this one is gone.
            timeline = self.timelines.get(scope)
            following = timeline.next(event_id)
            timeline.remove([event_id])
            refresh = list(self.records.get_many(scope, "event", [following] if following else []).values())
            self._write(scope, put=[*plan.update, *refresh], delete=plan.delete)
        remove_weights(doomed_adapters)
        deleted: dict[str, int] = {}
        for kind, _ in plan.delete:
            deleted[kind] = deleted.get(kind, 0) + 1
        gone_indexed = [k for k in plan.delete if k[0] in INDEXED_KINDS]
        index_keys = self.index.keys(scope)
        residue = {
            "records": sum(self.records.get(scope, kind, rid) is not None for kind, rid in plan.delete),
            "index": sum(tuple(k) in index_keys for k in gone_indexed),
            "sources": sum(
                event_id in rec.sources  # type: ignore[attr-defined]
                for kind in ("fact", "relation", "entity", "episode", "reflection", "adapter", "feedback")
                for rec in self.records.list(scope, kind)
            ),
            "adapter_weights": weights_left(doomed_adapters),
        }
        return ForgetReceipt(
            scope=scope, target=f"event:{event_id}", records_deleted=deleted, records_updated=len(plan.update),
            index_points_deleted=len(gone_indexed),
            graph_nodes_deleted=deleted.get("entity", 0), graph_edges_deleted=deleted.get("relation", 0),
            residue=residue,
        )

    @_serialized
    def forget_user(self, scope: Scope) -> ForgetReceipt:
        """Delete everything of one user from every store and prove nothing is left."""
        _check_scope(scope)
        all_records = {kind: self.records.list(scope, kind) for kind in RECORD_KINDS}
        graph = self.graphs.get(scope)
        nodes, edges = graph.graph.number_of_nodes(), graph.graph.number_of_edges()
        index_before = self.index.count(scope)
        entry = {"id": uuid.uuid4().hex, "tenant": scope.tenant, "user_id": scope.user_id, "delete_scope": True, "keys": []}
        unfinished = [j["id"] for j in self.records.journal() if (j["tenant"], j["user_id"]) == (scope.tenant, scope.user_id)]
        try:
            self.records.write(
                scope, delete=[(r.kind, r.id) for recs in all_records.values() for r in recs],
                journal=entry, drop_journal=unfinished,
            )
            self.index.delete_scope(scope)
            self.index.purge()  # deleted points leave the index files too; replayed if a crash cuts it
            self.records.clear_journal(entry["id"])
        finally:
            self.graphs.drop(scope)
            self.timelines.drop(scope)
        remove_weights(all_records["adapter"])
        self.records.compact()
        residue = {
            "records": self.records.count(scope),
            "index": self.index.count(scope),
            "graph": int(self.graphs.loaded(scope)),
            "timeline": int(self.timelines.loaded(scope)),
            "journal": sum(1 for j in self.records.journal() if (j["tenant"], j["user_id"]) == (scope.tenant, scope.user_id)),
            "adapter_weights": weights_left(all_records["adapter"]),
        }
        return ForgetReceipt(
            scope=scope, target="user", records_deleted={k: len(v) for k, v in all_records.items()},
            index_points_deleted=index_before, graph_nodes_deleted=nodes, graph_edges_deleted=edges, residue=residue,
        )

    def export(self, scope: Scope) -> dict[str, Any]:
        """Everything personagraph holds on one user, as JSON-ready data."""
        _check_scope(scope)
        return {
            "scope": scope.model_dump(),
            "exported_at": now().isoformat(),
            "records": {kind: [r.model_dump(mode="json") for r in self.records.list(scope, kind)] for kind in RECORD_KINDS},
            "profile": self.profile(scope).model_dump(mode="json"),
        }

    # ================================================================== repair
    def reconcile_journal(self) -> int:
        """Replay unfinished writes (records landed, index may not have): returns entries repaired."""
        entries = self.records.journal()
        for entry in entries:
            scope = Scope(tenant=entry["tenant"], user_id=entry["user_id"])
            if entry.get("delete_scope"):
                self.index.delete_scope(scope)
                self.index.purge()
            else:
                self._sync_keys(scope, {(k, rid) for k, rid in entry["keys"]})
            self.records.clear_journal(entry["id"])
            self.graphs.drop(scope)
        return len(entries)

    def _sync_keys(self, scope: Scope, keys: set[Key]) -> None:
        present = self.retriever.hydrate(scope, {k for k in keys if k[0] in INDEXED_KINDS})
        self.index.upsert(self._points(scope, list(present.values())))
        self.index.delete(scope, [k for k in keys if k[0] in INDEXED_KINDS and not (k in present and _indexable(present[k]))])

    def reconcile(self, scope: Scope) -> dict[str, int]:
        """Full check of one scope: index what is missing, drop index points without records."""
        _check_scope(scope)
        record_keys = {(r.kind, r.id) for kind in INDEXED_KINDS for r in self.records.list(scope, kind) if _indexable(r)}
        index_keys = self.index.keys(scope)
        missing, orphans = record_keys - index_keys, index_keys - record_keys
        self._sync_keys(scope, missing | orphans)
        self.graphs.drop(scope)
        return {"indexed": len(missing), "orphans_removed": len(orphans)}

    def reindex(self, scope: Scope) -> int:
        """Rebuild one scope's index from its records (e.g. after changing the embedder)."""
        _check_scope(scope)
        self.index.delete_scope(scope)
        recs = [r for kind in INDEXED_KINDS for r in self.records.list(scope, kind) if _indexable(r)]
        for start in range(0, len(recs), 256):
            self.index.upsert(self._points(scope, recs[start:start + 256]))
        self.graphs.drop(scope)
        return len(recs)

    def stats(self) -> dict[str, Any]:
        scopes = self.records.scopes()
        per_kind = {kind: sum(self.records.count(s, kind) for s in scopes) for kind in RECORD_KINDS}
        pending = {
            status: sum(len(self.records.list(s, "reflection", {"status": status})) for s in scopes)
            for status in ("failed", "deferred")
        }
        return {"users": len(scopes), "records": per_kind, "index_points": self.index.count(), "reflection_pending": pending}

    # ================================================================== async
    async def aadd_event(self, scope: Scope, event: Event | dict[str, Any]) -> Event:
        return await asyncio.to_thread(self.add_event, scope, event)

    async def aadd_episode(self, scope: Scope, episode: Episode | dict[str, Any]) -> Episode:
        return await asyncio.to_thread(self.add_episode, scope, episode)

    async def aupdate_fact(self, scope: Scope, fact_id: str, **changes: Any) -> Fact:
        return await asyncio.to_thread(lambda: self.update_fact(scope, fact_id, **changes))

    async def asupersede_fact(self, scope: Scope, old_id: str, new_fact: Fact | dict[str, Any]) -> Fact:
        return await asyncio.to_thread(self.supersede_fact, scope, old_id, new_fact)

    async def aretract_fact(self, scope: Scope, fact_id: str) -> Fact:
        return await asyncio.to_thread(self.retract_fact, scope, fact_id)

    async def aupsert_entity(self, scope: Scope, entity: Entity | dict[str, Any]) -> Entity:
        return await asyncio.to_thread(self.upsert_entity, scope, entity)

    async def aadd_relation(self, scope: Scope, relation: Relation | dict[str, Any]) -> Relation:
        return await asyncio.to_thread(self.add_relation, scope, relation)

    async def areconcile(self, scope: Scope) -> dict[str, int]:
        return await asyncio.to_thread(self.reconcile, scope)

    async def aadd_events(self, scope: Scope, events: Iterable[Event | dict[str, Any]]) -> list[Event]:
        return await asyncio.to_thread(self.add_events, scope, list(events))

    async def aadd_fact(self, scope: Scope, fact: Fact | dict[str, Any]) -> Fact:
        return await asyncio.to_thread(self.add_fact, scope, fact)

    async def asearch(self, scope: Scope, query: str, **kwargs: Any) -> SearchResult:
        return await asyncio.to_thread(lambda: self.search(scope, query, **kwargs))

    async def aprofile(self, scope: Scope) -> Profile:
        return await asyncio.to_thread(self.profile, scope)

    async def aforget_event(self, scope: Scope, event_id: str) -> ForgetReceipt:
        return await asyncio.to_thread(self.forget_event, scope, event_id)

    async def aforget_user(self, scope: Scope) -> ForgetReceipt:
        return await asyncio.to_thread(self.forget_user, scope)

    async def aexport(self, scope: Scope) -> dict[str, Any]:
        return await asyncio.to_thread(self.export, scope)
