"""The example specs compile and run on real memory: the assistant answers by prompting or with
the user's adapter as the plan routes it, the Slack helper stops for approval before it changes
memory and resumes either way, reflection runs without a model, and a spec can add state
fields for factories registered in code. Models are scripted: this tests the graphs' logic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from personagraph.graphs.spec import (
    NODE_FACTORIES,
    NodeFactory,
    Params,
    SpecRuntime,
    compile_spec,
    load_spec,
    parse_spec,
)
from personagraph.memory import Memory, Scope
from personagraph.memory.models import AdapterRecord
from personagraph.tools.memory_tools import memory_tools

from personagraph import Settings
from personagraph.assistant import Assistant
from tests.scripted_model import ScriptedChatModel
from tests.test_respond_graph import RecordingGenerator, Registry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ALICE = Scope(user_id="alice")
BOB = Scope(user_id="bob")


def _seed(memory: Memory, scope: Scope, city: str) -> None:
    memory.add_events(scope, [{
        "speaker": scope.user_id.title(), "text": f"I moved to {city} last spring.", "thread_id": "chat",
        "time": datetime(2024, 3, 1, tzinfo=UTC),
    }])


def _request(scope: Scope, query: str) -> dict[str, Any]:
    return {"tenant": scope.tenant, "user_id": scope.user_id, "thread_id": "chat", "query": query}


def _adapter(memory: Memory, scope: Scope, tmp_path: Path) -> AdapterRecord:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    return memory.register_adapter(scope, AdapterRecord(
        adapter_kind="lora", status="registered", base_model="smollm2", data_hash="hash_alice", example_count=50,
        heldout_count=10, metrics={"gain": 0.3}, path=str(folder), sources=[memory.events(scope)[0].id],
    ))


def test_personal_assistant_prompts_with_the_users_memories_and_records_the_exchange(memory: Memory) -> None:
    _seed(memory, ALICE, "Porto")
    _seed(memory, BOB, "Oslo")
    model = ScriptedChatModel(script=["You live in Porto [m1]."])
    graph = compile_spec(load_spec(EXAMPLES / "personal_assistant.yaml"), SpecRuntime(memory, chat_model=model))
    out = graph.invoke(_request(ALICE, "Where do I live?"))
    assert out["answer"] == "You live in Porto [m1]." and out["plan"].backend == "prompting"
    prompt = "\n".join(str(m.content) for m in model.prompts[0])
    assert "Porto" in prompt and "Oslo" not in prompt
    assert [e.text for e in memory.events(ALICE, "chat")][-2:] == ["Where do I live?", "You live in Porto [m1]."]


def test_personal_assistant_routes_style_requests_to_the_users_adapter(memory: Memory, tmp_path: Path) -> None:
    _seed(memory, ALICE, "Porto")
    mine = _adapter(memory, ALICE, tmp_path)
    generator = RecordingGenerator()
    runtime = SpecRuntime(memory, chat_model=ScriptedChatModel(), adapters=Registry(memory), generator=generator)
    graph = compile_spec(load_spec(EXAMPLES / "personal_assistant.yaml"), runtime)
    out = graph.invoke(_request(ALICE, "Draft a message to my team about drinks in Porto on Friday"))
    assert out["plan"].backend == "adapter+memory" and [(scope, adapter) for scope, adapter, _ in generator.calls] == [(ALICE, mine.id)]
    assert out["answer"] == "Hey team, Friday drinks at the Crown!"


def test_a_spec_that_routes_to_prompting_overrides_an_adapter_plan(memory: Memory, tmp_path: Path) -> None:
    _seed(memory, ALICE, "Porto")
    _adapter(memory, ALICE, tmp_path)
    text = (EXAMPLES / "personal_assistant.yaml").read_text().replace("adapter+memory: adapter", "adapter+memory: prompting")
    generator = RecordingGenerator()
    model = ScriptedChatModel(script=["Drinks Friday!"])
    runtime = SpecRuntime(memory, chat_model=model, adapters=Registry(memory), generator=generator)
    out = compile_spec(parse_spec(text), runtime).invoke(_request(ALICE, "Draft a message to my team about drinks on Friday"))
    assert generator.calls == [] and out["answer"] == "Drinks Friday!"
    assert out["plan"].backend == "prompting" and out["plan"].reasons[-1] == "the graph routed this request to prompting"


def test_planner_params_replace_the_runtime_policy(memory: Memory) -> None:
    _seed(memory, ALICE, "Porto")
    text = (EXAMPLES / "personal_assistant.yaml").read_text().replace(
        "    uses: planner.plan\n", "    uses: planner.plan\n    params: {recall_k: 1}\n",
    )
    out = compile_spec(parse_spec(text), SpecRuntime(memory, chat_model=ScriptedChatModel(script=["Porto."]))).invoke(
        _request(ALICE, "Where do I live?"),
    )
    assert out["plan"].k == 1 and "quote the 1 best memories" in out["plan"].reasons[-1]


def test_a_spec_that_only_recalls_runs_without_a_chat_model(memory: Memory) -> None:
    _seed(memory, ALICE, "Porto")
    spec = parse_spec(
        "version: 1\nstate: {schemas: [respond]}\nentry: context\nfinish: [recall]\nnodes:\n"
        "  - {id: context, uses: memory.context}\n  - {id: plan, uses: planner.plan}\n  - {id: recall, uses: memory.recall}\n"
        "edges:\n  - {from: context, to: plan}\n  - {from: plan, to: recall}\n",
    )
    request = _request(ALICE, "Where do I live?") | {"thread_id": "elsewhere"}  # not the thread's history: a memory
    out = compile_spec(spec, SpecRuntime(memory)).invoke(request)
    assert any("Porto" in item.text for item in out["items"]) and "answer" not in out


def _slack(memory: Memory, script: list[Any]) -> tuple[Any, ScriptedChatModel]:
    """The Slack helper over the memory tools, `remember` first (the scripted model calls the first tool)."""
    tools = {tool.name: tool for tool in memory_tools(memory)}
    model = ScriptedChatModel(script=script)
    runtime = SpecRuntime(memory, chat_model=model, tools=[tools["remember"], tools["forget"], tools["search_memory"]])
    return compile_spec(load_spec(EXAMPLES / "slack_helper.yaml"), runtime, checkpointer=InMemorySaver()), model


CONFIG = {"configurable": {"thread_id": "run-1", "user_id": "alice"}}


def test_slack_helper_waits_for_approval_before_it_remembers(memory: Memory) -> None:
    graph, model = _slack(memory, [{"text": "Alice is vegan"}, "Noted: you're vegan."])
    stopped = graph.invoke({"thread_id": "slack", "query": "Remember that I'm vegan"}, CONFIG)
    [pending] = stopped["__interrupt__"]
    assert pending.value == {"question": "May I change what I remember about you?",
                             "tool_calls": [{"name": "remember", "args": {"text": "Alice is vegan"}}]}
    assert memory.facts(ALICE) == []  # nothing changes before the human says yes
    out = graph.invoke(Command(resume="yes"), CONFIG)
    assert out["answer"] == "Noted: you're vegan."
    assert [f.text for f in memory.facts(ALICE)] == ["Alice is vegan"] and memory.facts(BOB) == []
    assert [e.text for e in memory.events(ALICE, "slack")] == ["Remember that I'm vegan", "Noted: you're vegan."]
    assert str(model.prompts[0][0].content).startswith("You are a helpful assistant in a Slack workspace.")


def test_slack_helper_tells_the_model_when_the_human_declines(memory: Memory) -> None:
    graph, model = _slack(memory, [{"text": "Alice is vegan"}, "Alright, I won't."])
    graph.invoke({"thread_id": "slack", "query": "Remember that I'm vegan"}, CONFIG)
    out = graph.invoke(Command(resume="not now please"), CONFIG)
    declined = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert [m.content for m in declined] == ["The user declined this call: not now please"]
    assert out["answer"] == "Alright, I won't." and memory.facts(ALICE) == []
    assert isinstance(model.prompts[-1][-1], ToolMessage)


def test_slack_helper_runs_calls_that_need_no_approval_at_once(memory: Memory) -> None:
    _seed(memory, ALICE, "Porto")
    tools = {tool.name: tool for tool in memory_tools(memory)}
    model = ScriptedChatModel(script=[{"query": "where I live"}, "You live in Porto."])
    runtime = SpecRuntime(memory, chat_model=model, tools=[tools["search_memory"], tools["remember"], tools["forget"]])
    graph = compile_spec(load_spec(EXAMPLES / "slack_helper.yaml"), runtime, checkpointer=InMemorySaver())
    out = graph.invoke({"thread_id": "slack", "query": "Where do I live?"}, CONFIG)
    assert "__interrupt__" not in out and out["answer"] == "You live in Porto."
    assert "Porto" in str(out["messages"][-2].content)  # the search's result, shown to the model


def test_reflection_only_turns_messages_into_facts_without_a_model(memory: Memory) -> None:
    memory.add_events(ALICE, [{"speaker": "Alice", "text": "My cat is called Pixel.", "thread_id": "chat",
                               "time": datetime(2024, 3, 1, tzinfo=UTC)}])
    graph = compile_spec(load_spec(EXAMPLES / "reflection_only.yaml"), SpecRuntime(memory))
    out = graph.invoke({"tenant": "default", "user_id": "alice", "thread_id": "chat"})
    assert out["report"]["status"] == "done" and out["report"]["llm_calls"] == 0
    assert any("Pixel" in fact.text for fact in memory.facts(ALICE))
    assert memory.unreflected_events(ALICE, "chat") == []
    again = graph.invoke({"tenant": "default", "user_id": "alice", "thread_id": "chat"})
    assert again["events"] == [] and again["report"] == {}  # nothing left to reflect: load ends the run


def test_extra_state_fields_reach_factories_registered_in_code(memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    class ShoutParams(Params):
        times: int = 1

    def shout(runtime: SpecRuntime, params: ShoutParams) -> Any:
        return lambda state: {"answer": (state["query"].upper() + "!" * params.times) if state["loud"] else state["query"]}

    monkeypatch.setitem(NODE_FACTORIES, "test.shout", NodeFactory("test.shout", "shouts", "respond", shout, ShoutParams))
    spec = parse_spec(
        "version: 1\nstate:\n  schemas: [respond]\n  fields: {loud: bool}\nentry: shout\nfinish: [shout]\n"
        "nodes:\n  - {id: shout, uses: test.shout, params: {times: 2}}\n",
    )
    store = InMemoryStore()
    graph = compile_spec(spec, SpecRuntime(memory), store=store)
    assert graph.store is store
    assert graph.invoke({"query": "hi", "loud": True}) == {"query": "hi", "loud": True, "answer": "HI!!"}


def test_a_runtime_from_an_assistant_runs_the_personal_assistant(memory: Memory, tmp_path: Path) -> None:
    _seed(memory, ALICE, "Porto")
    model = ScriptedChatModel(script=["Porto."])
    settings = Settings(data_dir=tmp_path, adapter_auto_train=False, llm_calls_per_user_per_hour=7)
    assistant = Assistant(memory, chat_model=model, reflection_model="none", settings=settings)
    try:
        runtime = SpecRuntime.from_assistant(assistant)
        assert runtime.chat_model is model and runtime.reflection is assistant.reflection and runtime.adapters is assistant.registry
        assert runtime.reflection_budget.per_user_per_hour == 7  # reflection.* nodes spend the assistant's budget
        out = compile_spec(load_spec(EXAMPLES / "personal_assistant.yaml"), runtime).invoke(_request(ALICE, "Where do I live?"))
    finally:
        assistant.close()  # waits for the exchange's reflection
    assert out["answer"] == "Porto." and memory.unreflected_events(ALICE, "chat") == []
