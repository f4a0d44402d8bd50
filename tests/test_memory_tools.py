"""The memory tools, one by one, over a real memory: what each returns and changes, for the
user the run names, and what each refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from personagraph.memory import Episode, Event, Fact, InvalidScopeError, Memory, Scope
from personagraph.tools import (
    FeedbackRecorder,
    ScopeNotConfiguredError,
    memory_tools,
)
from personagraph.tools.memory_tools import REMEMBERED_THREAD
from personagraph.tools.memory_views import NOTE
from pydantic import ValidationError

T0 = datetime(2024, 1, 10, 9, 0, tzinfo=UTC)
NAMES = ["search_memory", "remember", "forget", "get_profile", "query_graph", "explain"]


def add_said(memory: Memory, scope: Scope, text: str, at: datetime) -> Event:
    return memory.add_event(scope, {"speaker": scope.user_id, "text": text, "time": at})


def add_triple(memory: Memory, scope: Scope, text: str, triple: tuple[str, str, str], sources: list[str], **extra: Any) -> Fact:
    subject, predicate, obj = triple
    return memory.add_fact(scope, Fact(text=text, subject=subject, predicate=predicate, object=obj, sources=sources, **extra))


@pytest.fixture
def seeded(memory: Memory, alice: Scope, bob: Scope) -> dict[str, str]:
    """Alice lived in Porto, moved to Braga; her sister Ana works in Lisbon. Bob has a secret."""
    porto = add_said(memory, alice, "I live in Porto", T0)
    sister = add_said(memory, alice, "My sister Ana works in Lisbon", T0 + timedelta(hours=1))
    moved = add_said(memory, alice, "I moved to Braga last week", T0 + timedelta(days=60))
    lives = add_triple(memory, alice, "Alice lives in Porto", ("alice", "lives_in", "Porto"), [porto.id], valid_from=T0)
    braga = Fact(text="Alice lives in Braga", subject="alice", predicate="lives_in", object="Braga",
                 sources=[moved.id], valid_from=T0 + timedelta(days=53))
    memory.supersede_fact(alice, lives.id, braga)
    ana = add_triple(memory, alice, "Alice's sister is Ana", ("alice", "sister", "Ana"), [sister.id], fact_kind="relationship")
    add_triple(memory, alice, "Ana works in Lisbon", ("Ana", "works_in", "Lisbon"), [sister.id])
    secret = add_said(memory, bob, "My locker number is 8675309 and I live in Zanzibar", T0)
    bobs = add_triple(memory, bob, "Bob lives in Zanzibar", ("bob", "lives_in", "Zanzibar"), [secret.id], valid_from=T0)
    return {"porto": porto.id, "sister": sister.id, "moved": moved.id, "lives": lives.id, "braga": braga.id,
            "ana": ana.id, "bob_event": secret.id, "bob_fact": bobs.id}


@pytest.fixture
def tools(memory: Memory) -> dict[str, BaseTool]:
    return {tool.name: tool for tool in memory_tools(memory)}


def run(tools: dict[str, BaseTool], name: str, args: dict[str, Any], user: str = "alice") -> ToolMessage:
    """Call a tool the way ToolNode does: a tool call in, a ToolMessage out."""
    call = {"name": name, "args": args, "id": "call_1", "type": "tool_call"}
    return tools[name].invoke(call, config={"configurable": {"user_id": user}})


def data(message: ToolMessage) -> dict[str, Any]:
    assert message.status == "success", message.content
    out = json.loads(message.content)
    assert out.pop("note") == NOTE
    return out


def failed(message: ToolMessage) -> str:
    assert message.status == "error", message.content
    return str(message.content)


# --------------------------------------------------------------------------------- the set

def test_the_tools_are_the_documented_set_and_none_takes_a_user(memory: Memory) -> None:
    assert [t.name for t in memory_tools(memory)] == NAMES
    with_feedback = memory_tools(memory, FeedbackRecorder(memory))
    assert [t.name for t in with_feedback] == [*NAMES, "record_feedback"]
    for tool in with_feedback:
        assert not {"user_id", "tenant", "scope", "namespace", "user"} & set(tool.args), tool.name


def test_a_run_without_a_user_is_a_typed_error_not_a_default_user(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    for name, args in [("search_memory", {"query": "where do I live"}), ("get_profile", {}),
                       ("forget", {"memory_id": seeded["porto"]})]:
        with pytest.raises(ScopeNotConfiguredError, match="names no user"):
            tools[name].invoke(args)
        with pytest.raises(ScopeNotConfiguredError):
            tools[name].invoke(args, config={"configurable": {"user_id": ""}})
    with pytest.raises(InvalidScopeError):
        tools["get_profile"].invoke({}, config={"configurable": {"user_id": "../bob"}})


def test_arguments_that_name_a_user_are_refused(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    for extra in ({"user_id": "bob"}, {"tenant": "other"}, {"scope": {"user_id": "bob"}}, {"namespace": ["pg", "default", "bob"]}):
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            run(tools, "search_memory", {"query": "locker number", **extra})
        with pytest.raises(ValidationError):
            run(tools, "explain", {"memory_id": seeded["bob_fact"], **extra})


# --------------------------------------------------------------------------------- search

def test_search_returns_the_users_memories_as_quoted_data(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    found = data(run(tools, "search_memory", {"query": "where does Alice live", "k": 3}))
    assert 0 < len(found["memories"]) <= 3
    assert found["memories"][0]["id"] == seeded["braga"]  # the current fact, not the superseded one
    assert {"id", "kind", "text", "time", "sources"} <= set(found["memories"][0])
    facts = data(run(tools, "search_memory", {"query": "where does Alice live", "kinds": ["fact"]}))["memories"]
    assert {m["kind"] for m in facts} == {"fact"} and seeded["lives"] not in {m["id"] for m in facts}


def test_search_as_of_a_date_sees_what_was_true_then(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    then = data(run(tools, "search_memory", {"query": "Alice lives in", "kinds": ["fact"], "as_of": "2024-02-01"}))
    ids = {m["id"] for m in then["memories"]}
    assert seeded["lives"] in ids and seeded["braga"] not in ids
    with pytest.raises(ValidationError, match="ISO date"):  # ToolNode hands this back to the model
        run(tools, "search_memory", {"query": "x", "as_of": "last spring"})


def test_search_never_reaches_another_user(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    out = run(tools, "search_memory", {"query": "bob locker number 8675309 Zanzibar", "k": 50})
    assert "8675309" not in out.content and "Zanzibar" not in out.content
    assert "8675309" in run(tools, "search_memory", {"query": "locker number"}, user="bob").content


# --------------------------------------------------------------------------------- remember

def test_remember_keeps_the_request_and_a_fact_resting_on_it(memory: Memory, alice: Scope, tools: dict[str, BaseTool]) -> None:
    out = data(run(tools, "remember", {"text": "Alice is allergic to peanuts", "kind": "attribute",
                                       "predicate": "allergic_to", "object": "peanuts"}))
    fact = memory.get_fact(alice, out["remembered"]["id"])
    (event,) = memory.events(alice, REMEMBERED_THREAD)
    assert fact.sources == [event.id] == [out["source_event"]]
    assert (event.text, event.role, event.metadata) == ("Alice is allergic to peanuts", "user", {"via": "remember"})
    assert (fact.subject, fact.predicate, fact.object) == ("alice", "allergic_to", "peanuts")
    assert memory.unreflected_events(alice) == []  # reflection will not extract it again
    assert memory.profile(alice).dislikes[0].value == "peanuts"
    graph = data(run(tools, "query_graph", {"entity": "peanuts"}))
    assert [(r["subject"], r["predicate"]) for r in graph["relations"]] == [("alice", "allergic_to")]


def test_remember_can_replace_a_fact_of_the_user_only(memory: Memory, alice: Scope, bob: Scope, tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    bob_before = memory.export(bob)["records"]
    refused = failed(run(tools, "remember", {"text": "Alice lives in Zanzibar", "replaces": seeded["bob_fact"]}))
    assert "no fact" in refused and "Zanzibar" not in refused.replace("Alice lives in Zanzibar", "")
    assert "no longer active" in failed(run(tools, "remember", {"text": "Alice lives in Faro", "replaces": seeded["lives"]}))
    assert memory.events(alice, REMEMBERED_THREAD) == []  # a refused request stores nothing
    out = data(run(tools, "remember", {"text": "Alice lives in Faro", "predicate": "lives_in", "object": "Faro",
                                       "replaces": seeded["braga"]}))
    assert memory.get_fact(alice, seeded["braga"]).superseded_by == out["remembered"]["id"]
    assert memory.profile(alice).location.value == "Faro"
    assert memory.export(bob)["records"] == bob_before


def test_remember_refuses_half_a_relation(tools: dict[str, BaseTool]) -> None:
    with pytest.raises(ValidationError, match="predicate and object together"):
        run(tools, "remember", {"text": "I like it", "predicate": "likes"})
    with pytest.raises(ValidationError):
        run(tools, "remember", {"text": "x", "subject": "Ana"})
    with pytest.raises(ValidationError):
        run(tools, "remember", {"text": "x", "predicate": "likes", "object": "   "})


# --------------------------------------------------------------------------------- forget

def test_forget_a_message_forgets_what_rests_on_it(memory: Memory, alice: Scope, tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    out = data(run(tools, "forget", {"memory_id": seeded["sister"]}))
    assert out["events_deleted"] == [seeded["sister"]] and out["deleted"]["fact"] == 2 and out["complete"]
    assert memory.profile(alice).relationships == []
    assert "nothing called 'Ana'" in failed(run(tools, "query_graph", {"entity": "Ana"}))


def test_forget_a_fact_forgets_the_messages_it_came_from(memory: Memory, alice: Scope, tools: dict[str, BaseTool]) -> None:
    remembered = data(run(tools, "remember", {"text": "My locker code is 4242"}))["remembered"]
    out = data(run(tools, "forget", {"memory_id": remembered["id"]}))
    assert out["deleted"] == {"event": 1, "fact": 1, "reflection": 1} and out["complete"]
    assert "4242" not in json.dumps(memory.export(alice))


def test_forget_a_fact_with_no_message_behind_it_retracts_it(memory: Memory, alice: Scope, tools: dict[str, BaseTool]) -> None:
    fact = memory.add_fact(alice, Fact(text="Alice likes tea", fact_kind="preference"))
    out = data(run(tools, "forget", {"memory_id": fact.id}))
    assert out["retracted"] and memory.get_fact(alice, fact.id).status == "retracted"
    assert memory.profile(alice).interests == []


def test_forget_cannot_touch_another_user(memory: Memory, bob: Scope, tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    before = memory.export(bob)["records"]
    for target in (seeded["bob_event"], seeded["bob_fact"], "ent_nope", "x" * 200):
        assert "in this user's memory" in failed(run(tools, "forget", {"memory_id": target}))
    assert memory.export(bob)["records"] == before


# --------------------------------------------------------------------------------- profile

def test_get_profile_names_the_facts_behind_each_value(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    profile = data(run(tools, "get_profile", {}))["profile"]
    assert profile["location"] == {"value": "Braga", "fact_ids": [seeded["braga"]]}
    assert profile["relationships"] == [{"value": "Alice's sister is Ana", "fact_ids": [seeded["ana"]]}]
    assert data(run(tools, "get_profile", {}, user="carol"))["profile"] == {}


# --------------------------------------------------------------------------------- graph

def test_query_graph_neighbours_now_and_as_of_a_date(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    now = data(run(tools, "query_graph", {"entity": "alice"}))
    assert {(r["predicate"], r["object"]) for r in now["relations"]} == {("lives_in", "Braga"), ("sister", "Ana")}
    assert now["left_out"] == 0
    then = data(run(tools, "query_graph", {"entity": "Alice", "as_of": "2024-01-20"}))
    assert ("lives_in", "Porto") in {(r["predicate"], r["object"]) for r in then["relations"]}
    two_hops = data(run(tools, "query_graph", {"entity": "alice", "hops": 2}))
    assert ("Ana", "works_in", "Lisbon") in {(r["subject"], r["predicate"], r["object"]) for r in two_hops["relations"]}


def test_query_graph_paths_between_two_entities(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    out = data(run(tools, "query_graph", {"entity": "alice", "to": "lisbon"}))
    assert out["to"] == "Lisbon"
    assert [[r["predicate"] for r in path] for path in out["paths"]] == [["sister", "works_in"]]
    assert data(run(tools, "query_graph", {"entity": "alice", "to": "Lisbon", "hops": 1}))["paths"] == []


def test_query_graph_knows_only_the_users_entities(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    for name in ("Zanzibar", "bob"):
        assert "nothing called" in failed(run(tools, "query_graph", {"entity": name}))
    assert "nothing called" in failed(run(tools, "query_graph", {"entity": "alice", "to": "Zanzibar"}))
    assert data(run(tools, "query_graph", {"entity": "my sister Ana"}))["entity"] == "Ana"  # a name inside words


# --------------------------------------------------------------------------------- explain

def test_explain_a_fact_gives_its_messages_history_and_relations(memory: Memory, alice: Scope, tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    old = data(run(tools, "explain", {"memory_id": seeded["lives"]}))
    assert old["fact"]["status"] == "superseded" and old["superseded_by"]["id"] == seeded["braga"]
    assert [(s["id"], s["text"], s["thread"]) for s in old["sources"]] == [(seeded["porto"], "I live in Porto", "default")]
    assert old["relations"][0] | {"valid_to": None} == {
        "subject": "alice", "predicate": "lives_in", "object": "Porto", "valid_from": T0.isoformat(), "valid_to": None,
        "fact_id": seeded["lives"]}
    new = data(run(tools, "explain", {"memory_id": seeded["braga"]}))
    assert [f["id"] for f in new["supersedes"]] == [seeded["lives"]] and new["superseded_by"] is None
    memory.forget_event(alice, seeded["porto"])
    assert data(run(tools, "explain", {"memory_id": seeded["braga"]}))["supersedes"] == []


def test_explain_an_episode_gives_the_messages_left_behind_it(memory: Memory, alice: Scope, tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    episode = memory.add_episode(alice, Episode(summary="Alice talked about where her family lives", start=T0,
                                                end=T0 + timedelta(hours=1), sources=[seeded["porto"], seeded["sister"]]))
    memory.forget_event(alice, seeded["porto"])
    out = data(run(tools, "explain", {"memory_id": episode.id}))
    assert out["episode"]["summary"].startswith("Alice talked")
    assert [s["id"] for s in out["sources"]] == [seeded["sister"]]


def test_explain_does_not_reach_another_user(tools: dict[str, BaseTool], seeded: dict[str, str]) -> None:
    for target in (seeded["bob_fact"], seeded["bob_event"], seeded["porto"]):  # an event is not explained either
        message = failed(run(tools, "explain", {"memory_id": target}))
        assert "no fact or episode" in message and "Zanzibar" not in message


# --------------------------------------------------------------------------------- feedback

def test_record_feedback_answers_a_wrong_reply_id_instead_of_ending_the_run(memory: Memory, alice: Scope, bob: Scope) -> None:
    tools = {t.name: t for t in memory_tools(memory, FeedbackRecorder(memory))}
    _, reply = memory.add_events(bob, [
        {"speaker": "bob", "role": "user", "text": "Hi", "time": T0},
        {"speaker": "assistant", "role": "assistant", "text": "Hello!", "time": T0 + timedelta(seconds=5)},
    ])
    assert "no reply" in failed(run(tools, "record_feedback", {"reply_id": reply.id, "rating": "down"}))
    assert memory.feedback(bob) == []
    assert "recorded down" in run(tools, "record_feedback", {"reply_id": reply.id, "rating": "down"}, user="bob").content
    with pytest.raises(ScopeNotConfiguredError):
        tools["record_feedback"].invoke({"reply_id": reply.id, "rating": "up"})
