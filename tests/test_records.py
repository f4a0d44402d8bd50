"""What RecordStore promises, checked on every backend it ships: in-memory, SQLite and a
real PostgreSQL server. The same spec runs on all three so the backends cannot drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import (
    RECORD_KINDS,
    Entity,
    Episode,
    Event,
    Fact,
    Record,
    Relation,
    entity_key,
)
from personagraph.memory.records import RecordStore
from personagraph.memory.scope import Scope
from postgres_server import create_database, postgres_url  # noqa: F401  (fixture)

Opener = Callable[[], RecordStore]
ALICE = Scope(user_id="alice")
BOB = Scope(user_id="bob")
T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


# ----------------------------------------------------------------------------- fixtures
def _backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """A way to open this test's storage; opening again reaches the same data."""
    if name == "sqlite":
        path = tmp_path / "records.sqlite"
        return lambda: RecordStore.sqlite(path)
    if name == "postgres":
        url = create_database(request.getfixturevalue("postgres_url"), f"t_{uuid.uuid4().hex}")
        return lambda: RecordStore.postgres(url)
    store = RecordStore.in_memory()
    return lambda: store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one backend (a fresh database per test) and closes them all after."""
    backend = _backend(request.param, request, tmp_path)
    opened: list[RecordStore] = []

    def open_() -> RecordStore:
        opened.append(backend())
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def records(open_store: Opener) -> RecordStore:
    return open_store()


durable = pytest.mark.parametrize("open_store", ["sqlite", "postgres"], indirect=True)
# InMemoryStore keeps every namespace it was ever asked about, even once empty, and
# RecordStore.scopes() reports those as users. Strict, so the fix flips these to failures.
live_scopes_only = pytest.mark.parametrize(
    "open_store", ["memory", "sqlite", "postgres"], indirect=True
)


# ------------------------------------------------------------------------------ helpers
def one_of_each() -> list[Record]:
    """One record of every kind, with non-default values so a lossy round-trip shows."""
    event = Event(
        speaker="Alice", text="I moved to Lisbon. Ünïcødé ✓", time=T0, thread_id="t1",
        caption="a tram", metadata={"source": "chat"},
    )
    lisbon = Entity(name="Lisbon", entity_type="place", aliases=["Lisboa"], sources=[event.id])
    fact = Fact(
        text="Alice lives in Lisbon", fact_kind="attribute", subject="alice", predicate="lives_in",
        object="Lisbon", confidence=0.8, valid_from=T0, sources=[event.id],
    )
    return [
        event,
        Episode(
            summary="Alice talked about moving", start=T0, end=T0 + timedelta(hours=1),
            thread_id="t1", sources=[event.id],
        ),
        fact,
        lisbon,
        Relation(
            subject_id=entity_key("Alice"), predicate="lives_in", object_id=lisbon.id,
            fact_id=fact.id, valid_from=T0, sources=[event.id],
        ),
    ]


def facts(*statuses: str) -> list[Fact]:
    return [Fact(id=f"fct_{i}", text=f"fact {i}", status=status) for i, status in enumerate(statuses)]


def by_id(found: Sequence[Record]) -> dict[str, Record]:
    return {record.id: record for record in found}


def everything(store: RecordStore, scope: Scope) -> dict[str, Record]:
    return {r.id: r for kind in RECORD_KINDS for r in store.list(scope, kind)}


def fail_after_statements(monkeypatch: pytest.MonkeyPatch, store: RecordStore) -> None:
    """Make writes run all their SQL, then hit a real database error in the same transaction."""
    prepare = store.store._prepare_batch_PUT_queries

    def prepare_then_fail(put_ops: Any) -> tuple[list[tuple[str, Sequence[Any]]], None]:
        queries, embedding_request = prepare(put_ops)
        assert embedding_request is None, "records are stored unindexed"
        return [*queries, ("SELECT * FROM no_such_table", [])], None

    monkeypatch.setattr(store.store, "_prepare_batch_PUT_queries", prepare_then_fail)


# ---------------------------------------------------------------------------- round trip
def test_every_kind_round_trips_unchanged(records: RecordStore) -> None:
    written = one_of_each()
    records.write(ALICE, put=written)

    for record in written:
        assert records.get(ALICE, record.kind, record.id) == record
        assert records.list(ALICE, record.kind) == [record]
        assert records.get_many(ALICE, record.kind, [record.id, "missing"]) == {record.id: record}
    assert records.count(ALICE) == len(written)


def test_get_of_a_missing_record_is_none(records: RecordStore) -> None:
    assert records.get(ALICE, "fact", "fct_missing") is None
    assert records.list(ALICE, "fact") == []


def test_put_of_an_existing_id_replaces_it(records: RecordStore) -> None:
    records.write(ALICE, put=[Fact(id="fct_1", text="likes tea")])
    replacement = Fact(id="fct_1", text="likes coffee", status="superseded")
    records.write(ALICE, put=[replacement])

    assert records.get(ALICE, "fact", "fct_1") == replacement
    assert records.count(ALICE, "fact") == 1


def test_list_filters_on_a_field(records: RecordStore) -> None:
    records.write(ALICE, put=facts("active", "superseded", "active", "retracted"))

    assert set(by_id(records.list(ALICE, "fact", {"status": "active"}))) == {"fct_0", "fct_2"}
    assert set(by_id(records.list(ALICE, "fact", {"status": "retracted"}))) == {"fct_3"}


def test_list_pages_through_more_than_one_page(records: RecordStore) -> None:
    """Listing reads in pages of 1000; records written together tie on updated_at and must not repeat."""
    events = [Event(speaker="alice", text=f"message {i}", time=T0 + timedelta(seconds=i)) for i in range(2_345)]
    records.write(ALICE, put=events)

    listed = [record.id for record in records.list(ALICE, "event")]
    assert sorted(listed) == sorted(event.id for event in events)
    assert records.count(ALICE, "event") == 2_345


# ------------------------------------------------------------------------------- scoping
def test_a_users_records_stay_in_their_scope(records: RecordStore) -> None:
    near_alice = Scope(user_id="alice-2")
    alices = one_of_each()
    records.write(ALICE, put=alices)
    records.write(BOB, put=facts("active"))

    assert set(everything(records, BOB)) == {"fct_0"}
    assert everything(records, near_alice) == {}
    assert everything(records, Scope(user_id="Alice")) == {}  # labels are case-sensitive everywhere
    assert everything(records, Scope(user_id="ali")) == {}  # and never prefixes of one another
    assert records.count(BOB) == 1 and records.count(near_alice) == 0
    assert records.count(ALICE, "fact") == 1
    assert records.get(BOB, "event", alices[0].id) is None
    assert set(records.scopes()) == {ALICE, BOB}


def test_the_same_id_in_two_scopes_is_two_records(records: RecordStore) -> None:
    records.write(ALICE, put=[Fact(id="fct_1", text="alice's")])
    records.write(BOB, put=[Fact(id="fct_1", text="bob's")])
    records.write(BOB, delete=[("fact", "fct_1")])

    assert records.get(ALICE, "fact", "fct_1").text == "alice's"
    assert records.get(BOB, "fact", "fct_1") is None


def test_tenants_separate_users_with_the_same_id(records: RecordStore) -> None:
    other = Scope(tenant="acme", user_id="alice")
    records.write(other, put=facts("active"))

    assert records.count(ALICE) == 0
    assert records.scopes() == [other]


# ------------------------------------------------------------------------------- deletes
def test_delete_removes_only_what_it_names(records: RecordStore) -> None:
    records.write(ALICE, put=facts("active", "active", "active"))
    records.write(ALICE, delete=[("fact", "fct_0"), ("fact", "fct_2"), ("event", "evt_never_written")])

    assert set(by_id(records.list(ALICE, "fact"))) == {"fct_1"}


def test_put_and_delete_in_one_write(records: RecordStore) -> None:
    records.write(ALICE, put=facts("active"))
    records.write(ALICE, put=[Fact(id="fct_new", text="new")], delete=[("fact", "fct_0")])

    assert set(by_id(records.list(ALICE, "fact"))) == {"fct_new"}


@live_scopes_only
def test_a_user_with_no_records_left_has_no_scope(records: RecordStore) -> None:
    records.write(ALICE, put=facts("active"))
    records.write(ALICE, delete=[("fact", "fct_0")])

    assert records.scopes() == []


@live_scopes_only
def test_reading_a_scope_does_not_create_it(records: RecordStore) -> None:
    records.get(ALICE, "fact", "fct_0")
    records.get_many(BOB, "event", ["evt_0"])
    records.write(BOB, delete=[("event", "evt_0")])

    assert records.scopes() == []


# ------------------------------------------------------------------------------- journal
def test_journal_entries_land_with_the_write_and_clear(records: RecordStore) -> None:
    entry = {"id": "j1", "user_id": "alice", "keys": [["fact", "fct_0"]]}
    records.write(ALICE, put=facts("active"), journal=entry)
    records.write(ALICE, journal={"id": "j2", "keys": []})

    assert sorted(records.journal(), key=lambda e: e["id"]) == [entry, {"id": "j2", "keys": []}]
    records.clear_journal("j1")
    assert records.journal() == [{"id": "j2", "keys": []}]
    assert records.scopes() == [ALICE], "the journal is not a user's scope"


# ---------------------------------------------------------------------------- durability
@durable
def test_records_and_journal_survive_reopening(open_store: Opener) -> None:
    first = open_store()
    written = one_of_each()
    first.write(ALICE, put=written, journal={"id": "j1"})
    first.close()

    reopened = open_store()
    assert everything(reopened, ALICE) == by_id(written)
    assert reopened.journal() == [{"id": "j1"}]
    assert reopened.scopes() == [ALICE]


# ------------------------------------------------------------------------------ atomicity
@durable
def test_a_write_that_fails_midway_leaves_nothing(open_store: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    records = open_store()
    records.write(ALICE, put=facts("active"))
    fail_after_statements(monkeypatch, records)

    with pytest.raises(Exception, match="no_such_table"):
        records.write(ALICE, put=one_of_each(), delete=[("fact", "fct_0")], journal={"id": "j1"})
    monkeypatch.undo()

    assert set(everything(records, ALICE)) == {"fct_0"}
    assert records.journal() == []
    assert set(everything(open_store(), ALICE)) == {"fct_0"}, "another connection sees the same"


def test_a_journal_that_is_not_json_is_refused_before_anything_is_written(open_store: Opener) -> None:
    records = open_store()
    records.write(ALICE, put=facts("active"))

    with pytest.raises(InvalidRecordError, match="not JSON"):
        records.write(ALICE, put=facts("active", "active"), delete=[("fact", "fct_0")], journal={"id": "j1", "bad": {1, 2}})

    assert set(by_id(records.list(ALICE, "fact"))) == {"fct_0"}
    assert records.journal() == []


@durable
def test_the_store_still_works_after_a_failed_write(open_store: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    records = open_store()
    fail_after_statements(monkeypatch, records)
    with pytest.raises(Exception, match="no_such_table"):
        records.write(ALICE, put=facts("active"))
    monkeypatch.undo()

    records.write(ALICE, put=facts("active"))
    assert records.count(ALICE) == 1


def test_a_non_record_is_rejected_and_nothing_is_written(records: RecordStore) -> None:
    with pytest.raises(InvalidRecordError, match="dict"):
        records.write(ALICE, put=[*facts("active"), {"kind": "fact", "id": "fct_9", "text": "raw"}], journal={"id": "j1"})

    assert records.count(ALICE) == 0
    assert records.journal() == []
