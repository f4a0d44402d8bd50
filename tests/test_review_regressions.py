"""Behaviours a code review found missing; each test names the scenario it guards."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from personagraph.memory import (
    Entity,
    Event,
    Fact,
    IngestFormatError,
    InvalidRecordError,
    InvalidScopeError,
    Memory,
    Scope,
)
from personagraph.memory.ingest import read_jsonl_messages

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
BM25_ONLY = {"dense": False, "graph": False, "recency": False, "neighbours": False}


def at(minutes: int, text: str) -> Event:
    return Event(speaker="alice", text=text, time=T0 + timedelta(minutes=minutes))


def bm25_texts(memory: Memory, scope: Scope, query: str) -> list[str]:
    config = memory.retrieval.model_copy(update=BM25_ONLY)
    return [item.text for item in memory.search(scope, query, config=config).items]


def test_a_forgotten_message_that_arrived_late_leaves_no_words_in_the_index(memory: Memory, alice: Scope) -> None:
    secret = at(0, "my diagnosis is narcolepsy")
    memory.add_events(alice, [secret, at(20, "anyway, the weather is nice")])
    memory.add_events(alice, [at(10, "I told my boss yesterday")])  # arrives after the turn that follows it

    assert memory.forget_event(alice, secret.id).complete
    assert bm25_texts(memory, alice, "narcolepsy diagnosis") == []


def test_replaying_a_message_keeps_the_stored_one_and_a_reused_id_is_refused(memory: Memory, alice: Scope) -> None:
    first = memory.add_events(alice, [Event(id="m1", speaker="alice", text="I live in Lisbon", time=T0)])
    again = memory.add_events(alice, [Event(id="m1", speaker="alice", text="I live in Lisbon", time=T0 + timedelta(days=1))])
    assert again == first

    with pytest.raises(InvalidRecordError, match="taken by a different message"):
        memory.add_events(alice, [Event(id="m1", speaker="alice", text="I live in Porto", time=T0)])
    assert [e.text for e in memory.events(alice)] == ["I live in Lisbon"]


def test_the_same_instant_written_three_ways_is_one_event() -> None:
    texts = {"speaker": "a", "text": "hello"}
    ids = {
        Event(**texts, time="2024-01-01T10:00:00Z").id,
        Event(**texts, time=datetime(2024, 1, 1, 11, 0, tzinfo=timezone(timedelta(hours=1)))).id,
        Event(**texts, time=datetime(2024, 1, 1, 10, 0)).id,
    }
    assert len(ids) == 1


def test_ingesting_an_untimed_file_twice_adds_nothing(memory: Memory, alice: Scope, tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"speaker": "alice", "text": "I adopted a cat"}\n{"speaker": "alice", "text": "Her name is Miso"}\n')
    memory.add_events(alice, read_jsonl_messages(chat))
    memory.add_events(alice, read_jsonl_messages(chat))
    assert len(memory.events(alice)) == 2


def test_a_file_that_is_not_utf8_is_a_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"speaker": "a", "text": "café"}\n'.encode("latin-1"))
    with pytest.raises(IngestFormatError, match="not UTF-8"):
        read_jsonl_messages(bad)


def test_upserting_an_entity_keeps_its_sources_so_forgetting_them_removes_it(memory: Memory, alice: Scope) -> None:
    (told,) = memory.add_events(alice, [at(0, "my ex is Jordan Blake")])
    memory.add_fact(alice, Fact(text="Alice's ex is Jordan Blake", subject="Alice", predicate="ex", object="Jordan Blake", sources=[told.id]))
    memory.upsert_entity(alice, Entity(name="Jordan Blake", entity_type="person", aliases=["JB"]))

    stored = memory.records.get(alice, "entity", memory.entity_id("Jordan Blake"))
    assert stored.sources == [told.id] and stored.aliases == ["JB"] and stored.entity_type == "person"
    receipt = memory.forget_event(alice, told.id)
    assert receipt.complete
    assert memory.records.get(alice, "entity", memory.entity_id("Jordan Blake")) is None


def test_only_an_active_fact_can_be_superseded(memory: Memory, alice: Scope) -> None:
    wrong = memory.add_fact(alice, Fact(text="Alice lives in Rome", valid_from=T0))
    memory.retract_fact(alice, wrong.id)
    with pytest.raises(InvalidRecordError, match="retracted"):
        memory.supersede_fact(alice, wrong.id, Fact(text="Alice lives in Milan"))
    live = memory.add_fact(alice, Fact(text="Alice lives in Oslo", valid_from=T0))
    with pytest.raises(InvalidRecordError, match="id of its own"):
        memory.supersede_fact(alice, live.id, Fact(id=live.id, text="Alice lives in Bergen"))
    past = memory.search(alice, "where does Alice live", kinds=["fact"], as_of=T0 + timedelta(days=1))
    assert wrong.id not in [item.id for item in past.items]


def test_a_retraction_whose_index_write_failed_is_still_honoured_by_search(
    memory: Memory, alice: Scope, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fact = memory.add_fact(alice, Fact(text="Alice is allergic to shellfish"))
    real = memory.index.upsert
    monkeypatch.setattr(memory.index, "upsert", lambda points: (_ for _ in ()).throw(RuntimeError("index down")))
    with pytest.raises(RuntimeError):
        memory.retract_fact(alice, fact.id)
    monkeypatch.setattr(memory.index, "upsert", real)

    assert memory.get_fact(alice, fact.id).status == "retracted"
    assert fact.id not in [item.id for item in memory.search(alice, "shellfish allergy").items]


@pytest.mark.parametrize("kwargs", [{"as_of": "2024-01-01"}, {"k": "5"}, {"k": 2.5}, {"k": True}, {"token_budget": "10"}])
def test_search_arguments_of_the_wrong_type_are_typed_errors(memory: Memory, alice: Scope, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecordError):
        memory.search(alice, "anything", **kwargs)


@pytest.mark.parametrize("fields", [{"tenant": "acme"}, {"user_id": "bob", "agent_id": "travel"}])
def test_a_scope_is_exactly_tenant_and_user(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidScopeError):
        Scope(**fields)


def test_a_scope_altered_behind_validation_is_refused(memory: Memory, alice: Scope) -> None:
    with pytest.raises(InvalidScopeError):
        memory.events(alice.model_copy(update={"user_id": "alice/../bob"}))


def test_writers_and_readers_on_threads_do_not_trip_over_each_other(memory: Memory, alice: Scope, bob: Scope) -> None:
    errors: list[BaseException] = []

    def guarded(work) -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    long_texts = [f"message {n} " + "about the garden and the tomatoes " * (n % 40) for n in range(30)]
    writers = [
        threading.Thread(target=guarded, args=(lambda s=s: memory.add_events(s, [at(n, t) for n, t in enumerate(long_texts)]),))
        for s in (alice, bob)
    ]
    readers = [threading.Thread(target=guarded, args=(lambda: [memory.search(alice, "tomatoes") for _ in range(15)],))]
    for thread in writers + readers:
        thread.start()
    for thread in writers + readers:
        thread.join()

    assert errors == []
    assert len(memory.events(alice)) == len(memory.events(bob)) == 30
    assert memory.index.count(alice) == memory.index.count(bob) == 30


def test_forgetting_the_message_behind_a_change_brings_back_what_was_true_before(memory: Memory, alice: Scope) -> None:
    (moved,) = memory.add_events(alice, [at(0, "I moved to Porto last week")])
    lisbon = memory.add_fact(alice, Fact(text="Alice lives in Lisbon", subject="Alice", predicate="lives_in", object="Lisbon", valid_from=T0 - timedelta(days=400)))
    memory.supersede_fact(alice, lisbon.id, Fact(text="Alice lives in Porto", subject="Alice", predicate="lives_in", object="Porto", valid_from=T0, sources=[moved.id]))

    assert memory.forget_event(alice, moved.id).complete

    restored = memory.get_fact(alice, lisbon.id)
    assert (restored.status, restored.valid_to, restored.superseded_by) == ("active", None, None)
    assert memory.profile(alice).location.value == "Lisbon"
    graph = memory.graph(alice)
    assert [r.object_id for r in graph.neighbours(memory.entity_id("Alice"))] == [memory.entity_id("Lisbon")]
    assert [item.id for item in memory.search(alice, "Where does Alice live?", kinds=["fact"]).items] == [lisbon.id]
