"""The reflection graph end to end on real stores, driven by a scripted chat model.

The scripted model stands in for the LLM only so each path of the graph (gate, extract,
retry, failure record, reconcile decisions, budgets) can be forced deterministically; the
local model's own run is in test_reflection_local.py.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from personagraph.graphs.reflection import (
    LLMBudget,
    ReflectionConfig,
    ReflectionExecutor,
    build_reflection_graph,
)
from personagraph.graphs.reflection.runner import iter_reflect, pending_batches
from personagraph.memory import (
    Event,
    Fact,
    InvalidRecordError,
    Memory,
    RecordNotFoundError,
    Scope,
)
from personagraph.memory.models import Entity
from scripted_model import ScriptedChatModel

T0 = datetime(2024, 5, 8, 18, 0, tzinfo=UTC)


def said(*texts: str, speaker: str = "Alice", thread: str = "t1", start: datetime = T0) -> list[Event]:
    return [Event(speaker=speaker, text=t, time=start + timedelta(minutes=i), thread_id=thread) for i, t in enumerate(texts)]


def run(graph, scope: Scope, events: list[Event] | None = None, thread: str = "t1") -> dict:
    state = {"tenant": scope.tenant, "user_id": scope.user_id, "thread_id": thread}
    if events is not None:
        state["event_ids"] = [e.id for e in events]
    return graph.invoke(state)["report"]


def extraction(*facts: dict, summary: str = "", entities: list | None = None) -> dict:
    return {"facts": list(facts), "entities": entities or [], "summary": summary}


def everything(memory: Memory, scope: Scope) -> dict[str, set[str]]:
    return {kind: {r.id for r in memory.records.list(scope, kind)} for kind in ("event", "episode", "fact", "entity", "relation", "reflection")}


# ================================================================================ gate
def test_gate_skips_chit_chat_without_calling_the_model(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("hi!", "thanks so much :)", "haha ok, bye!"))
    model = ScriptedChatModel()
    report = run(build_reflection_graph(memory, model), alice, events)

    assert report["status"] == "skipped" and report["llm_calls"] == 0 and model.calls == 0
    assert memory.facts(alice) == [] and memory.records.list(alice, "episode") == []
    assert memory.unreflected_events(alice) == []  # skipped counts as reflected: never asked again
    assert [r.status for r in memory.reflections(alice)] == ["skipped"]


# ================================================================================ extract
def test_one_model_call_writes_facts_entities_relation_and_episode_with_provenance(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("hey there", "My sister Jo is visiting from Leeds next week, we're going to a jazz gig."))
    model = ScriptedChatModel(script=[extraction(
        {"message": 2, "text": "Alice's sister Jo is visiting from Leeds next week", "kind": "plan",
         "subject": "Jo", "predicate": "visiting_from", "object": "Leeds", "confidence": 0.8},
        summary="Alice said her sister Jo visits next week.", entities=[{"name": "Jo", "type": "person"}],
    )])
    report = run(build_reflection_graph(memory, model, config=ReflectionConfig(model_name="scripted")), alice, events)

    assert report["status"] == "done" and report["llm_calls"] == 1 == model.calls
    llm_facts = [f for f in memory.facts(alice) if "visiting" in f.text]
    assert len(llm_facts) == 1
    fact = llm_facts[0]
    assert fact.sources == [events[1].id] and fact.confidence == 0.8
    assert "15 May 2024" in fact.text or "week of" in fact.text  # "next week" made absolute against the message time
    jo = memory.records.get(alice, "entity", memory.entity_id("Jo"))
    assert jo is not None and jo.entity_type == "person" and events[1].id in jo.sources
    # the explicit extractor adds "my sister Jo" on its own; the model's triple adds the visit
    assert {r.predicate for r in memory.graph(alice).neighbours(memory.entity_id("Jo"))} == {"sister", "visiting_from"}
    (episode,) = memory.records.list(alice, "episode")
    assert episode.summary == "Alice said her sister Jo visits next week." and set(episode.sources) == {e.id for e in events}
    (run_record,) = memory.reflections(alice)
    assert run_record.model == "scripted" and fact.id in run_record.fact_ids
    # the prompt numbered the messages and showed their dates, never raw event ids
    shown = model.prompts[0][-1].content
    assert "[2] Alice (08 May 2024)" in shown and events[1].id not in shown


def test_zero_llm_mode_runs_the_deterministic_extractor_alone(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("I'm allergic to peanuts.", "I live in Lisbon."))
    report = run(build_reflection_graph(memory, None), alice, events)

    assert report["status"] == "done" and report["llm_calls"] == 0
    texts = {f.text for f in memory.facts(alice)}
    assert any("allergic to peanuts" in t for t in texts) and any("Lisbon" in t for t in texts)
    assert memory.reflections(alice)[0].model == "explicit"
    assert memory.records.list(alice, "episode") == []  # no model, no summary: the events are the episode


def test_older_news_arriving_late_is_kept_as_history_not_as_the_current_fact(memory: Memory, alice: Scope) -> None:
    graph = build_reflection_graph(memory, None)
    recent = memory.add_events(alice, said("I moved to Porto last month.", thread="new", start=T0))
    run(graph, alice, recent, thread="new")
    late = memory.add_events(alice, said("I live in Lisbon.", thread="old", start=T0 - timedelta(days=90)))
    report = run(graph, alice, late, thread="old")

    assert report["facts_superseded"] == 0
    (current,) = memory.facts(alice)
    assert current.object == "Porto"
    (history,) = memory.facts(alice, status="superseded")
    assert history.object == "Lisbon" and history.superseded_by == current.id and history.valid_to == current.valid_from
    assert memory.search(alice, "Where does Alice live?", kinds=["fact"], as_of=T0 - timedelta(days=80)).items[0].id == history.id


def test_grounding_rejects_a_fact_its_source_message_does_not_support(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("hi! I'm allergic to cats by the way"))
    model = ScriptedChatModel(script=[extraction(
        {"message": 1, "text": "Alice is a musician who loves jazz", "kind": "preference"},
        {"message": 1, "text": "Alice is allergic to cats", "kind": "attribute"},
    )])
    report = run(build_reflection_graph(memory, model), alice, events)

    texts = [f.text for f in memory.facts(alice)]
    assert not any("jazz" in t for t in texts)
    assert any("allergic to cats" in t for t in texts)
    assert report["rejected"] >= 1


# ================================================================================ validate
def test_invalid_output_is_retried_with_the_error_then_kept_as_a_failure_record(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("I'm vegetarian and I work at a bakery in Porto."))
    model = ScriptedChatModel(script=["{not json", {"facts": [{"message": 9, "text": "Alice is vegetarian", "kind": "attribute"}]}])
    report = run(build_reflection_graph(memory, model, config=ReflectionConfig(max_attempts=2)), alice, events)

    assert report["status"] == "failed" and report["attempts"] == 2 and model.calls == 2
    retry_prompt = model.prompts[1][-1].content
    assert "invalid" in retry_prompt and "no structured output" in retry_prompt
    (failure,) = memory.reflections(alice, status="failed")
    assert "message 9" in failure.reason
    assert memory.stats()["reflection_pending"]["failed"] == 1
    assert [e.id for e in memory.unreflected_events(alice)] == [events[0].id]  # due again, not dropped
    assert any("vegetarian" in f.text for f in memory.facts(alice))  # the explicit facts landed anyway

    # The retry later succeeds and settles the failure record.
    model.script = [extraction({"message": 1, "text": "Alice works at a bakery in Porto", "kind": "attribute"})]
    report = run(build_reflection_graph(memory, model), alice)
    assert report["status"] == "done"
    assert memory.reflections(alice, status="failed") == [] and memory.unreflected_events(alice) == []
    assert memory.stats()["reflection_pending"] == {"failed": 0, "deferred": 0}


def test_a_schema_violation_is_retried_and_the_second_answer_is_used(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("I adopted a cat called Miso last month."))
    model = ScriptedChatModel(script=[
        {"facts": [{"message": 1, "text": "x", "kind": "bogus"}]},
        extraction({"message": 1, "text": "Alice adopted a cat called Miso", "kind": "attribute", "subject": "Alice", "predicate": "has_pet", "object": "Miso"}),
    ])
    report = run(build_reflection_graph(memory, model), alice, events)

    assert report["status"] == "done" and report["attempts"] == 2
    assert "literal_error" in model.prompts[1][-1].content or "Input should be" in model.prompts[1][-1].content
    assert any(f.object == "Miso" for f in memory.facts(alice))


def test_a_provider_exception_is_retried_not_raised(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("I'm flying to Tokyo next March."))
    model = ScriptedChatModel(script=[TimeoutError("provider timed out"), TimeoutError("again")])
    report = run(build_reflection_graph(memory, model), alice, events)
    assert report["status"] == "failed" and "TimeoutError" in memory.reflections(alice)[0].reason


# ================================================================================ reconcile
def test_a_contradiction_supersedes_only_the_matching_fact(memory: Memory, alice: Scope) -> None:
    old = said("I live in Lisbon.", "I love jazz.", "I work at Acme.", start=T0 - timedelta(days=30))
    memory.add_events(alice, old)
    graph = build_reflection_graph(memory, None)
    run(graph, alice, old)
    before = {f.predicate: f for f in memory.facts(alice)}
    assert {"lives_in", "works_at"} <= before.keys()

    new = memory.add_events(alice, said("I moved to Porto last month."))
    report = run(graph, alice, new)

    assert report["facts_superseded"] == 1
    lisbon = memory.get_fact(alice, before["lives_in"].id)
    assert lisbon.status == "superseded" and lisbon.valid_to is not None
    porto = memory.get_fact(alice, lisbon.superseded_by)
    assert porto.object == "Porto" and porto.status == "active"
    for predicate, fact in before.items():
        if predicate != "lives_in":
            assert memory.get_fact(alice, fact.id).status == "active"
    # the old edge is closed, not deleted: the graph still knows where she lived before
    lisbon_edge = memory.records.get(alice, "relation", f"rel_{lisbon.id}")
    assert lisbon_edge is not None and lisbon_edge.valid_to == lisbon.valid_to


def test_model_decisions_use_numbers_and_a_supersede_across_predicates_is_refused(memory: Memory, alice: Scope) -> None:
    likes = memory.add_fact(alice, Fact(text="Alice likes hiking in the mountains", subject="Alice", predicate="likes", object="hiking"))
    memory.add_fact(alice, Fact(text="Alice lives in Lisbon", subject="Alice", predicate="lives_in", object="Lisbon"))
    events = memory.add_events(alice, said("These days I mostly go trail running in the mountains instead of hiking."))
    model = ScriptedChatModel(script=[
        extraction({"message": 1, "text": "Alice mostly goes trail running in the mountains", "kind": "preference",
                    "subject": "Alice", "predicate": "enjoys", "object": "trail running"}),
        {"decisions": [{"candidate": 1, "action": "supersede", "target": 1}]},
    ])
    report = run(build_reflection_graph(memory, model, config=ReflectionConfig(reconcile_with_model=True)), alice, events)

    assert model.calls == 2 and report["llm_calls"] == 2
    decide_prompt = model.prompts[1][-1].content
    assert "1. " in decide_prompt and likes.id not in decide_prompt  # numbered, never raw ids
    assert memory.get_fact(alice, likes.id).status == "active"  # enjoys ≠ likes: supersede refused
    assert any("trail running" in f.text for f in memory.facts(alice))


def test_a_near_duplicate_adds_nothing_and_keeps_both_sources(memory: Memory, alice: Scope) -> None:
    first = memory.add_events(alice, said("I'm allergic to peanuts."))
    graph = build_reflection_graph(memory, None)
    run(graph, alice, first)
    (fact,) = [f for f in memory.facts(alice) if "peanut" in f.text]
    again = memory.add_events(alice, said("Just so you know, I'm allergic to peanuts.", start=T0 + timedelta(days=2)))
    report = run(graph, alice, again)

    assert report["facts_added"] == 0 and report["noops"] >= 1
    (kept,) = [f for f in memory.facts(alice) if "peanut" in f.text]
    assert kept.id == fact.id and set(kept.sources) == {first[0].id, again[0].id}


def test_entities_resolve_to_known_ones_by_alias(memory: Memory, alice: Scope) -> None:
    memory.upsert_entity(alice, Entity(name="Melanie", entity_type="person", aliases=["Mel"]))
    events = memory.add_events(alice, said("Mel and I went to the pottery class yesterday."))
    model = ScriptedChatModel(script=[extraction(
        {"message": 1, "text": "Alice went to a pottery class with Mel", "kind": "event",
         "subject": "Alice", "predicate": "went_with", "object": "Mel"},
    )])
    run(build_reflection_graph(memory, model), alice, events)

    names = {e.name for e in memory.records.list(alice, "entity")}
    assert "Mel" not in names and "Melanie" in names
    (fact,) = [f for f in memory.facts(alice) if f.predicate == "went_with"]
    assert fact.object == "Melanie"


# ================================================================================ idempotence
def test_replaying_the_same_messages_creates_nothing(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("I'm allergic to peanuts.", "My dog is called Biscuit."))
    model = ScriptedChatModel(script=[extraction({"message": 2, "text": "Alice has a dog called Biscuit", "kind": "attribute"})])
    graph = build_reflection_graph(memory, model)
    run(graph, alice)
    before = everything(memory, alice)

    memory.add_events(alice, [Event.model_validate(e.model_dump()) for e in events])  # the same messages again
    report = run(graph, alice)

    assert report == {} and everything(memory, alice) == before and model.calls == 1
    assert pending_batches(memory, alice, 8) == []


# ================================================================================ budgets
def test_budgets_cap_calls_per_batch_and_per_user_hour_and_defer_the_rest(memory: Memory, alice: Scope) -> None:
    clock = [1000.0]
    budget = LLMBudget(per_batch=1, per_user_per_hour=2, clock=lambda: clock[0])
    memory.add_events(alice, said(*[f"I'm learning language number {i} this year." for i in range(6)]))
    model = ScriptedChatModel(script=[extraction() for _ in range(6)])
    graph = build_reflection_graph(memory, model, budget=budget, config=ReflectionConfig(reconcile_with_model=True))

    reports = [r for _, r in iter_reflect(memory, graph, alice, batch_size=2)]

    assert [r["status"] for r in reports] == ["done", "done", "deferred"]
    assert model.calls == 2 == budget.total_calls and budget.refused >= 1
    assert all(r["llm_calls"] <= 1 for r in reports)  # per batch: the decision call found no budget either
    assert len(memory.unreflected_events(alice)) == 2  # the deferred batch is due again
    clock[0] += 3601  # an hour later the budget is back
    (report,) = [r for _, r in iter_reflect(memory, graph, alice, batch_size=2)]
    assert report["status"] == "done" and memory.unreflected_events(alice) == []


# ================================================================================ checkpoints
def test_the_graph_is_checkpointable(memory: Memory, alice: Scope) -> None:
    events = memory.add_events(alice, said("I prefer tea over coffee."))
    graph = build_reflection_graph(memory, None, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "reflect-alice"}}
    graph.invoke({"tenant": "default", "user_id": "alice", "thread_id": "t1", "event_ids": [events[0].id]}, config)

    snapshot = graph.get_state(config)
    assert snapshot.values["report"]["status"] == "done"
    visited = [s.metadata.get("source") for s in graph.get_state_history(config)]
    assert len(visited) >= 7  # one checkpoint per step: load, gate, explicit, ground, resolve, reconcile, write


def test_unknown_event_ids_raise_a_typed_error_and_write_nothing(memory: Memory, alice: Scope) -> None:
    graph = build_reflection_graph(memory, None)
    with pytest.raises(RecordNotFoundError):
        graph.invoke({"user_id": "alice", "thread_id": "t1", "event_ids": ["evt_missing"]})
    assert memory.records.count(alice) == 0


# ================================================================================ isolation
def test_reflecting_one_user_never_touches_another(memory: Memory, alice: Scope, bob: Scope) -> None:
    memory.add_events(bob, said("I live in Lisbon.", speaker="Bob"))
    run(build_reflection_graph(memory, None), bob)
    bob_before = everything(memory, bob)
    memory.add_events(alice, said("I moved to Porto last month.", "I live in Porto now."))
    run(build_reflection_graph(memory, None), alice)

    assert everything(memory, bob) == bob_before
    assert all(f.status == "active" for f in memory.facts(bob, status=None))


# ================================================================================ executor
def test_executor_debounces_per_thread_and_replays_create_nothing(memory: Memory, alice: Scope) -> None:
    model = ScriptedChatModel(script=[extraction({"message": 2, "text": "Alice plays the cello", "kind": "attribute"})])
    executor = ReflectionExecutor(memory, build_reflection_graph(memory, model))
    try:
        first = [{"speaker": "Alice", "text": "hello again", "time": T0}]
        second = [{"speaker": "Alice", "text": "I play the cello in an orchestra.", "time": T0 + timedelta(minutes=1)}]
        started = time.perf_counter()
        executor.submit(alice, "t1", first, after_seconds=5)
        executor.submit(alice, "t1", second, after_seconds=0.3)  # replaces the pending run
        assert time.perf_counter() - started < 1.0  # reflection ran off the caller's path
        assert executor.flush(timeout=30)

        assert executor.stats.cancelled == 1 and executor.stats.runs == 1 and model.calls == 1
        assert executor.stats.reports[-1]["events"] == 2  # one run covered both submits
        before = everything(memory, alice)
        executor.submit(alice, "t1", first + second)  # a replay
        assert executor.flush(timeout=30)
        assert everything(memory, alice) == before and model.calls == 1
    finally:
        executor.shutdown()


async def test_async_callers_never_block_the_event_loop(memory: Memory, alice: Scope) -> None:
    model = ScriptedChatModel(script=[extraction({"message": 1, "text": "Alice plays the cello in an orchestra", "kind": "attribute"})])
    executor = ReflectionExecutor(memory, build_reflection_graph(memory, model))
    try:
        await executor.asubmit(alice, "t1", [{"speaker": "Alice", "text": "I play the cello in an orchestra.", "time": T0}])
        assert await executor.aflush(timeout=30)
        assert any("cello" in f.text for f in memory.facts(alice)) and model.calls == 1
        more = memory.add_events(alice, said("I'm vegetarian.", start=T0 + timedelta(days=1)))
        state = await build_reflection_graph(memory, None).ainvoke({"user_id": "alice", "thread_id": "t1", "event_ids": [more[0].id]})
        assert state["report"]["status"] == "done"
    finally:
        executor.shutdown()


def test_bad_submissions_raise_typed_errors_and_store_nothing(memory: Memory, alice: Scope) -> None:
    executor = ReflectionExecutor(memory, build_reflection_graph(memory, None))
    try:
        with pytest.raises(InvalidRecordError):
            executor.submit(alice, "t1", [{"speaker": "Alice", "text": "I live in Porto."}, {"speaker": "Alice", "text": ""}])
        with pytest.raises(InvalidRecordError):
            executor.submit(alice, "t1", [{"speaker": "Alice", "text": "hi", "thread_id": "t2"}])
        assert memory.records.count(alice) == 0 and executor.pending() == 0
    finally:
        executor.shutdown()


def test_another_users_event_ids_are_not_found(memory: Memory, alice: Scope, bob: Scope) -> None:
    bobs = memory.add_events(bob, said("My PIN is 4321 and I live in Lisbon.", speaker="Bob"))
    with pytest.raises(RecordNotFoundError):
        build_reflection_graph(memory, None).invoke({"user_id": "alice", "thread_id": "t1", "event_ids": [bobs[0].id]})
    assert memory.records.count(alice) == 0 and memory.facts(bob) == [] and memory.unreflected_events(bob) == bobs
