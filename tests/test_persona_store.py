"""PersonaStore's own promises, beyond LangGraph's store contract (tests/test_store_conformance.py):
namespaces are scopes, a user's records show through it, and nothing crosses users."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, InvalidNamespaceError, PutOp
from personagraph.memory import Memory, Scope
from personagraph.memory.errors import InvalidRecordError, InvalidScopeError
from personagraph.memory.persona_store import PersonaStore
from personagraph.memory.store_namespaces import NamespaceLayout


@pytest.fixture
def store(memory: Memory) -> PersonaStore:
    return PersonaStore(memory)


def _lisbon(memory: Memory, scope: Scope) -> str:
    event = memory.add_event(scope, {"speaker": scope.user_id, "text": "I moved to Lisbon last month"})
    fact = memory.add_fact(scope, {
        "text": f"{scope.user_id} lives in Lisbon", "sources": [event.id],
        "subject": scope.user_id, "predicate": "lives_in", "object": "Lisbon",
    })
    return fact.id


def test_items_live_in_the_scope_the_namespace_names(store: PersonaStore, memory: Memory, alice: Scope, bob: Scope) -> None:
    store.put(("alice", "notes"), "n1", {"text": "Alice bakes sourdough every Sunday"})
    store.put(("bob", "notes"), "n1", {"text": "Bob bakes rye bread"})
    assert [i.value["text"] for i in memory.items(alice)] == ["Alice bakes sourdough every Sunday"]
    assert [i.value["text"] for i in memory.items(bob)] == ["Bob bakes rye bread"]
    found = store.search(("alice",), query="bread baking")
    assert {i.namespace[0] for i in found} == {"alice"}
    assert memory.search(alice, "sourdough").items[0].kind == "item"  # the memory's own search sees items


def test_other_layouts_read_the_user_elsewhere(memory: Memory, alice: Scope) -> None:
    store = PersonaStore(memory, layout=NamespaceLayout(user_at=1))
    store.put(("memories", "alice"), "m", {"content": "prefers tea"})
    assert memory.items(alice)[0].namespace == ["memories", "alice"]
    with pytest.raises(InvalidNamespaceError, match="names no user"):
        store.put(("memories",), "m", {"content": "whose?"})
    tenants = PersonaStore(memory, layout=NamespaceLayout(user_at=1, tenant_at=0))
    tenants.put(("acme", "alice"), "m", {"content": "acme's alice"})
    assert memory.items(Scope(tenant="acme", user_id="alice"))[0].value == {"content": "acme's alice"}
    with pytest.raises(InvalidScopeError):
        NamespaceLayout(user_at=0, tenant_at=1)


def test_raw_ids_are_hashed_into_labels(store: PersonaStore, memory: Memory) -> None:
    store.put(("alice@example", "notes"), "n", {"text": "hi"})
    (scope,) = memory.records.scopes()
    assert scope.user_id.startswith("id-") and "@" not in scope.user_id
    assert store.get(("alice@example", "notes"), "n").value == {"text": "hi"}
    assert store.list_namespaces() == [("alice@example", "notes")]


def test_facts_events_and_profile_show_through(store: PersonaStore, memory: Memory, alice: Scope, bob: Scope) -> None:
    fact_id = _lisbon(memory, alice)
    assert store.get(("alice", "facts"), fact_id).value["text"] == "alice lives in Lisbon"
    assert store.get(("bob", "facts"), fact_id) is None
    assert store.get(("alice", "profile"), "location").value["value"]["value"] == "Lisbon"
    assert set(store.list_namespaces(prefix=("alice",))) == {("alice", "events"), ("alice", "facts"), ("alice", "profile")}
    hits = store.search(("alice",), query="Where does she live now?")
    assert hits[0].namespace == ("alice", "facts") and hits[0].key == fact_id
    assert store.search(("bob",), query="Where does she live now?") == []


def test_writes_to_records_keep_the_memory_rules(store: PersonaStore, memory: Memory, alice: Scope) -> None:
    store.put(("alice", "events"), "e1", {"speaker": "alice", "text": "I adopted a cat named Miso"})
    store.put(("alice", "facts"), "f1", {"text": "alice has a cat named Miso", "sources": ["e1"], "fact_kind": "relationship"})
    assert memory.get_fact(alice, "f1").sources == ["e1"]
    store.put(("alice", "facts"), "f1", {"text": "alice has a cat called Miso"})  # a correction
    assert memory.get_fact(alice, "f1").text == "alice has a cat called Miso"
    with pytest.raises(InvalidRecordError, match="taken by a different message"):
        store.put(("alice", "events"), "e1", {"speaker": "alice", "text": "something else"})
    with pytest.raises(InvalidRecordError, match="not events of this user"):
        store.put(("alice", "facts"), "f2", {"text": "x", "sources": ["evt_of_someone_else"]})
    with pytest.raises(InvalidRecordError, match="derived from facts"):
        store.put(("alice", "profile"), "location", {"value": "Paris"})
    store.delete(("alice", "facts"), "f1")  # deleting a fact retracts it
    assert memory.get_fact(alice, "f1").status == "retracted" and store.get(("alice", "facts"), "f1") is None
    store.put(("alice", "facts"), "f3", {"text": "alice's cat is grey", "sources": ["e1"]})
    store.delete(("alice", "events"), "e1")  # forgetting an event cascades to what rests on it
    assert memory.records.get(alice, "fact", "f3") is None and store.get(("alice", "events"), "e1") is None


def test_forgetting_a_user_takes_their_items(store: PersonaStore, memory: Memory, alice: Scope, bob: Scope) -> None:
    store.put(("alice", "notes"), "n", {"text": "alice's note"})
    store.put(("bob", "notes"), "n", {"text": "bob's note"})
    receipt = memory.forget_user(alice)
    assert receipt.complete and receipt.records_deleted["item"] == 1
    assert store.get(("alice", "notes"), "n") is None and store.search(("alice",), query="note") == []
    assert store.get(("bob", "notes"), "n").value == {"text": "bob's note"}
    assert memory.export(bob)["records"]["item"][0]["value"] == {"text": "bob's note"}


def test_unscoped_reads_can_be_refused(memory: Memory) -> None:
    store = PersonaStore(memory, allow_unscoped=False)
    store.put(("alice", "notes"), "n", {"text": "x"})
    with pytest.raises(InvalidNamespaceError, match="spans users"):
        store.search(())
    with pytest.raises(InvalidNamespaceError, match="spans users"):
        store.list_namespaces()
    assert store.list_namespaces(prefix=("alice",)) == [("alice", "notes")]
    assert len(store.search(("alice",))) == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.put(("alice", "n"), "k", ["not", "a", "dict"]), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "k", {"when": object()}), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "", {"a": 1}), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "k", {"a": 1}, index="text"), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "k", {"a": 1}, ttl=-1), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "k", {"a": 1}, ttl=float("nan")), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "k", {"a": 1}, ttl=float("inf")), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "k", {"a": float("nan")}), InvalidRecordError),
        (lambda s: s.put(("alice", "n"), "k" * 1001, {"a": 1}), InvalidRecordError),
        (lambda s: s.put(("alice", "n" * 201), "k", {"a": 1}), InvalidRecordError),
        (lambda s: s.batch([PutOp(("alice", "n"), "ok", {"a": 1}), PutOp(("bob", "n"), "bad", {"a": 1}, ttl=-1)]), InvalidRecordError),
        (lambda s: s.batch([PutOp(("alice", "events"), "e9", {"speaker": "a", "text": "hi"}), PutOp(("alice", "n"), "b", [1])]), InvalidRecordError),
        (lambda s: s.batch([PutOp(("alice", "n"), "ok", {"a": 1}), PutOp(("alice", "episodes"), "e", None)]), InvalidRecordError),
        (lambda s: s.search(("alice",), filter={"a": {"$regex": "x"}}), InvalidRecordError),
        (lambda s: s.search(("alice",), limit=-1), InvalidRecordError),
        (lambda s: s.put(("alice", "facts"), "f", {"text": ""}), InvalidRecordError),
        (lambda s: s.put(("alice", "facts"), "f", {"text": "x"}, ttl=5), InvalidRecordError),
        (lambda s: s.put(("alice", "episodes"), "e", {"summary": "s"}), InvalidRecordError),
    ],
)
def test_bad_input_gets_a_typed_error_and_loses_nothing(store: PersonaStore, memory: Memory, alice: Scope, call: Any, error: type[Exception]) -> None:
    store.put(("alice", "keep"), "k", {"text": "kept"})
    before = memory.export(alice)["records"]
    with pytest.raises(error):
        call(store)
    assert memory.export(alice)["records"] == before


def test_a_refresh_never_revives_or_rewinds_an_item(memory: Memory, alice: Scope) -> None:
    """A read's TTL refresh re-reads under the write lock: a put or delete that landed between
    the read and the refresh stands."""
    store = PersonaStore(memory, ttl={"default_ttl": 10})
    store.put(("alice", "t"), "k", {"v": 1})
    read = memory.items(alice)[0]
    store.put(("alice", "t"), "k", {"v": 2})
    assert memory.refresh_items(alice, [read.id])[read.id].value == {"v": 2}
    store.delete(("alice", "t"), "k")
    assert memory.refresh_items(alice, [read.id]) == {} and memory.items(alice) == []
    assert memory.reconcile(alice) == {"indexed": 0, "orphans_removed": 0}


def test_items_are_not_known_before_they_were_put(store: PersonaStore, memory: Memory, alice: Scope) -> None:
    store.put(("alice", "notes"), "trip", {"text": "Trip to Porto in May"})
    assert [i.kind for i in memory.search(alice, "Porto trip").items] == ["item"]
    assert memory.search(alice, "Porto trip", as_of=datetime(2001, 1, 1, tzinfo=UTC)).items == []


def test_ttl_expires_refreshes_and_sweeps(memory: Memory) -> None:
    store = PersonaStore(memory, ttl={"default_ttl": 0.02, "refresh_on_read": True})
    store.put(("alice", "t"), "short", {"v": 1})
    store.put(("alice", "t"), "forever", {"v": 2}, ttl=None)
    first = memory.items(Scope(user_id="alice"))
    time.sleep(0.6)
    assert store.get(("alice", "t"), "short") is not None  # read within its TTL: refreshed
    refreshed = {r.key: r.expires_at for r in memory.items(Scope(user_id="alice"))}
    assert refreshed["short"] > next(r.expires_at for r in first if r.key == "short")
    time.sleep(1.3)
    assert store.get(("alice", "t"), "short") is None
    assert [i.key for i in store.search(("alice",))] == ["forever"]
    assert store.sweep_ttl() == 1 and [r.key for r in memory.items(Scope(user_id="alice"))] == ["forever"]


def test_abatch_leaves_the_event_loop_free(store: PersonaStore) -> None:
    loop_thread: list[int] = []
    store_threads: list[int] = []
    original = store.batch

    def spy(ops: Any) -> Any:
        store_threads.append(threading.get_ident())
        return original(ops)

    store.batch = spy  # type: ignore[method-assign]

    async def main() -> list[Any]:
        loop_thread.append(threading.get_ident())
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await store.aput(("alice", "a"), "k", {"text": "written from a coroutine, embedded off the loop"})
        found = await store.asearch(("alice",), query="coroutine")
        task.cancel()
        assert ticks > 1  # the loop kept running while the store worked
        return found

    found = asyncio.run(main())
    assert found[0].key == "k"
    assert store_threads and loop_thread[0] not in store_threads


class _State(TypedDict, total=False):
    user_id: str
    note: str
    found: list[str]


def test_a_plain_state_graph_compiles_with_it(store: PersonaStore) -> None:
    """The README's example: any node reaches the store through the runtime."""

    def remember(state: _State, *, store: BaseStore) -> dict[str, Any]:
        store.put((state["user_id"], "notes"), "latest", {"text": state["note"]})
        return {}

    def recall(state: _State, *, store: BaseStore) -> dict[str, Any]:
        return {"found": [i.value["text"] for i in store.search((state["user_id"],), query="hobby")]}

    graph = StateGraph(_State)
    graph.add_node("remember", remember)
    graph.add_node("recall", recall)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recall")
    graph.add_edge("recall", END)
    app = graph.compile(store=store)
    assert app.invoke({"user_id": "alice", "note": "my hobby is climbing"})["found"] == ["my hobby is climbing"]
    assert app.invoke({"user_id": "bob", "note": "my hobby is chess"})["found"] == ["my hobby is chess"]


def test_a_note_put_through_the_store_is_quoted_when_the_user_asks(store: PersonaStore, memory: Memory) -> None:
    """What an agent or LangMem wrote through the store personalizes the respond graph's answers."""
    from personagraph.graphs.respond.graph import RespondConfig, build_respond_graph

    from tests.scripted_model import ScriptedChatModel

    store.put(("alice", "notes"), "allergy", {"text": "Alice is allergic to hazelnuts"})
    store.put(("bob", "notes"), "allergy", {"text": "Bob is allergic to shellfish"})
    model = ScriptedChatModel(script=["Avoid hazelnuts."])
    graph = build_respond_graph(memory, model, config=RespondConfig(record=False))
    out = graph.invoke({"tenant": "default", "user_id": "alice", "query": "What am I allergic to?"})
    assert [(q.kind, q.record_id) for q in out["quotes"]][:1] == [("item", memory.items(Scope(user_id="alice"))[0].id)]
    shown = " ".join(str(m.content) for m in model.prompts[0])
    assert "hazelnuts" in shown and "shellfish" not in shown
