"""What the node factories build on: memory, models, the adapter backend, reflection, tools.

A spec names behaviour; the runtime supplies the live objects. The same spec compiles over an
assistant's parts in the CLI and over fakes in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.tools import BaseTool
from personagraph.agents.planner import PlanPolicy
from personagraph.graphs.reflection import LLMBudget
from personagraph.graphs.reflection.graph import ReflectionConfig, ReflectionNodes
from personagraph.graphs.respond.graph import (
    AdapterGenerator,
    AdapterLookup,
    ReflectionHandoff,
    RespondConfig,
)
from personagraph.memory.api import Memory
from personagraph.memory.models import AdapterRecord
from personagraph.memory.scope import Scope
from personagraph.tools.feedback import FeedbackRecorder

from .errors import Unavailable

if TYPE_CHECKING:
    from personagraph.assistant import Assistant


@dataclass
class SpecRuntime:
    """The live parts a compiled spec runs on. Missing parts are errors only for the nodes that
    need them, raised at compile time with the node's place in the spec."""

    memory: Memory
    chat_model: BaseChatModel | None = None
    local_model: BaseChatModel | None = None
    adapters: AdapterLookup | None = None
    generator: AdapterGenerator | None = None
    policy: PlanPolicy | None = None  # planner.plan's policy when its params set none
    reflection: ReflectionHandoff | None = None  # where recorded exchanges go to be reflected
    reflection_model: BaseChatModel | None = None  # reflection.extract's model
    feedback: FeedbackRecorder | None = None
    tools: Sequence[BaseTool] | None = None  # None: the memory tools over `memory` and `feedback`
    respond: RespondConfig = field(default_factory=RespondConfig)
    count_tokens: Callable[[str], int] | None = None
    reflection_budget: LLMBudget = field(default_factory=LLMBudget)
    tenant: str = "default"  # the tenant of runs that name none
    _reflection_nodes: ReflectionNodes | None = field(default=None, init=False, repr=False, compare=False)

    def need_chat_model(self) -> BaseChatModel:
        if self.chat_model is None:
            raise Unavailable("this node needs a chat model, and the runtime has none")
        return self.chat_model

    def toolset(self) -> list[BaseTool]:
        """The tools agents may call: the given ones, else the memory tools."""
        if self.tools is not None:
            return list(self.tools)
        from personagraph.tools.memory_tools import memory_tools

        return list(memory_tools(self.memory, self.feedback, default_tenant=self.tenant))

    def reflection_nodes(self) -> ReflectionNodes:
        """One set of reflection steps per runtime, so the steps of a graph share a model budget."""
        if self._reflection_nodes is None:
            model = self.reflection_model
            self._reflection_nodes = ReflectionNodes(
                self.memory, model, self.reflection_budget, ReflectionConfig(use_model=model is not None),
            )
        return self._reflection_nodes

    @classmethod
    def from_assistant(cls, assistant: Assistant) -> SpecRuntime:
        """The assistant's memory, models, adapters, planner policy, reflection (and its model-call
        budget) and feedback."""
        from personagraph.assistant import token_counter

        return cls(
            memory=assistant.memory, chat_model=assistant.chat_model, local_model=assistant.local_model(),
            adapters=assistant.registry, generator=_OnDemandGenerator(assistant), policy=assistant.policy,
            reflection=assistant.reflection, reflection_model=assistant.reflection_model, feedback=assistant.feedback,
            respond=RespondConfig(token_budget=assistant.settings.respond_token_budget),
            count_tokens=token_counter(assistant.chat_model),
            reflection_budget=LLMBudget(per_user_per_hour=assistant.settings.llm_calls_per_user_per_hour),
            tenant=assistant.settings.tenant,
        )


@dataclass(frozen=True)
class _OnDemandGenerator:
    """The assistant's adapter backend, loaded (with the local model) only when a plan needs it."""

    assistant: Assistant

    def generate(self, scope: Scope, messages: list[BaseMessage], adapter: AdapterRecord | None, *, max_new_tokens: int) -> str:
        return self.assistant.adapter_generator().generate(scope, messages, adapter, max_new_tokens=max_new_tokens)
