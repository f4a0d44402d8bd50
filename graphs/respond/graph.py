"""The respond state machine: one request in, a personalized answer out, the exchange kept.

    context → plan → retrieve → generate → record → END

`context` gathers what the planner needs cheaply (the query's need, how much the user has, the
user's adapter and its quality); `plan` picks the backend, the memory kinds and how many;
`retrieve` runs the scoped search the plan asked for; `generate` answers through prompting
(any chat model, or the local one with optional contrastive decoding) or through the local
base model with the user's adapter; `record` stores the exchange as events and hands the
thread to the reflection executor, so what was said becomes memory in the background.
The plan, its reasons, the memories quoted and those the answer used stay in the state and
are returned to the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer
from personagraph.agents.adapters.examples import persona_instruction
from personagraph.agents.alignment.instructions import learned_rules
from personagraph.agents.contrastive import ContrastSpec
from personagraph.agents.llm.errors import UnknownAdapterError
from personagraph.agents.planner import Plan, PlanFeatures, PlanPolicy, RulePolicy
from personagraph.agents.prompting import (
    MemoryQuote,
    PersonalPrompt,
    UsedMemory,
    build_personal_prompt,
    used_memories,
)
from personagraph.agents.query_need import classify_query
from personagraph.memory.api import Memory
from personagraph.memory.errors import ConfigurationError, InvalidRecordError
from personagraph.memory.models import (
    MAX_TEXT_CHARS,
    AdapterRecord,
    Event,
    check_text,
    now,
)
from personagraph.memory.scope import Scope
from personagraph.memory.search import RetrievedItem
from pydantic import ValidationError
from typing_extensions import (
    TypedDict,  # pydantic (LangGraph Server's input schemas) needs this one on Python < 3.12
)


class AdapterGenerator(Protocol):
    """Generates on the local base model with one user's adapter (or none)."""

    def generate(self, scope: Scope, messages: list[BaseMessage], adapter: AdapterRecord | None, *, max_new_tokens: int) -> str: ...


class AdapterLookup(Protocol):
    def current(self, scope: Scope) -> AdapterRecord | None: ...

    def messages_since(self, scope: Scope, record: AdapterRecord | None, speaker: str | None = None) -> int: ...


class ReflectionHandoff(Protocol):
    def submit(self, scope: Scope, thread_id: str, messages: Sequence[dict[str, Any]] = (), after_seconds: float = 0.0) -> list[Event]: ...


class RespondState(TypedDict, total=False):
    # input
    tenant: str
    user_id: str
    thread_id: str
    query: str
    user_name: str
    history: list[BaseMessage]
    local_only: bool
    latency_budget_ms: int | None
    # working data and output
    asked_at: datetime
    recent_ids: list[str]  # the thread's last turns, shown as history, so not retrieved again
    features: PlanFeatures
    plan: Plan
    items: list[RetrievedItem]
    prompt: PersonalPrompt
    answer: str
    quotes: list[MemoryQuote]
    used: list[UsedMemory]
    event_ids: list[str]
    timings_ms: dict[str, float]


@dataclass
class RespondConfig:
    token_budget: int = 600
    max_new_tokens: int = 160
    instructions: str | None = None
    reflect_after_seconds: float = 2.0
    record: bool = True
    history_turns: int = 6  # the thread's latest turns given as chat history when none is passed


@dataclass
class RespondNodes:
    memory: Memory
    chat_model: BaseChatModel
    chat_model_is_local: bool
    local_model: BaseChatModel | None
    adapters: AdapterLookup | None
    generator: AdapterGenerator | None
    policy: PlanPolicy
    reflection: ReflectionHandoff | None
    config: RespondConfig
    count_tokens: Callable[[str], int] | None = None

    def context(self, state: RespondState) -> dict[str, Any]:
        started = time.perf_counter()
        scope = _scope(state)
        query = state.get("query", "")
        check_text(query, "query", MAX_TEXT_CHARS)  # refused before the model runs: it could not be stored
        query = self.memory.redactor.text(query)  # served graphs get raw input: the model never sees a secret
        need, why = classify_query(query)
        adapter = self.adapters.current(scope) if self.adapters and self.generator else None
        features = PlanFeatures(
            query_need=need, need_reason=why,
            event_count=self.memory.records.count(scope, "event"),
            fact_count=len(self.memory.facts(scope)),
            item_count=self.memory.records.count(scope, "item"),  # a count, not a read: this runs on every request
            adapter_id=adapter.id if adapter else None,
            adapter_kind=adapter.adapter_kind if adapter else None,
            adapter_gain=adapter.metrics.get("gain") if adapter else None,
            adapter_objective=adapter.objective if adapter else None,
            adapter_preference=_alignment_note(adapter),
            messages_since_training=self.adapters.messages_since(scope, adapter) if adapter and self.adapters else 0,
            latency_budget_ms=state.get("latency_budget_ms"),
            local_only=bool(state.get("local_only", False)),
            chat_model_is_local=self.chat_model_is_local,
            local_model_available=self.local_model is not None,
        )
        update: dict[str, Any] = {"features": features, "asked_at": now(), "query": query}
        if not state.get("history") and self.config.history_turns:
            recent = self.memory.events(scope, state.get("thread_id") or "default")[-self.config.history_turns:]
            update["history"] = [_as_message(e) for e in recent]
            update["recent_ids"] = [e.id for e in recent]
        return {**update, "timings_ms": {"context": _ms(started)}}

    def plan_only(self, state: RespondState) -> Plan:
        """What the graph would decide for this request, without retrieving or generating."""
        return self.policy.plan(self.context(state)["features"])

    def plan(self, state: RespondState) -> dict[str, Any]:
        started = time.perf_counter()
        plan = self.policy.plan(state["features"])
        return {"plan": plan, "timings_ms": {**state["timings_ms"], "plan": _ms(started)}}

    def retrieve(self, state: RespondState) -> dict[str, Any]:
        started = time.perf_counter()
        plan, scope = state["plan"], _scope(state)
        items: list[RetrievedItem] = []
        if plan.retrieves:
            shown = set(state.get("recent_ids", []))
            found = self.memory.search(scope, state["query"], kinds=plan.memory_kinds, k=plan.k + len(shown)).items
            said_by_assistant = {
                e.id for e in self.memory.records.get_many(scope, "event", [i.id for i in found if i.kind == "event"]).values()
                if e.role == "assistant"  # type: ignore[attr-defined]
            }
            # The assistant's own past replies are not memories of the user: quoting them feeds
            # a model its earlier mistakes back as facts.
            seen_texts: set[str] = set()
            for item in found:
                text = " ".join(item.text.lower().split())
                if item.id in said_by_assistant or (item.sources and shown.issuperset(item.sources)) or text in seen_texts:
                    continue
                seen_texts.add(text)  # a question asked five times is one memory, not five
                items.append(item)
            items = items[: plan.k]
        return {"items": items, "timings_ms": {**state["timings_ms"], "retrieve": _ms(started)}}

    def generate(self, state: RespondState) -> dict[str, Any]:
        started = time.perf_counter()
        plan, scope = state["plan"], _scope(state)
        prompt = self._prompt(state, scope, plan)
        update: dict[str, Any] = {}
        answer = None
        if plan.backend != "prompting":
            try:
                answer = self._with_adapter(scope, plan, prompt)
            except (InvalidRecordError, ConfigurationError, UnknownAdapterError, OSError) as exc:
                # Retrained, deleted or forgotten between planning and now: answer anyway.
                reason = f"adapter unavailable ({exc}); answered by prompting instead"
                plan = plan.model_copy(update={"backend": "prompting", "adapter_id": None, "reasons": [*plan.reasons, reason]})
                prompt = self._prompt(state, scope, plan)
                update["plan"] = plan
        if answer is None:
            answer = self._prompting(plan, prompt)
        quotes = prompt.quotes if plan.backend != "adapter" else []
        return {
            **update, "prompt": prompt, "answer": answer, "quotes": quotes, "used": used_memories(answer, quotes),
            "timings_ms": {**state["timings_ms"], "generate": _ms(started)},
        }

    def _with_adapter(self, scope: Scope, plan: Plan, prompt: PersonalPrompt) -> str:
        assert self.generator is not None and self.adapters is not None
        adapter = self.adapters.current(scope)
        if adapter is None or adapter.id != plan.adapter_id:
            raise InvalidRecordError(f"adapter {plan.adapter_id!r} is no longer this user's current adapter")
        messages = prompt.neutral_messages if plan.backend == "adapter" else prompt.messages
        return self.generator.generate(scope, messages, adapter, max_new_tokens=self.config.max_new_tokens)

    def _prompt(self, state: RespondState, scope: Scope, plan: Plan) -> PersonalPrompt:
        profile = self.memory.profile(scope) if plan.use_profile and plan.backend != "adapter" else None
        name = state.get("user_name") or scope.user_id
        # An adapter was trained to write as the user under its persona line: serve it the same way.
        instructions = persona_instruction(name) if plan.backend != "prompting" else self.config.instructions
        return build_personal_prompt(
            state["query"], profile=profile, items=state.get("items", []), history=state.get("history", []),
            token_budget=self.config.token_budget, count_tokens=self.count_tokens,
            instructions=instructions, user_name=name, answer_rules=learned_rules(self.memory, scope),
        )

    def _prompting(self, plan: Plan, prompt: PersonalPrompt) -> str:
        if plan.generator == "local":
            model = self.local_model or self.chat_model
            kwargs: dict[str, Any] = {"max_new_tokens": self.config.max_new_tokens}
            if plan.contrast_strength > 0 and prompt.quotes:
                kwargs["contrast"] = ContrastSpec(neutral_messages=prompt.neutral_messages, strength=plan.contrast_strength)
            reply = model.invoke(prompt.messages, **kwargs)
        else:
            reply = self.chat_model.invoke(prompt.messages)
        return _text(reply)

    def record(self, state: RespondState) -> dict[str, Any]:
        started = time.perf_counter()
        if not self.config.record:
            return {"event_ids": []}
        scope, thread = _scope(state), state.get("thread_id") or "default"
        asked = state.get("asked_at") or now()
        answered = max(now(), asked + timedelta(milliseconds=1))  # the reply always sorts after the request
        speaker = state.get("user_name") or scope.user_id
        turns = [
            {"speaker": speaker, "role": "user", "text": state["query"], "time": asked, "thread_id": thread},
        ]
        try:
            request_id = Event.model_validate(turns[0]).id  # ids come from content: the reply can name its request
        except ValidationError as exc:
            raise InvalidRecordError(f"the request cannot be stored: {exc.errors()[0]['msg']}") from None
        turns.append(
            {"speaker": "assistant", "role": "assistant", "text": _storable(state["answer"]), "time": answered, "thread_id": thread,
             "metadata": {"backend": state["plan"].backend, "adapter": state["plan"].adapter_id or "", "request": request_id,
                          "generator": state["plan"].generator, "used": ",".join(u.record_id for u in state["used"])[:1900]}},
        )
        if self.reflection is not None:
            stored = self.reflection.submit(scope, thread, turns, after_seconds=self.config.reflect_after_seconds)
        else:
            stored = self.memory.add_events(scope, turns)
        return {"event_ids": [e.id for e in stored], "timings_ms": {**state["timings_ms"], "record": _ms(started)}}


def respond_nodes(
    memory: Memory,
    chat_model: BaseChatModel,
    *,
    local_model: BaseChatModel | None = None,
    adapters: AdapterLookup | None = None,
    generator: AdapterGenerator | None = None,
    policy: PlanPolicy | None = None,
    reflection: ReflectionHandoff | None = None,
    config: RespondConfig | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> RespondNodes:
    """The graph's nodes, wired. `chat_model` answers prompting requests; `local_model` (the
    same when the chat model is local) serves `local_only` and contrastive requests; `adapters`
    and `generator` enable the adapter backends; `reflection` turns exchanges into memory."""
    from personagraph.agents.llm.local import LocalChatModel

    is_local = isinstance(chat_model, LocalChatModel)
    return RespondNodes(
        memory, chat_model, is_local, local_model or (chat_model if is_local else None), adapters, generator,
        policy or RulePolicy(), reflection, config or RespondConfig(), count_tokens,
    )


def compile_respond_graph(nodes: RespondNodes, checkpointer: Checkpointer = None) -> CompiledStateGraph:
    graph = StateGraph(RespondState)
    order = ("context", "plan", "retrieve", "generate", "record")
    for name in order:
        graph.add_node(name, getattr(nodes, name))
    graph.add_edge(START, order[0])
    for a, b in pairwise(order):
        graph.add_edge(a, b)
    graph.add_edge(order[-1], END)
    return graph.compile(checkpointer=checkpointer)


def build_respond_graph(memory: Memory, chat_model: BaseChatModel, *, checkpointer: Checkpointer = None, **options: Any) -> CompiledStateGraph:
    """Compile the respond graph; `options` are those of `respond_nodes`."""
    return compile_respond_graph(respond_nodes(memory, chat_model, **options), checkpointer)


def _alignment_note(adapter: AdapterRecord | None) -> str | None:
    """What the aligned adapter's gate measured, as its record says (for the plan's reasons)."""
    if adapter is None or not adapter.aligned:
        return None
    return adapter.reason[:300]


def _as_message(event: Event) -> BaseMessage:
    if event.role == "assistant":
        return AIMessage(event.text)
    return HumanMessage(event.text)


def _storable(answer: str) -> str:
    """The answer as an event can hold it: a runaway model's answer is kept cut, with a marker,
    rather than lose the whole exchange (the caller still gets all of it)."""
    if not answer:
        return "(no answer)"
    if len(answer) <= MAX_TEXT_CHARS:
        return answer
    marker = " [... the rest of this answer was not kept]"
    return answer[:MAX_TEXT_CHARS - len(marker) - 500] + marker  # room for redaction markers


def _scope(state: RespondState) -> Scope:
    return Scope(tenant=state["tenant"], user_id=state["user_id"])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _text(reply: Any) -> str:
    if isinstance(reply, BaseMessage):
        content = reply.content
        return content if isinstance(content, str) else "".join(str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content)
    return str(reply)

