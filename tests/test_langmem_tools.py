"""LangMem's memory tools, unchanged, on PersonaStore: as a LangMem user would wire them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from personagraph.memory import Memory, Scope
from personagraph.memory.persona_store import PersonaStore
from personagraph.memory.store_namespaces import NamespaceLayout

langmem = pytest.importorskip("langmem", reason="langmem is a test extra: pip install -e '.[test]'")

NAMESPACE = ("memories", "{langgraph_user_id}")  # LangMem's own convention: the user is label 1


@pytest.fixture
def store(memory: Memory) -> PersonaStore:
    return PersonaStore(memory, layout=NamespaceLayout(user_at=1))


def _config(user: str) -> dict[str, Any]:
    return {"configurable": {"langgraph_user_id": user}}


def test_manage_and_search_tools_work_per_user(store: PersonaStore, memory: Memory) -> None:
    manage = langmem.create_manage_memory_tool(namespace=NAMESPACE, store=store)
    search = langmem.create_search_memory_tool(namespace=NAMESPACE, store=store)
    created = manage.invoke({"content": "Prefers window seats on long flights", "action": "create"}, config=_config("alice"))
    memory_id = created.split()[-1]
    manage.invoke({"content": "Allergic to peanuts", "action": "create"}, config=_config("bob"))

    found = json.loads(search.invoke({"query": "airplane seat preference"}, config=_config("alice")))
    assert found[0]["key"] == memory_id and found[0]["value"]["content"] == "Prefers window seats on long flights"
    assert all("peanut" not in json.dumps(hit) for hit in found)  # bob's memory is not alice's
    assert [item.value["content"] for item in memory.items(Scope(user_id="alice"))] == ["Prefers window seats on long flights"]

    manage.invoke({"content": "Prefers aisle seats now", "action": "update", "id": memory_id}, config=_config("alice"))
    (hit,) = json.loads(search.invoke({"query": "seat"}, config=_config("alice")))
    assert hit["value"]["content"] == "Prefers aisle seats now"

    manage.invoke({"action": "delete", "id": memory_id}, config=_config("alice"))
    assert json.loads(search.invoke({"query": "seat"}, config=_config("alice"))) == []
    assert memory.items(Scope(user_id="bob"))[0].value["content"] == "Allergic to peanuts"


async def test_async_tools_on_the_same_store(store: PersonaStore) -> None:
    manage = langmem.create_manage_memory_tool(namespace=NAMESPACE, store=store)
    search = langmem.create_search_memory_tool(namespace=NAMESPACE, store=store)
    await manage.ainvoke({"content": "Runs a marathon every spring"}, config=_config("carol"))
    found = json.loads(await search.ainvoke({"query": "running races"}, config=_config("carol")))
    assert found[0]["value"]["content"] == "Runs a marathon every spring"
    assert json.loads(await search.ainvoke({"query": "running races"}, config=_config("dave"))) == []


def test_tools_find_the_store_a_graph_was_compiled_with(store: PersonaStore) -> None:
    """No store argument: LangMem reads it from the graph's runtime, as in its docs."""
    tools = [langmem.create_manage_memory_tool(namespace=NAMESPACE), langmem.create_search_memory_tool(namespace=NAMESPACE)]
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    app = graph.compile(store=store)

    def call(name: str, args: dict[str, Any], user: str) -> str:
        message = AIMessage("", tool_calls=[{"name": name, "args": args, "id": "call_1"}])
        out = app.invoke({"messages": [HumanMessage("hi"), message]}, config=_config(user))
        return str(out["messages"][-1].content)

    call("manage_memory", {"content": "Lives with two cats", "action": "create"}, "erin")
    assert "two cats" in call("search_memory", {"query": "pets"}, "erin")
    assert "two cats" not in call("search_memory", {"query": "pets"}, "frank")
