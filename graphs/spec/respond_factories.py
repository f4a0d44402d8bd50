"""Factories over the respond graph's steps: context, plan, recall, generate, record.

Each node is the respond graph's own method, on nodes configured by the factory's params, so a
spec's assistant behaves as `Assistant.respond` does, step for step, wherever the spec wires it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, cast

from langchain_core.language_models import BaseChatModel
from personagraph.agents.planner import LLMPolicy, PlannerConfig, RulePolicy
from personagraph.graphs.respond.graph import RespondNodes, RespondState, respond_nodes
from pydantic import Field

from .registry import NodeFactory, Params, RouterFactory, register_node, register_router
from .runtime import SpecRuntime


def _nodes(runtime: SpecRuntime, params: Params | None = None, *, generates: bool = False) -> RespondNodes:
    """The respond steps over the runtime, with the params' settings in place of the defaults.
    Only `generate` calls the chat model, so only a node that `generates` requires one."""
    overrides = params.model_dump(exclude_none=True) if params else {}
    # The other steps read at most whether the chat model is local: without one, they run on None.
    chat_model = runtime.need_chat_model() if generates else cast(BaseChatModel, runtime.chat_model)
    return respond_nodes(
        runtime.memory, chat_model, local_model=runtime.local_model, adapters=runtime.adapters,
        generator=runtime.generator, policy=runtime.policy, reflection=runtime.reflection,
        config=replace(runtime.respond, **overrides), count_tokens=runtime.count_tokens,
    )


class ContextParams(Params):
    history_turns: int | None = Field(None, ge=0, le=50, description="the thread's latest turns given as history")


class PlanParams(PlannerConfig, Params):
    """The rule policy's thresholds; with none set, the runtime's policy plans."""

    policy: Literal["rules", "llm"] = Field("rules", description="llm: the chat model chooses, the rules check it")


class PromptingParams(Params):
    instructions: str | None = Field(None, max_length=4000, description="the system prompt's instructions")
    token_budget: int | None = Field(None, ge=64, description="prompt tokens for instructions, memories, history and query")
    max_new_tokens: int | None = Field(None, ge=1, le=4096)


class AdapterParams(Params):
    token_budget: int | None = Field(None, ge=64)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)


class RecordParams(Params):
    reflect_after_seconds: float | None = Field(None, ge=0, description="quiet time before the thread is reflected")


def _plan(runtime: SpecRuntime, params: PlanParams) -> Any:
    nodes = _nodes(runtime)
    thresholds = params.model_dump(exclude={"policy"}, exclude_unset=True)
    if params.model_fields_set:
        rules = RulePolicy(PlannerConfig(**thresholds))
        nodes.policy = LLMPolicy(runtime.need_chat_model(), rules) if params.policy == "llm" else rules
    return nodes.plan


def _prompting(runtime: SpecRuntime, params: PromptingParams) -> Any:
    nodes = _nodes(runtime, params, generates=True)

    def generate(state: RespondState) -> dict[str, Any]:
        plan = state["plan"]
        if plan.backend == "prompting":
            return nodes.generate(state)
        plan = plan.model_copy(update={
            "backend": "prompting", "adapter_id": None, "reasons": [*plan.reasons, "the graph routed this request to prompting"],
        })
        return {"plan": plan, **nodes.generate({**state, "plan": plan})}

    return generate


register_node(NodeFactory(
    "memory.context", "what the planner needs: the query's need, how much is remembered, the user's adapter, "
    "the thread's latest turns", "respond", lambda runtime, p: _nodes(runtime, p).context, ContextParams,
))
register_node(NodeFactory(
    "planner.plan", "picks the backend, the memory kinds and how many, with its reasons", "respond", _plan, PlanParams,
))
register_node(NodeFactory(
    "memory.recall", "the scoped hybrid search the plan asked for", "respond", lambda runtime, p: _nodes(runtime).retrieve,
))
register_node(NodeFactory(
    "prompting.generate", "answers by prompting the chat model with the quoted memories (any plan)", "respond",
    _prompting, PromptingParams,
))
register_node(NodeFactory(
    "adapter.generate", "answers with the user's adapter on the local model (by prompting if the plan says so "
    "or the adapter is gone)", "respond", lambda runtime, p: _nodes(runtime, p, generates=True).generate, AdapterParams,
))
register_node(NodeFactory(
    "memory.record", "stores the exchange as events and hands the thread to reflection", "respond",
    lambda runtime, p: _nodes(runtime, p).record, RecordParams,
))
register_router(RouterFactory(
    "planner.backend", "the plan's backend", "respond", ("prompting", "adapter", "adapter+memory"),
    lambda runtime, p: lambda state: state["plan"].backend,
))
