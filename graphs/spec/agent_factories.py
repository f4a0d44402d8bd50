"""Factories for tool-using chats: the agent, its tools, a human's approval, and storing the turn.

The user comes from the run (`scope_from_run`: the runtime context or `configurable`), as it
does for the tools: no message can point a node at another user's memory.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.types import interrupt
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import Event, now
from personagraph.tools.run_scope import scope_from_run
from pydantic import Field

from .errors import Unavailable
from .registry import NodeFactory, Params, RouterFactory, register_node, register_router
from .runtime import SpecRuntime
from .state import MessagesState

YES = frozenset({"y", "yes", "ok", "approve", "approved"})
NO = frozenset({"n", "no", "reject", "rejected", "deny"})


class AgentParams(Params):
    system: str | None = Field(None, max_length=8000, description="the system prompt")
    tools: list[str] | None = Field(None, description="the tools it may call (default: all the runtime's)")
    history_turns: int = Field(6, ge=0, le=50, description="the memory thread's latest turns shown at the start")
    model: Literal["chat", "local"] = Field("chat", description="the chat model, or the local one")


class ToolsParams(Params):
    tools: list[str] | None = Field(None, description="the tools it runs (default: all the runtime's)")


class ApproveParams(Params):
    question: str = Field("May I run these tool calls?", max_length=2000)
    tools: list[str] | None = Field(None, description="the tools whose calls need approval (default: all)")


class StoreParams(Params):
    reflect_after_seconds: float = Field(2.0, ge=0, description="quiet time before the thread is reflected")


def _pick(runtime: SpecRuntime, names: list[str] | None) -> list[BaseTool]:
    tools = runtime.toolset()
    if names is None:
        return tools
    by_name = {tool.name: tool for tool in tools}
    for n, name in enumerate(names):
        if name not in by_name:
            raise Unavailable(f"unknown tool {name!r} (the runtime has: {', '.join(sorted(by_name)) or 'none'})", ("params", "tools", n))
    return [by_name[name] for name in names]


def _calls(state: MessagesState) -> list[dict[str, Any]]:
    """The tool calls of the last message, when it is the model's."""
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    return list(last.tool_calls) if isinstance(last, AIMessage) else []


def _agent(runtime: SpecRuntime, params: AgentParams) -> Any:
    model = runtime.need_chat_model() if params.model == "chat" else runtime.local_model
    if model is None:
        raise Unavailable("this node needs the local model, and the runtime has none", ("params", "model"))
    tools = _pick(runtime, params.tools)
    bound = model.bind_tools(tools) if tools else model

    def opening(state: MessagesState, config: RunnableConfig) -> list[BaseMessage]:
        """A new turn: the system prompt and recent history when the chat starts, then the query."""
        query = state.get("query")
        if not isinstance(query, str) or not query.strip():
            raise InvalidRecordError("query must be a non-empty string")
        if state.get("messages"):
            return [HumanMessage(query)]
        scope = scope_from_run(config, runtime.tenant)
        recent = runtime.memory.events(scope, state.get("thread_id") or "default")[-params.history_turns:] if params.history_turns else []
        system = [SystemMessage(params.system)] if params.system else []
        history = [AIMessage(e.text) if e.role == "assistant" else HumanMessage(e.text) for e in recent]
        return [*system, *history, HumanMessage(query)]

    def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        messages = list(state.get("messages") or [])
        answered = not messages or (isinstance(messages[-1], AIMessage) and not messages[-1].tool_calls)
        new = opening(state, config) if answered else []
        reply = bound.invoke([*messages, *new])
        update: dict[str, Any] = {"messages": [*new, reply]}
        if not getattr(reply, "tool_calls", None):
            update["answer"] = str(reply.text)
        return update

    return agent


def _tools(runtime: SpecRuntime, params: ToolsParams) -> Any:
    from langgraph.prebuilt import ToolNode

    tools = _pick(runtime, params.tools)
    if not tools:
        raise Unavailable("there are no tools to run", ("params", "tools"))
    return ToolNode(tools)


def _approve(runtime: SpecRuntime, params: ApproveParams) -> Any:
    gated = None if params.tools is None else {tool.name for tool in _pick(runtime, params.tools)}

    def approve(state: MessagesState) -> dict[str, Any]:
        calls = _calls(state)
        asking = [c for c in calls if gated is None or c["name"] in gated]
        if not asking:
            return {"approved": True}
        answer = interrupt({"question": params.question, "tool_calls": [{"name": c["name"], "args": c["args"]} for c in asking]})
        approved, reason = _decision(answer)
        if approved:
            return {"approved": True}
        note = f"The user declined this call: {reason}" if reason else "The user declined this call."
        return {"approved": False, "messages": [ToolMessage(note, tool_call_id=c["id"], name=c["name"]) for c in calls]}

    return approve


def _decision(answer: Any) -> tuple[bool, str]:
    """(approved, the user's reason) from a resume value: true/false, yes/no, a reason, or
    {"approved": bool, "reason": str}."""
    if isinstance(answer, dict):
        return answer.get("approved") is True, str(answer.get("reason") or "")
    if isinstance(answer, str):
        word = answer.strip().lower()
        return word in YES, "" if word in YES | NO else answer.strip()
    return answer is True, ""


def _store(runtime: SpecRuntime, params: StoreParams) -> Any:
    def store(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        scope, thread = scope_from_run(config, runtime.tenant), state.get("thread_id") or "default"
        asked = now()
        request = {"speaker": scope.user_id, "role": "user", "text": state.get("query") or "", "time": asked, "thread_id": thread}
        reply = {
            "speaker": "assistant", "role": "assistant", "text": state.get("answer") or "(no answer)", "thread_id": thread,
            "time": asked + timedelta(milliseconds=1), "metadata": {"request": Event.model_validate(request).id},
        }
        if runtime.reflection is not None:
            stored = runtime.reflection.submit(scope, thread, [request, reply], after_seconds=params.reflect_after_seconds)
        else:
            stored = runtime.memory.add_events(scope, [request, reply])
        return {"event_ids": [e.id for e in stored]}

    return store


register_node(NodeFactory("agent.chat", "the chat model with the tools bound; answers or asks for tool calls", "messages", _agent, AgentParams))
register_node(NodeFactory("tools.run", "runs the tool calls of the last reply (LangGraph's ToolNode)", "messages", _tools, ToolsParams))
register_node(NodeFactory(
    "human.approve", "interrupts for a human's yes or no on the pending tool calls; a no answers them as declined",
    "messages", _approve, ApproveParams,
))
register_node(NodeFactory(
    "memory.store", "stores the request and the answer as events and hands the thread to reflection", "messages",
    _store, StoreParams,
))
register_router(RouterFactory(
    "tools.has_calls", "whether the last reply asks for tool calls", "messages", ("calls", "answer"),
    lambda runtime, p: lambda state: "calls" if _calls(state) else "answer",
))
register_router(RouterFactory(
    "human.approved", "whether the human approved the pending tool calls", "messages", ("approved", "rejected"),
    lambda runtime, p: lambda state: "approved" if state.get("approved") else "rejected",
))
