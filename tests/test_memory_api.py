"""Specification of the `Memory` facade on the real stack: MiniLM embeddings, Qdrant Edge on
disk, and an in-memory or SQLite record store.

The story: Alice tells her assistant about her dog Biscuit, her sister's wedding, the cello,
ramen and a marathon. She lives in Lisbon, then moves to Porto; she works at Acme Corp. Bob is
another user of the same deployment and must never see any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from personagraph.memory import (
    Episode,
    Event,
    Fact,
    InvalidRecordError,
    InvalidScopeError,
    Memory,
    MiniLMEmbedder,
    ProfileValue,
    RecordNotFoundError,
    RecordStore,
    RetrievalConfig,
    Scope,
)
from personagraph.memory.index.base import IndexPoint
from personagraph.memory.index.edge import EdgeIndex
from personagraph.memory.models import RECORD_KINDS, entity_key

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
MOVED_TO_PORTO = datetime(2024, 9, 1, tzinfo=UTC)
WHILE_IN_LISBON = datetime(2024, 6, 1, tzinfo=UTC)

ALICE_SAYS = [
    "I adopted a golden retriever puppy and called him Biscuit",
    "My sister Maya is getting married in Porto next June",
    "I have been learning to play the cello since January",
    "Ramen is my favourite comfort food on rainy days",
    "I am training for the Berlin marathon in September",
]
BOB_SAYS = [
    "I collect vintage mechanical keyboards",
    "My cat Pixel knocks everything off my desk",
]


def only(stage: str) -> RetrievalConfig:
    """A retrieval config that runs one stage alone, whatever stages exist."""
    return RetrievalConfig(**{name: name == stage for name in RetrievalConfig().stages()})


GRAPH_ONLY = only("graph")


# ------------------------------------------------------------------------------ helpers
def said(text: str, minute: int = 0, speaker: str = "alice") -> Event:
    return Event(speaker=speaker, text=text, time=T0 + timedelta(minutes=minute))


def conversation(texts: list[str], speaker: str = "alice") -> list[Event]:
    return [said(text, minute, speaker) for minute, text in enumerate(texts)]


def ids(items: list[Any]) -> list[str]:
    return [item.id for item in items]


def lives_in(city: str, since: datetime, sources: list[str] = ()) -> Fact:
    return Fact(
        text=f"Alice lives in {city}", subject="Alice", predicate="lives_in", object=city,
        valid_from=since, sources=list(sources),
    )


def works_at(company: str, sources: list[str] = (), text: str | None = None) -> Fact:
    return Fact(
        text=text or f"Alice works at {company}", fact_kind="relationship", subject="Alice",
        predicate="works_at", object=company, valid_from=T0, sources=list(sources),
    )


def index_keys(memory: Memory, scope: Scope) -> set[tuple[str, str]]:
    return memory.index.keys(scope)


def fail_once(monkeypatch: pytest.MonkeyPatch, target: object, method: str) -> None:
    """The next call of `target.method` dies as a crash would; later calls work."""
    real = getattr(target, method)
    calls = []

    def crash_then_work(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, method, crash_then_work)


# ========================================================================== add / search
def test_a_question_finds_the_message_that_answers_it_first(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, conversation(ALICE_SAYS))

    dog = memory.search(alice, "What is the name of my dog?")
    cello = memory.search(alice, "Which instrument am I learning?")

    assert dog.items[0].id == events[0].id
    assert cello.items[0].id == events[2].id
    assert len(dog.items) == len(ALICE_SAYS)


def test_items_carry_kind_score_stages_sources_and_time(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, conversation(ALICE_SAYS))
    fact = memory.add_fact(alice, Fact(text="Alice's dog is called Biscuit", fact_kind="attribute", sources=[events[0].id]))

    found = memory.search(alice, "Biscuit the dog")
    by_id = {item.id: item for item in found.items}

    assert found.query == "Biscuit the dog"
    assert {item.kind for item in found.items} == {"event", "fact"}
    scores = [item.score for item in found.items]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert by_id[events[0].id].sources == [events[0].id], "an event is its own source"
    assert by_id[fact.id].sources == [events[0].id]
    assert by_id[events[0].id].time == events[0].time
    # both name Biscuit, so both the dense and the BM25 stage found them, at a rank from 1 up
    for item in (by_id[events[0].id], by_id[fact.id]):
        assert {"dense", "bm25"} <= set(item.stages)
        assert all(rank >= 1 for rank in item.stages.values())
    assert "bm25" not in by_id[events[3].id].stages, "the ramen message shares no word with the query"
    assert by_id[events[0].id].text == f"alice (01 March 2024): {ALICE_SAYS[0]}"
    assert set(found.timings_ms) >= {"embed", "dense", "bm25", "graph", "fuse_pack"}


def test_kinds_restricts_the_result_to_those_kinds(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, conversation(ALICE_SAYS))
    fact = memory.add_fact(alice, Fact(text="Alice is training for a marathon", sources=[events[4].id]))

    facts_only = memory.search(alice, "marathon training", kinds=["fact"])
    events_only = memory.search(alice, "marathon training", kinds=["event"])

    assert ids(facts_only.items) == [fact.id]
    assert {item.kind for item in events_only.items} == {"event"}
    assert events_only.items[0].id == events[4].id


def test_k_caps_the_number_of_items(memory: Memory, alice: Scope) -> None:
    memory.add_events(alice, conversation(ALICE_SAYS))

    assert len(memory.search(alice, "my life", k=2).items) == 2
    assert len(memory.search(alice, "my life", k=100).items) == len(ALICE_SAYS)


def test_a_token_budget_is_never_exceeded_and_shrinks_the_result(
    memory: Memory, alice: Scope, embedder: MiniLMEmbedder
) -> None:
    memory.add_events(alice, conversation(ALICE_SAYS))
    unbounded = memory.search(alice, "What do I do in my free time?")
    per_item = [embedder.count_tokens(item.text) for item in unbounded.items]
    assert unbounded.tokens == sum(per_item)

    for budget in (min(per_item), per_item[0] + 5, sum(per_item) // 2, sum(per_item) - 1):
        packed = memory.search(alice, "What do I do in my free time?", token_budget=budget)
        assert packed.tokens <= budget
        assert packed.tokens == sum(embedder.count_tokens(item.text) for item in packed.items)
        assert 1 <= len(packed.items) < len(unbounded.items)
        assert set(ids(packed.items)) < set(ids(unbounded.items))

    everything = memory.search(alice, "What do I do in my free time?", token_budget=sum(per_item))
    assert ids(everything.items) == ids(unbounded.items)


def test_replaying_the_same_messages_changes_nothing(memory: Memory, alice: Scope) -> None:
    first = memory.add_events(alice, conversation(ALICE_SAYS))
    before = (memory.records.count(alice), memory.index.count(alice), ids(memory.events(alice)))

    again = memory.add_events(alice, conversation(ALICE_SAYS))
    memory.add_events(alice, [e.model_dump() for e in first])

    assert ids(again) == ids(first)
    assert (memory.records.count(alice), memory.index.count(alice), ids(memory.events(alice))) == before
    assert before[:2] == (5, 5)


def test_events_can_be_given_as_dicts_and_get_ids_from_their_content(memory: Memory, alice: Scope) -> None:
    (event,) = memory.add_events(alice, [{"speaker": "alice", "text": "hello there", "time": T0}])

    assert event.id == said("hello there").id, "the same message as an Event gets the same id"
    assert event.id.startswith("evt_")
    assert memory.events(alice) == [event]


# ================================================================================= facts
def test_a_fact_with_subject_predicate_object_becomes_a_graph_edge(memory: Memory, alice: Scope) -> None:
    fact = memory.add_fact(alice, works_at("Acme Corp"))
    graph = memory.graph(alice).graph
    alice_id, acme_id = entity_key("Alice"), entity_key("Acme Corp")

    assert graph.nodes[alice_id]["name"] == "Alice"
    assert graph.nodes[acme_id]["name"] == "Acme Corp"
    assert list(graph.edges(keys=True)) == [(alice_id, acme_id, f"rel_{fact.id}")]
    relation = graph.edges[alice_id, acme_id, f"rel_{fact.id}"]["relation"]
    assert (relation.predicate, relation.fact_id, relation.valid_from) == ("works_at", fact.id, T0)
    assert {e.id for e in memory.records.list(alice, "entity")} == {alice_id, acme_id}
    assert ids(memory.records.list(alice, "relation")) == [f"rel_{fact.id}"]


def test_a_fact_without_a_triple_stays_off_the_graph(memory: Memory, alice: Scope) -> None:
    memory.add_fact(alice, Fact(text="Alice prefers short answers", fact_kind="preference"))

    assert memory.graph(alice).graph.number_of_nodes() == 0
    assert memory.records.count(alice, "entity") == memory.records.count(alice, "relation") == 0


def test_entities_shared_by_two_facts_collect_both_facts_sources(memory: Memory, alice: Scope) -> None:
    first, second = memory.add_events(alice, conversation(ALICE_SAYS[:2]))
    memory.add_fact(alice, works_at("Acme Corp", sources=[first.id]))
    memory.add_fact(alice, lives_in("Lisbon", T0, sources=[second.id]))

    alice_entity = memory.records.get(alice, "entity", entity_key("alice"))
    assert alice_entity.sources == sorted([first.id, second.id])
    assert memory.graph(alice).graph.number_of_nodes() == 3


def test_supersede_closes_the_old_fact_and_its_edge(memory: Memory, alice: Scope) -> None:
    lisbon = memory.add_fact(alice, lives_in("Lisbon", T0))
    memory.graph(alice)  # loaded before the change: the cached graph must follow it
    porto = memory.supersede_fact(alice, lisbon.id, lives_in("Porto", MOVED_TO_PORTO))

    old = memory.get_fact(alice, lisbon.id)
    assert (old.status, old.valid_to, old.superseded_by) == ("superseded", MOVED_TO_PORTO, porto.id)
    assert memory.get_fact(alice, porto.id).status == "active"
    assert ids(memory.facts(alice)) == [porto.id]
    old_edge = memory.records.get(alice, "relation", f"rel_{lisbon.id}")
    assert old_edge.valid_to == MOVED_TO_PORTO
    graph = memory.graph(alice)
    assert {k for *_, k in graph.as_of(None).edges(keys=True)} == {f"rel_{porto.id}"}
    assert {k for *_, k in graph.as_of(WHILE_IN_LISBON).edges(keys=True)} == {f"rel_{lisbon.id}"}


def test_search_as_of_the_past_finds_the_fact_true_then(memory: Memory, alice: Scope) -> None:
    lisbon = memory.add_fact(alice, lives_in("Lisbon", T0))
    porto = memory.supersede_fact(alice, lisbon.id, lives_in("Porto", MOVED_TO_PORTO))

    now_ = memory.search(alice, "Where does Alice live?", kinds=["fact"])
    then = memory.search(alice, "Where does Alice live?", kinds=["fact"], as_of=WHILE_IN_LISBON)
    before_both = memory.search(alice, "Where does Alice live?", kinds=["fact"], as_of=T0 - timedelta(days=1))

    assert ids(now_.items) == [porto.id]
    assert ids(then.items) == [lisbon.id]
    assert before_both.items == []


def test_supersede_without_a_start_starts_the_new_fact_now(memory: Memory, alice: Scope) -> None:
    lisbon = memory.add_fact(alice, lives_in("Lisbon", T0))
    before = datetime.now(UTC)
    porto = memory.supersede_fact(alice, lisbon.id, {"text": "Alice lives in Porto", "predicate": "lives_in", "object": "Porto"})

    assert before <= porto.valid_from <= datetime.now(UTC)
    assert memory.get_fact(alice, lisbon.id).valid_to == porto.valid_from


def test_a_retracted_fact_keeps_its_record_but_leaves_search(memory: Memory, alice: Scope) -> None:
    wrong = memory.add_fact(alice, works_at("Acme Corp"))
    memory.retract_fact(alice, wrong.id)

    kept = memory.get_fact(alice, wrong.id)
    assert kept.status == "retracted" and kept.valid_to is not None
    assert memory.facts(alice) == [] and ids(memory.facts(alice, status="retracted")) == [wrong.id]
    assert memory.search(alice, "Where does Alice work? Acme Corp").items == []
    assert memory.graph(alice).as_of(None).number_of_edges() == 0


def test_a_retracted_fact_stays_out_of_past_searches_by_the_index_stages(memory: Memory, alice: Scope) -> None:
    wrong = memory.add_fact(alice, works_at("Acme Corp"))
    memory.retract_fact(alice, wrong.id)
    index_only = RetrievalConfig(graph=False)

    assert memory.search(alice, "Where does Alice work? Acme Corp", as_of=WHILE_IN_LISBON, config=index_only).items == []


def test_a_retracted_fact_stays_out_of_past_searches(memory: Memory, alice: Scope) -> None:
    wrong = memory.add_fact(alice, works_at("Acme Corp"))
    memory.retract_fact(alice, wrong.id)

    assert memory.search(alice, "Where does Alice work? Acme Corp", as_of=WHILE_IN_LISBON).items == []


def test_update_fact_corrects_in_place(memory: Memory, alice: Scope) -> None:
    fact = memory.add_fact(alice, Fact(text="Alice's dog is called Biskit", sources=["evt_1"]))
    fixed = memory.update_fact(alice, fact.id, text="Alice's dog is called Biscuit")

    assert (fixed.id, fixed.text, fixed.sources) == (fact.id, "Alice's dog is called Biscuit", ["evt_1"])
    assert memory.get_fact(alice, fact.id) == fixed
    assert ids(memory.search(alice, "Biscuit").items) == [fact.id]
    assert memory.records.count(alice) == memory.index.count(alice) == 1


def test_update_fact_moves_the_graph_edge_with_the_object(memory: Memory, alice: Scope) -> None:
    fact = memory.add_fact(alice, works_at("Acme Corp"))
    memory.graph(alice)
    memory.update_fact(alice, fact.id, object="Globex", text="Alice works at Globex")

    edges = list(memory.graph(alice).graph.edges(keys=True))
    assert edges == [(entity_key("Alice"), entity_key("Globex"), f"rel_{fact.id}")]
    assert memory.records.get(alice, "relation", f"rel_{fact.id}").object_id == entity_key("Globex")


def test_update_fact_that_drops_the_triple_takes_the_fact_off_the_graph(memory: Memory, alice: Scope) -> None:
    fact = memory.add_fact(alice, Fact(text="Alice likes tea", subject="Alice", predicate="likes", object="tea"))
    memory.update_fact(alice, fact.id, text="Alice likes coffee", subject=None, predicate=None, object=None)

    assert memory.graph(alice).as_of(None).number_of_edges() == 0
    assert memory.search(alice, "tea", config=GRAPH_ONLY).items == []


@pytest.mark.parametrize("change", [{"id": "fct_other"}, {"kind": "event"}, {"id": "fct_other", "text": "x"}])
def test_update_fact_refuses_to_change_id_or_kind(memory: Memory, alice: Scope, change: dict[str, str]) -> None:
    fact = memory.add_fact(alice, works_at("Acme Corp"))

    with pytest.raises(InvalidRecordError, match="id and kind"):
        memory.update_fact(alice, fact.id, **change)
    assert memory.get_fact(alice, fact.id) == fact
    assert memory.records.get(alice, "fact", "fct_other") is None


def test_update_fact_refuses_invalid_values_and_keeps_the_fact(memory: Memory, alice: Scope) -> None:
    fact = memory.add_fact(alice, lives_in("Lisbon", T0))

    with pytest.raises(InvalidRecordError):
        memory.update_fact(alice, fact.id, confidence=1.5)
    with pytest.raises(InvalidRecordError):
        memory.update_fact(alice, fact.id, valid_to=T0 - timedelta(days=1))
    with pytest.raises(RecordNotFoundError):
        memory.update_fact(alice, "fct_missing", text="x")
    assert memory.get_fact(alice, fact.id) == fact


def test_a_query_naming_an_entity_reaches_facts_on_its_edges(memory: Memory, alice: Scope) -> None:
    # the fact's text never names Acme, so only the graph connects the query to it
    fact = memory.add_fact(alice, works_at("Acme Corp", text="She has been employed there since 2019"))
    jazz = memory.add_fact(alice, Fact(text="Alice likes jazz", subject="Alice", predicate="likes", object="jazz"))

    graph_only = memory.search(alice, "Who works at Acme Corp?", config=GRAPH_ONLY)
    hybrid = memory.search(alice, "Who works at Acme Corp?")

    assert [(item.id, item.stages) for item in graph_only.items] == [(fact.id, {"graph": 1})]
    assert "graph" in {item.id: item for item in hybrid.items}[fact.id].stages
    assert memory.search(alice, "Who works at Acme Corp?", kinds=["event"]).items == []
    # naming an entity is not enough: its edges must share a word with the question
    assert memory.search(alice, "What does Alice eat?", config=GRAPH_ONLY).items == []
    assert ids(memory.search(alice, "What music does Alice like?", config=GRAPH_ONLY).items) == [jazz.id]


def test_graph_expansion_follows_the_as_of_view(memory: Memory, alice: Scope) -> None:
    lisbon = memory.add_fact(alice, lives_in("Lisbon", T0))
    porto = memory.supersede_fact(alice, lisbon.id, lives_in("Porto", MOVED_TO_PORTO))

    assert ids(memory.search(alice, "Where does Alice live?", config=GRAPH_ONLY).items) == [porto.id]
    assert ids(memory.search(alice, "Where does Alice live?", config=GRAPH_ONLY, as_of=WHILE_IN_LISBON).items) == [lisbon.id]


# ================================================================================ profile
def test_the_profile_is_derived_from_facts_and_names_them(memory: Memory, alice: Scope) -> None:
    name = memory.add_fact(alice, Fact(text="Her name is Alice Martin", predicate="name", object="Alice Martin"))
    home = memory.add_fact(alice, lives_in("Lisbon", T0))
    job = memory.add_fact(alice, Fact(text="Alice is a nurse", predicate="works_as", object="nurse"))
    jazz = memory.add_fact(alice, Fact(text="Alice loves jazz", fact_kind="preference", predicate="likes", object="jazz"))
    brief = memory.add_fact(alice, Fact(text="Keep answers short", fact_kind="instruction"))

    profile = memory.profile(alice)

    assert profile.name == ProfileValue(value="Alice Martin", fact_ids=[name.id])
    assert profile.location == ProfileValue(value="Lisbon", fact_ids=[home.id])
    assert profile.occupation == ProfileValue(value="nurse", fact_ids=[job.id])
    assert profile.interests == [ProfileValue(value="jazz", fact_ids=[jazz.id])]
    assert profile.instructions == [ProfileValue(value="Keep answers short", fact_ids=[brief.id])]


def test_a_superseded_location_is_replaced_in_the_profile(memory: Memory, alice: Scope) -> None:
    lisbon = memory.add_fact(alice, lives_in("Lisbon", T0))
    porto = memory.supersede_fact(alice, lisbon.id, lives_in("Porto", MOVED_TO_PORTO))

    assert memory.profile(alice).location == ProfileValue(value="Porto", fact_ids=[porto.id])


def test_a_retracted_fact_leaves_the_profile(memory: Memory, alice: Scope) -> None:
    jazz = memory.add_fact(alice, Fact(text="Alice loves jazz", fact_kind="preference", predicate="likes", object="jazz"))
    memory.retract_fact(alice, jazz.id)

    assert memory.profile(alice).interests == []


# =========================================================================== forget_event
@pytest.fixture
def alices_story(memory: Memory, alice: Scope) -> dict[str, Any]:
    """Alice said she moved to Lisbon and started at Acme. The Lisbon fact rests on one message;
    the Acme fact on two, so it outlives either of them."""
    moved, job = memory.add_events(alice, [
        said("I moved to Lisbon last month", 0), said("I started a new job at Acme Corp", 1),
    ])
    home = memory.add_fact(alice, lives_in("Lisbon", T0, sources=[moved.id]))
    work = memory.add_fact(alice, works_at("Acme Corp", sources=[moved.id, job.id]))
    memory.graph(alice)  # loaded, so forgetting must keep the cached graph current
    return {"moved": moved, "job": job, "home": home, "work": work}


def test_forgetting_an_event_deletes_what_rests_on_it_alone(memory: Memory, alice: Scope, alices_story: dict[str, Any]) -> None:
    moved, job, home, work = alices_story["moved"], alices_story["job"], alices_story["home"], alices_story["work"]

    receipt = memory.forget_event(alice, moved.id)

    assert memory.records.get(alice, "event", moved.id) is None
    assert memory.records.get(alice, "fact", home.id) is None
    assert memory.records.get(alice, "relation", f"rel_{home.id}") is None
    assert memory.records.get(alice, "entity", entity_key("Lisbon")) is None
    assert index_keys(memory, alice) == {("event", job.id), ("fact", work.id)}
    assert memory.get_fact(alice, work.id).sources == [job.id]
    assert memory.records.get(alice, "relation", f"rel_{work.id}").sources == [job.id]
    assert memory.records.get(alice, "entity", entity_key("Alice")).sources == [job.id]
    assert memory.records.get(alice, "entity", entity_key("Acme Corp")).sources == [job.id]

    assert receipt.target == f"event:{moved.id}"
    assert receipt.records_deleted == {"event": 1, "fact": 1, "relation": 1, "entity": 1}
    assert receipt.records_updated == 4
    assert receipt.index_points_deleted == 2
    assert (receipt.graph_nodes_deleted, receipt.graph_edges_deleted) == (1, 1)
    assert receipt.residue == {"records": 0, "index": 0, "sources": 0, "adapter_weights": 0}
    assert receipt.complete
    assert memory.records.journal() == []


def test_forgetting_an_event_updates_the_graph_and_search(memory: Memory, alice: Scope, alices_story: dict[str, Any]) -> None:
    memory.forget_event(alice, alices_story["moved"].id)
    cached = memory.graph(alice).graph
    memory.graphs.drop(alice)
    rebuilt = memory.graph(alice).graph

    for graph in (cached, rebuilt):
        assert set(graph.nodes) == {entity_key("Alice"), entity_key("Acme Corp")}
        assert [k for *_, k in graph.edges(keys=True)] == [f"rel_{alices_story['work'].id}"]
        assert graph.nodes[entity_key("Alice")]["sources"] == [alices_story["job"].id]
    found = memory.search(alice, "Lisbon")
    assert set(ids(found.items)) == {alices_story["job"].id, alices_story["work"].id}
    assert all(alices_story["moved"].id not in item.sources for item in found.items)


def test_forgetting_an_event_leaves_no_searchable_trace_of_its_words(memory: Memory, alice: Scope) -> None:
    secret, reply = memory.add_events(alice, [
        said("My secret holiday plan is zanzibar", 0), said("Got it, noted.", 1, speaker="assistant"),
    ])
    assert ids(memory.search(alice, "zanzibar", config=only("bm25")).items)[0] == secret.id

    assert memory.forget_event(alice, secret.id).complete
    assert memory.search(alice, "zanzibar", config=only("bm25")).items == []


def test_forgetting_both_sources_removes_the_whole_story(memory: Memory, alice: Scope, alices_story: dict[str, Any]) -> None:
    memory.forget_event(alice, alices_story["moved"].id)
    receipt = memory.forget_event(alice, alices_story["job"].id)

    assert receipt.records_deleted == {"event": 1, "fact": 1, "relation": 1, "entity": 2}
    assert receipt.complete
    assert memory.records.count(alice) == memory.index.count(alice) == 0
    assert memory.graph(alice).graph.number_of_nodes() == 0


def test_forgetting_an_unknown_event_is_an_error(memory: Memory, alice: Scope) -> None:
    memory.add_events(alice, conversation(ALICE_SAYS[:1]))

    with pytest.raises(RecordNotFoundError):
        memory.forget_event(alice, "evt_never_said")
    assert memory.records.count(alice) == 1


def test_a_user_cannot_forget_another_users_event(memory: Memory, alice: Scope, bob: Scope) -> None:
    (secret,) = memory.add_events(alice, conversation(ALICE_SAYS[:1]))

    with pytest.raises(RecordNotFoundError):
        memory.forget_event(bob, secret.id)

    assert ids(memory.events(alice)) == [secret.id]
    assert ids(memory.search(alice, "Biscuit").items) == [secret.id]
    assert index_keys(memory, alice) == {("event", secret.id)}


# ============================================================================ forget_user
def test_forget_user_leaves_nothing_and_proves_it(memory: Memory, alice: Scope, bob: Scope) -> None:
    events = memory.add_events(alice, conversation(ALICE_SAYS))
    memory.add_events(bob, conversation(BOB_SAYS, speaker="bob"))
    memory.add_fact(alice, lives_in("Lisbon", T0, sources=[events[0].id]))
    memory.add_fact(bob, Fact(text="Bob has a cat named Pixel", subject="Bob", predicate="has_pet", object="Pixel"))
    memory.add_episode(alice, Episode(summary="Alice talked about her hobbies", start=T0, end=T0 + timedelta(hours=1)))
    memory.graph(alice)
    bob_before = (
        memory.records.count(bob), memory.index.count(bob), ids(memory.search(bob, "my pets").items),
        set(memory.graph(bob).graph.edges(keys=True)),
    )

    receipt = memory.forget_user(alice)

    assert receipt.target == "user" and receipt.complete
    assert receipt.records_deleted == {"event": 5, "episode": 1, "fact": 1, "entity": 2, "relation": 1, "reflection": 0, "adapter": 0, "feedback": 0, "item": 0}
    assert (receipt.index_points_deleted, receipt.graph_nodes_deleted, receipt.graph_edges_deleted) == (7, 2, 1)
    assert set(receipt.residue) >= {"records", "index", "graph", "journal"}
    assert not any(receipt.residue.values())
    assert memory.records.count(alice) == 0
    assert memory.index.count(alice) == 0
    assert not memory.graphs.loaded(alice)
    assert memory.records.journal() == []
    assert memory.search(alice, "dog").items == []
    assert memory.profile(alice).location is None
    bob_after = (
        memory.records.count(bob), memory.index.count(bob), ids(memory.search(bob, "my pets").items),
        set(memory.graph(bob).graph.edges(keys=True)),
    )
    assert bob_after == bob_before
    assert memory.records.scopes() == [bob]


def test_a_forgotten_user_can_start_again_from_nothing(memory: Memory, alice: Scope) -> None:
    memory.add_events(alice, conversation(ALICE_SAYS))
    memory.forget_user(alice)

    (fresh,) = memory.add_events(alice, [said("Hello, I am new here", 99)])

    assert ids(memory.search(alice, "dog").items) == [fresh.id]
    assert memory.index.count(alice) == 1


def test_forgetting_a_user_with_no_memory_is_complete_and_harmless(memory: Memory, alice: Scope, bob: Scope) -> None:
    memory.add_events(bob, conversation(BOB_SAYS, speaker="bob"))

    receipt = memory.forget_user(alice)

    assert receipt.complete and sum(receipt.records_deleted.values()) == 0
    assert memory.records.count(bob) == memory.index.count(bob) == 2


def test_retracting_a_future_plan_keeps_the_user_exportable_and_forgettable(memory: Memory, alice: Scope) -> None:
    next_month = datetime.now(UTC) + timedelta(days=30)
    plan = memory.add_fact(alice, Fact(text="Alice plans to visit Japan", fact_kind="plan", valid_from=next_month))
    memory.retract_fact(alice, plan.id)

    assert [f["id"] for f in memory.export(alice)["records"]["fact"]] == [plan.id]
    assert memory.forget_user(alice).complete


def test_a_backdated_supersede_keeps_the_user_exportable_and_forgettable(memory: Memory, alice: Scope) -> None:
    lisbon = memory.add_fact(alice, lives_in("Lisbon", MOVED_TO_PORTO))
    with contextlib.suppress(InvalidRecordError):  # refusing it is as good as storing it sanely
        memory.supersede_fact(alice, lisbon.id, lives_in("Porto", T0))

    facts = memory.export(alice)["records"]["fact"]
    assert lisbon.id in {f["id"] for f in facts}
    assert memory.forget_user(alice).complete


# ================================================================== crash and reconcile
def test_a_crash_between_record_and_index_write_is_repaired_on_open(
    memory: Memory, alice: Scope, embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    (event,) = conversation(ALICE_SAYS[:1])
    fail_once(monkeypatch, memory.index, "upsert")
    with pytest.raises(RuntimeError, match="simulated crash"):
        memory.add_events(alice, [event])

    assert memory.records.get(alice, "event", event.id) == event, "the records landed"
    assert memory.index.count(alice) == 0, "the index did not"
    (entry,) = memory.records.journal()
    assert (entry["tenant"], entry["user_id"], entry["keys"]) == ("default", "alice", [["event", event.id]])
    assert memory.search(alice, "Biscuit").items == []

    reopened = Memory(memory.records, memory.index, embedder)

    assert reopened.replayed_on_open == 1
    assert memory.records.journal() == []
    assert ids(reopened.search(alice, "Biscuit").items) == [event.id]


def test_reconcile_journal_replays_an_unfinished_forget(
    memory: Memory, alice: Scope, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = memory.add_events(alice, conversation(ALICE_SAYS[:2]))
    fail_once(monkeypatch, memory.index, "delete")
    with pytest.raises(RuntimeError, match="simulated crash"):
        memory.forget_event(alice, first.id)

    assert memory.records.get(alice, "event", first.id) is None
    assert ("event", first.id) in index_keys(memory, alice), "the point outlived its record"
    assert first.id not in ids(memory.search(alice, "Biscuit the puppy").items), "but search never shows it"

    assert memory.reconcile_journal() == 1
    assert index_keys(memory, alice) == {("event", second.id)}
    assert memory.records.journal() == []
    assert memory.reconcile_journal() == 0


def test_a_crash_is_repaired_when_sqlite_records_are_reopened(
    tmp_path: Path, alice: Scope, embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def open_memory() -> Memory:
        return Memory(RecordStore.sqlite(tmp_path / "records.sqlite"), EdgeIndex(tmp_path / "index"), embedder)

    first = open_memory()
    first.add_events(alice, conversation(ALICE_SAYS[1:3]))
    (event,) = conversation(ALICE_SAYS[:1])
    fail_once(monkeypatch, first.index, "upsert")
    with pytest.raises(RuntimeError, match="simulated crash"):
        first.add_events(alice, [event])
    assert len(first.records.journal()) == 1
    first.close()  # Qdrant Edge admits one opener per path: the old index must let go first

    second = open_memory()
    try:
        assert second.records.journal() == []
        assert second.records.count(alice) == second.index.count(alice) == 3
        assert second.search(alice, "What is my dog called?").items[0].id == event.id
    finally:
        second.close()


def test_reconcile_restores_missing_points_and_drops_orphans(
    memory: Memory, alice: Scope, bob: Scope, embedder: MiniLMEmbedder
) -> None:
    events = memory.add_events(alice, conversation(ALICE_SAYS))
    memory.add_events(bob, conversation(BOB_SAYS, speaker="bob"))
    memory.index.delete(alice, [("event", events[0].id)])  # behind the facade's back
    ghost_text = "a golden retriever puppy called Biscuit that no record backs"
    memory.index.upsert([IndexPoint(
        alice, "event", "evt_ghost", embedder.embed_query(ghost_text), memory.sparse.embed_document(ghost_text),
    )])

    assert "evt_ghost" not in ids(memory.search(alice, "golden retriever puppy Biscuit").items), (
        "an orphan point is never returned"
    )

    assert memory.reconcile(alice) == {"indexed": 1, "orphans_removed": 1}

    assert index_keys(memory, alice) == {("event", e.id) for e in events}
    assert memory.search(alice, "golden retriever puppy Biscuit").items[0].id == events[0].id
    assert memory.reconcile(alice) == {"indexed": 0, "orphans_removed": 0}
    assert memory.index.count(bob) == 2


def test_reindex_rebuilds_a_users_index_from_records(memory: Memory, alice: Scope, bob: Scope) -> None:
    events = memory.add_events(alice, conversation(ALICE_SAYS))
    fact = memory.add_fact(alice, lives_in("Lisbon", T0))
    memory.add_events(bob, conversation(BOB_SAYS, speaker="bob"))
    memory.index.delete_scope(alice)

    assert memory.reindex(alice) == 6
    assert index_keys(memory, alice) == {("event", e.id) for e in events} | {("fact", fact.id)}
    assert memory.index.count(bob) == 2


# ====================================================================== malformed input
BAD_LABELS = [".", "a.b", "a/b", "", "x" * 200, "-leading-dash", "alice\n", "ünïcode", "white space"]


@pytest.mark.parametrize("label", BAD_LABELS)
def test_a_bad_label_is_refused_with_invalid_scope_error(label: str) -> None:
    with pytest.raises(InvalidScopeError):
        Scope(user_id=label)
    with pytest.raises(InvalidScopeError):
        Scope(tenant=label, user_id="alice")


def test_good_labels_make_scopes() -> None:
    assert Scope(user_id="x" * 128).user_id == "x" * 128
    assert Scope(tenant="acme-2", user_id="Alice_01").key == "acme-2/Alice_01"
    assert Scope.for_platform("slack", "T01/ACME", "U.42").user_id.startswith("slack-")


BAD_EVENTS = {
    "empty text": {"speaker": "alice", "text": ""},
    "missing speaker": {"text": "hello"},
    "empty speaker": {"speaker": "", "text": "hello"},
    "text is a number": {"speaker": "alice", "text": 123},
    "speaker is a list": {"speaker": ["alice"], "text": "hello"},
    "time is not a time": {"speaker": "alice", "text": "hello", "time": "yesterday-ish"},
    "unknown role": {"speaker": "alice", "text": "hello", "role": "robot"},
    "unknown field": {"speaker": "alice", "text": "hello", "mood": "happy"},
    "id with a space": {"id": "evt 1", "speaker": "alice", "text": "hello"},
    "not an event at all": Fact(text="Alice likes tea"),
}


@pytest.mark.parametrize("bad", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_a_malformed_event_is_refused_and_nothing_is_written(memory: Memory, alice: Scope, bad: Any) -> None:
    with pytest.raises(InvalidRecordError):
        memory.add_events(alice, [said("a perfectly good message"), bad])

    assert memory.records.count(alice) == 0
    assert memory.index.count(alice) == 0
    assert memory.records.journal() == []


BAD_SEARCHES = {
    "empty query": ("", {}),
    "blank query": ("   ", {}),
    "k is zero": ("dog", {"k": 0}),
    "k is huge": ("dog", {"k": 1001}),
    "zero token budget": ("dog", {"token_budget": 0}),
    "relations are not searchable": ("dog", {"kinds": ["relation"]}),
    "entities are not searchable": ("dog", {"kinds": ["event", "entity"]}),
}


@pytest.mark.parametrize(("query", "options"), BAD_SEARCHES.values(), ids=BAD_SEARCHES.keys())
def test_a_malformed_search_is_refused(memory: Memory, alice: Scope, query: str, options: dict[str, Any]) -> None:
    memory.add_events(alice, conversation(ALICE_SAYS[:1]))

    with pytest.raises(InvalidRecordError):
        memory.search(alice, query, **options)


BAD_FACTS = {
    "ends before it starts": {"text": "Alice lives in Lisbon", "valid_from": MOVED_TO_PORTO, "valid_to": T0},
    "confidence above one": {"text": "Alice lives in Lisbon", "confidence": 1.5},
    "negative confidence": {"text": "Alice lives in Lisbon", "confidence": -0.1},
    "no text": {"text": "", "subject": "Alice"},
    "unknown status": {"text": "Alice lives in Lisbon", "status": "maybe"},
    "unknown fact kind": {"text": "Alice lives in Lisbon", "fact_kind": "rumour"},
}


@pytest.mark.parametrize("bad", BAD_FACTS.values(), ids=BAD_FACTS.keys())
def test_a_malformed_fact_is_refused_and_nothing_is_written(memory: Memory, alice: Scope, bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecordError):
        memory.add_fact(alice, bad)

    assert memory.records.count(alice) == memory.index.count(alice) == 0


SCOPED_CALLS: dict[str, Callable[[Memory, Any], Any]] = {
    "add_events": lambda m, s: m.add_events(s, [said("hello")]),
    "add_fact": lambda m, s: m.add_fact(s, works_at("Acme Corp")),
    "events": lambda m, s: m.events(s),
    "facts": lambda m, s: m.facts(s),
    "get_fact": lambda m, s: m.get_fact(s, "fct_1"),
    "search": lambda m, s: m.search(s, "dog"),
    "profile": lambda m, s: m.profile(s),
    "graph": lambda m, s: m.graph(s),
    "forget_event": lambda m, s: m.forget_event(s, "evt_1"),
    "forget_user": lambda m, s: m.forget_user(s),
    "export": lambda m, s: m.export(s),
    "reconcile": lambda m, s: m.reconcile(s),
    "reindex": lambda m, s: m.reindex(s),
}


@pytest.mark.parametrize(
    "call",
    [pytest.param(fn, id=name)
     for name, fn in SCOPED_CALLS.items()],
)
def test_every_call_refuses_something_that_is_not_a_scope(
    memory: Memory, alice: Scope, call: Callable[[Memory, Any], Any]
) -> None:
    memory.add_events(alice, conversation(ALICE_SAYS[:1]))

    for not_a_scope in ["alice", "default/alice", {"user_id": "alice"}, None]:
        with pytest.raises(InvalidRecordError, match="Scope"):
            call(memory, not_a_scope)
    assert memory.records.count(alice) == memory.index.count(alice) == 1


# ================================================================================ export
def test_export_holds_every_kind_and_the_profile_and_round_trips_json(memory: Memory, alice: Scope, bob: Scope) -> None:
    events = memory.add_events(alice, conversation(ALICE_SAYS))
    home = memory.add_fact(alice, lives_in("Lisbon", T0, sources=[events[1].id]))
    episode = memory.add_episode(alice, Episode(summary="Alice talked about her hobbies", start=T0, end=T0 + timedelta(hours=1)))
    bob_events = memory.add_events(bob, conversation(BOB_SAYS, speaker="bob"))
    bob_fact = memory.add_fact(bob, Fact(text="Bob has a cat named Pixel", subject="Bob", predicate="has_pet", object="Pixel"))

    exported = memory.export(alice)

    assert exported["scope"] == {"tenant": "default", "user_id": "alice"}
    assert set(exported["records"]) == set(RECORD_KINDS)
    exported_ids = {kind: {r["id"] for r in recs} for kind, recs in exported["records"].items()}
    assert exported_ids == {
        "event": {e.id for e in events}, "episode": {episode.id}, "fact": {home.id},
        "entity": {entity_key("Alice"), entity_key("Lisbon")}, "relation": {f"rel_{home.id}"}, "reflection": set(), "adapter": set(), "feedback": set(), "item": set(),
    }
    assert exported["profile"]["location"] == {"value": "Lisbon", "fact_ids": [home.id]}
    text = json.dumps(exported)
    assert json.loads(text) == exported
    assert Fact.model_validate(exported["records"]["fact"][0]) == home
    for foreign in [*(e.id for e in bob_events), bob_fact.id, *BOB_SAYS, "Pixel", entity_key("Bob")]:
        assert foreign not in text


def test_export_of_a_user_with_no_memory_is_empty(memory: Memory, alice: Scope, bob: Scope) -> None:
    memory.add_events(bob, conversation(BOB_SAYS, speaker="bob"))

    exported = memory.export(alice)

    assert exported["records"] == {kind: [] for kind in RECORD_KINDS}
    assert exported["profile"]["location"] is None and exported["profile"]["interests"] == []


# ================================================================================= async
async def test_async_add_and_search_for_two_users_at_once(memory: Memory, alice: Scope, bob: Scope) -> None:
    alices, bobs = await asyncio.gather(
        memory.aadd_events(alice, conversation(ALICE_SAYS)),
        memory.aadd_events(bob, conversation(BOB_SAYS, speaker="bob")),
    )
    dog, cat = await asyncio.gather(
        memory.asearch(alice, "What is the name of my dog?", k=3),
        memory.asearch(bob, "What is the name of my cat?", k=3),
    )

    assert dog.items[0].id == alices[0].id and len(dog.items) == 3
    assert cat.items[0].id == bobs[1].id and set(ids(cat.items)) == {e.id for e in bobs}


async def test_async_facts_profile_forget_and_export(memory: Memory, alice: Scope) -> None:
    (moved,) = await memory.aadd_events(alice, [said("I moved to Lisbon")])
    home = await memory.aadd_fact(alice, lives_in("Lisbon", T0, sources=[moved.id]))

    assert (await memory.aprofile(alice)).location == ProfileValue(value="Lisbon", fact_ids=[home.id])
    receipt = await memory.aforget_event(alice, moved.id)
    assert receipt.complete and receipt.records_deleted["fact"] == 1
    assert (await memory.aexport(alice))["records"]["event"] == []
    assert (await memory.aforget_user(alice)).complete


def test_the_profile_takes_facts_about_the_user_only(memory: Memory, alice: Scope) -> None:
    """Told by alice, "Ana lives in Lisbon" is Ana's location; in an imported log (every role
    "other") the speakers' own facts still count, as before."""
    told = memory.add_event(alice, {"speaker": "Alice", "role": "user", "text": "Ana lives in Lisbon. I live in Porto."})
    memory.add_fact(alice, {"text": "Alice lives in Porto", "subject": "Alice", "predicate": "lives_in", "object": "Porto", "sources": [told.id]})
    memory.add_fact(alice, {"text": "Ana lives in Lisbon", "subject": "Ana", "predicate": "lives_in", "object": "Lisbon", "sources": [told.id]})  # newer: it would win without the filter
    assert memory.profile(alice).location.value == "Porto"

    imported = Scope(user_id="conv-1")
    said = memory.add_event(imported, {"speaker": "Caroline", "role": "other", "text": "I moved to Boston."})
    memory.add_fact(imported, {"text": "Caroline lives in Boston", "subject": "Caroline", "predicate": "lives_in", "object": "Boston", "sources": [said.id]})
    assert memory.profile(imported).location.value == "Boston"
