"""The respond graph's logic with a scripted chat model and a recording adapter backend: the
plan decides retrieval and backend, the answer names the memories it used, the exchange is
stored and handed to reflection, and everything stays inside the caller's scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from personagraph.graphs.respond.graph import RespondConfig, build_respond_graph
from personagraph.memory import Memory, Scope
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import AdapterRecord, Event

from tests.scripted_model import ScriptedChatModel

ALICE = Scope(tenant="t", user_id="alice")
BOB = Scope(tenant="t", user_id="bob")


class RecordingGenerator:
    """Stands in for the local model with adapters: records which adapter each call ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, str | None, list[BaseMessage]]] = []

    def generate(self, scope: Scope, messages: list[BaseMessage], adapter: AdapterRecord | None, *, max_new_tokens: int) -> str:
        self.calls.append((scope, adapter.id if adapter else None, messages))
        return "Hey team, Friday drinks at the Crown!"


class Registry:
    """The registry's two lookups over real adapter records in memory."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def current(self, scope: Scope) -> AdapterRecord | None:
        found = self.memory.adapters(scope, status="registered")
        return found[0] if found else None

    def messages_since(self, scope: Scope, record: AdapterRecord | None, speaker: str | None = None) -> int:
        return 0


class Handoff:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.submitted: list[tuple[Scope, str, int]] = []

    def submit(self, scope: Scope, thread_id: str, messages: Any = (), after_seconds: float = 0.0) -> list[Event]:
        self.submitted.append((scope, thread_id, len(messages)))
        return self.memory.add_events(scope, messages)


def _seed(memory: Memory, scope: Scope, city: str) -> None:
    memory.add_events(scope, [{"speaker": "Alice", "text": f"I moved to {city} last spring.", "time": datetime(2024, 3, 1, tzinfo=UTC)}])
    memory.add_fact(scope, {"text": f"Alice lives in {city}", "subject": "Alice", "predicate": "lives_in", "object": city,
                            "fact_kind": "attribute", "sources": [memory.events(scope)[0].id]})


def _adapter(memory: Memory, scope: Scope, tmp_path: Any) -> AdapterRecord:
    folder = tmp_path / scope.user_id
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    return memory.register_adapter(scope, AdapterRecord(
        adapter_kind="lora", status="registered", base_model="smollm2", data_hash=f"hash_{scope.user_id}",
        example_count=50, heldout_count=10, metrics={"gain": 0.3}, path=str(folder),
        sources=[memory.events(scope)[0].id],
    ))


def _run(graph: Any, scope: Scope, query: str, **extra: Any) -> dict[str, Any]:
    return graph.invoke({"tenant": scope.tenant, "user_id": scope.user_id, "query": query, "thread_id": "chat", **extra})


def test_recall_query_prompts_with_quoted_memories_and_records_the_exchange(memory: Memory) -> None:
    _seed(memory, ALICE, "Porto")
    _seed(memory, BOB, "Oslo")
    model = ScriptedChatModel(script=["You live in Porto [m1]."])
    handoff = Handoff(memory)
    graph = build_respond_graph(memory, model, reflection=handoff)
    out = _run(graph, ALICE, "Where do I live?")
    assert out["plan"].backend == "prompting" and out["plan"].features.query_need == "recall"
    prompt_text = "\n".join(str(m.content) for m in model.prompts[0])
    assert "Porto" in prompt_text and "Oslo" not in prompt_text
    assert out["answer"] == "You live in Porto [m1]."
    cited = [u for u in out["used"] if u.reason == "cited"]
    assert len(cited) == 1 and cited[0].record_id == out["quotes"][0].record_id
    assert handoff.submitted == [(ALICE, "chat", 2)]
    stored = [e.text for e in memory.events(ALICE, "chat")]
    assert stored == ["Where do I live?", "You live in Porto [m1]."]
    assert memory.events(BOB, "chat") == []


def test_cold_start_retrieves_nothing(memory: Memory) -> None:
    model = ScriptedChatModel(script=["Hello!"])
    out = _run(build_respond_graph(memory, model), ALICE, "Write a note to my sister")
    assert out["plan"].backend == "prompting" and out["items"] == [] and out["quotes"] == []


def test_style_query_with_adapter_goes_to_the_users_own_adapter(memory: Memory, tmp_path: Any) -> None:
    _seed(memory, ALICE, "Porto")
    _seed(memory, BOB, "Oslo")
    mine = _adapter(memory, ALICE, tmp_path)
    _adapter(memory, BOB, tmp_path)
    generator = RecordingGenerator()
    graph = build_respond_graph(memory, ScriptedChatModel(), adapters=Registry(memory), generator=generator)
    out = _run(graph, ALICE, "Draft a message to my team about drinks in Porto on Friday")
    assert out["plan"].backend == "adapter+memory" and out["plan"].adapter_id == mine.id
    scope, used_adapter, messages = generator.calls[0]
    assert (scope, used_adapter) == (ALICE, mine.id)
    assert "Porto" in str(messages[0].content)  # memories quoted for the adapter too


def test_tight_latency_uses_the_adapter_alone_without_memories(memory: Memory, tmp_path: Any) -> None:
    _seed(memory, ALICE, "Porto")
    _adapter(memory, ALICE, tmp_path)
    generator = RecordingGenerator()
    graph = build_respond_graph(memory, ScriptedChatModel(), adapters=Registry(memory), generator=generator)
    out = _run(graph, ALICE, "Write a reply to Jo", latency_budget_ms=300)
    assert out["plan"].backend == "adapter" and out["quotes"] == []
    assert "Porto" not in " ".join(str(m.content) for m in generator.calls[0][2])


def test_recording_can_be_turned_off(memory: Memory) -> None:
    graph = build_respond_graph(memory, ScriptedChatModel(script=["Hi"]), config=RespondConfig(record=False))
    out = _run(graph, ALICE, "What is a prime number?")
    assert out["event_ids"] == [] and memory.events(ALICE) == []


def test_empty_query_is_a_typed_error_and_stores_nothing(memory: Memory) -> None:
    graph = build_respond_graph(memory, ScriptedChatModel())
    with pytest.raises(InvalidRecordError):
        _run(graph, ALICE, "   ")
    assert memory.events(ALICE) == []


class VanishingGenerator(RecordingGenerator):
    """The adapter was deleted between planning and generation."""

    def generate(self, scope: Scope, messages: list[BaseMessage], adapter: AdapterRecord | None, *, max_new_tokens: int) -> str:
        raise InvalidRecordError("weights are gone")


def test_an_adapter_gone_after_planning_falls_back_to_prompting(memory: Memory, tmp_path: Any) -> None:
    _seed(memory, ALICE, "Porto")
    _adapter(memory, ALICE, tmp_path)
    model = ScriptedChatModel(script=["Hi team!"])
    graph = build_respond_graph(memory, model, adapters=Registry(memory), generator=VanishingGenerator())
    out = _run(graph, ALICE, "Draft a message to my team about Friday")
    assert out["answer"] == "Hi team!" and out["plan"].backend == "prompting"
    assert "adapter unavailable" in out["plan"].reasons[-1]
