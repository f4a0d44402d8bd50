"""`Assistant`: memory, planner, both generation backends and background reflection, wired once.

    with Assistant.open() as assistant:
        reply = assistant.respond("sam", "Where do I live now?")
        reply.answer, reply.plan.reasons, reply.used

The chat model answers prompting requests; the local model (loaded on first use) serves the
adapter backends, `local_only` requests and contrastive decoding. Exchanges are stored as
events and reflected in the background; `close` waits for pending reflections.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict

from personagraph.agents.adapters.registry import AdapterRegistry, TrainOutcome
from personagraph.agents.adapters.scheduler import RetrainScheduler
from personagraph.agents.adapters.training import TrainConfig
from personagraph.agents.alignment.align import PreferenceOutcome
from personagraph.agents.alignment.instructions import apply_learned, instruction_facts
from personagraph.agents.alignment.preferences import PreferenceData, preference_data
from personagraph.agents.alignment.style_library import SoupOutcome, build_user_soup
from personagraph.agents.alignment.trainer import PreferenceConfig
from personagraph.agents.llm.registry import load_chat_model
from personagraph.agents.planner import Plan, PlannerConfig, PlanPolicy, RulePolicy
from personagraph.agents.prompting import MemoryQuote, UsedMemory
from personagraph.graphs.reflection import (
    LLMBudget,
    ReflectionConfig,
    ReflectionExecutor,
    build_reflection_graph,
)
from personagraph.graphs.respond.graph import (
    RespondConfig,
    RespondNodes,
    compile_respond_graph,
    respond_nodes,
)
from personagraph.memory import ForgetReceipt, Memory, Scope
from personagraph.memory.errors import ConfigurationError, InvalidRecordError
from personagraph.memory.models import (
    MAX_TEXT_CHARS,
    AdapterKind,
    AdapterRecord,
    Fact,
    Feedback,
    PromptMessage,
)
from personagraph.tools.feedback import (
    FeedbackRecorder,
    ReplyProvenance,
    prompt_messages,
    to_langchain,
)

from .factory import open_memory
from .graph_checkpoints import forget_checkpoints
from .settings import Settings


class Reply(BaseModel):
    """An answer and everything that explains it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answer: str
    plan: Plan
    quotes: list[MemoryQuote]
    used: list[UsedMemory]
    event_ids: list[str]
    timings_ms: dict[str, float]
    prompt: list[PromptMessage] = []

    @property
    def reply_id(self) -> str | None:
        """The id of the stored answer: what feedback on it names (None when not recorded)."""
        return self.event_ids[-1] if self.event_ids else None


class Assistant:
    """A personalized assistant over one Memory; thread-safe for concurrent `respond` calls."""

    def __init__(
        self,
        memory: Memory,
        *,
        chat_model: str | BaseChatModel = "local:smollm2",
        reflection_model: str | BaseChatModel | None = None,
        adapters_dir: str | Path | None = None,
        policy: PlanPolicy | None = None,
        settings: Settings | None = None,
        owns_memory: bool = False,
    ) -> None:
        self.settings = settings or Settings()
        self.memory = memory
        self._owns_memory = owns_memory
        local_options = {"repetition_penalty": self.settings.local_repetition_penalty}
        is_local_spec = isinstance(chat_model, str) and chat_model.strip().startswith("local")
        self.chat_model = load_chat_model(chat_model, **(local_options if is_local_spec else {}))
        self.registry = AdapterRegistry(
            memory, adapters_dir or self.settings.adapters_path,
            retrain_after=self.settings.adapter_retrain_after, min_messages=self.settings.adapter_min_messages,
        )
        self.policy = policy or RulePolicy(PlannerConfig())
        reflector = load_chat_model(reflection_model) if reflection_model not in (None, "none") else None
        self.reflection_model = reflector  # None: reflection runs its model-free extractor alone
        self.reflection = ReflectionExecutor(memory, build_reflection_graph(
            memory, reflector, config=ReflectionConfig(use_model=reflector is not None),
            budget=LLMBudget(per_user_per_hour=self.settings.llm_calls_per_user_per_hour),
        ))
        self.retraining = RetrainScheduler(
            self.registry, config=TrainConfig(kind="lora", time_budget_s=self.settings.adapter_train_seconds),
            on_trained=self._trained,
        ) if self.settings.adapter_auto_train else None
        self._local: BaseChatModel | None = None
        self._generator: Any = None
        self._graph: Any = None
        self._nodes: RespondNodes | None = None
        self.feedback = FeedbackRecorder(memory, on_recorded=self._learn_from)
        self._setup = threading.Lock()  # the lazy parts are built once even when first calls race
        self._closed = False

    @classmethod
    def open(cls, settings: Settings | None = None, **kwargs: Any) -> Assistant:
        """An assistant over the memory the settings describe (closed again by `close`)."""
        settings = settings or Settings()
        kwargs.setdefault("chat_model", settings.respond_model)
        kwargs.setdefault("reflection_model", settings.chat_model)
        return cls(open_memory(settings), settings=settings, owns_memory=True, **kwargs)

    # --- answering ---------------------------------------------------------------------------

    def respond(
        self,
        user: str | Scope,
        query: str,
        *,
        thread_id: str = "default",
        history: Sequence[BaseMessage] = (),
        user_name: str | None = None,
        local_only: bool = False,
        latency_budget_ms: int | None = None,
    ) -> Reply:
        """Plan, retrieve, generate, record and schedule reflection for one request; with
        `adapter_auto_train`, also schedule the user's adapter training once it is due."""
        self._check_open()
        state = self.graph.invoke(self._request(user, query, thread_id, history, user_name, local_only, latency_budget_ms))
        if self.retraining is not None:
            self.retraining.maybe_schedule(self.scope(user))
        reply = Reply(
            answer=state["answer"], plan=state["plan"], quotes=state.get("quotes", []), used=state.get("used", []),
            event_ids=state.get("event_ids", []), timings_ms=state.get("timings_ms", {}),
            prompt=prompt_messages(state["prompt"].messages) if state.get("prompt") else [],
        )
        if reply.reply_id:
            self.feedback.remember(self.scope(user), reply.reply_id, ReplyProvenance(
                prompt=tuple(reply.prompt), memory_ids=tuple(q.record_id for q in reply.quotes),
                backend=reply.plan.backend, adapter_id=reply.plan.adapter_id, generator=reply.plan.generator,
            ))
        return reply

    def plan(self, user: str | Scope, query: str, *, local_only: bool = False, latency_budget_ms: int | None = None) -> Plan:
        """The plan `respond` would follow, with its reasons, without retrieving or generating."""
        self._check_open()
        self.graph  # noqa: B018 - builds the nodes
        assert self._nodes is not None
        return self._nodes.plan_only(self._request(user, query, "default", (), None, local_only, latency_budget_ms))

    def _request(
        self, user: str | Scope, query: str, thread_id: str, history: Sequence[BaseMessage], user_name: str | None,
        local_only: bool, latency_budget_ms: int | None,
    ) -> dict[str, Any]:
        scope = self.scope(user)
        def redact(text: str) -> str:  # an over-long request is refused by the graph, unread
            return self.memory.redactor.text(text) if len(text) <= MAX_TEXT_CHARS else text

        return {  # redacted before the graph runs, so no checkpoint of its state holds a secret
            "tenant": scope.tenant, "user_id": scope.user_id, "thread_id": thread_id,
            "query": redact(query) if isinstance(query, str) else query,
            "history": [m.model_copy(update={"content": redact(m.content)}) if isinstance(m.content, str) else m for m in history], "user_name": user_name or self._speaker(scope),
            "local_only": local_only, "latency_budget_ms": latency_budget_ms,
        }

    def _speaker(self, scope: Scope) -> str:
        """The user's own name in their history (imported chats name people), else their id."""
        try:
            return self.registry.user_speaker(scope)
        except InvalidRecordError:
            return scope.user_id

    @property
    def graph(self) -> Any:
        """The compiled respond graph (built on first use: it loads the local model lazily)."""
        with self._setup:
            if self._graph is None:
                self._build_graph()
        return self._graph

    def _build_graph(self) -> None:
        from personagraph.agents.llm.local import LocalChatModel

        local = self.chat_model if isinstance(self.chat_model, LocalChatModel) else LocalChatModel(
            repetition_penalty=self.settings.local_repetition_penalty,
        )
        self._local = local
        self._nodes = respond_nodes(
            self.memory, self.chat_model, local_model=local, adapters=self.registry,
            generator=_LazyGenerator(self), policy=self.policy, reflection=self.reflection,
            config=RespondConfig(token_budget=self.settings.respond_token_budget),
            count_tokens=token_counter(self.chat_model),
        )
        self._graph = compile_respond_graph(self._nodes)

    # --- adapters ----------------------------------------------------------------------------

    def _trained(self, scope: Scope, outcome: TrainOutcome) -> None:
        if self._generator is not None:
            self._generator.forget(scope, outcome.replaced)

    def train_adapter(self, user: str | Scope, kind: AdapterKind = "lora", *, config: TrainConfig | None = None, progress: bool = True) -> TrainOutcome:
        self._check_open()
        scope = self.scope(user)
        outcome = self.registry.train(scope, kind=kind, config=config or TrainConfig(
            kind=kind, time_budget_s=self.settings.adapter_train_seconds,
        ), progress=progress)
        self._trained(scope, outcome)
        return outcome

    def delete_adapters(self, user: str | Scope, kind: AdapterKind | None = None) -> list[AdapterRecord]:
        self._check_open()
        scope = self.scope(user)
        deleted = self.registry.delete(scope, kind)
        if self._generator is not None:
            self._generator.forget(scope, [a.id for a in deleted])
        return deleted

    def forget_user(self, user: str | Scope) -> ForgetReceipt:
        """Everything of the user goes: records (feedback included), index, graph, adapter
        weights, loaded adapters and the log of their recent replies."""
        self._check_open()
        scope = self.scope(user)
        ids = [a.id for a in self.memory.adapters(scope)]
        self.reflection.flush()
        receipt = self.memory.forget_user(scope)
        self.feedback.drop(scope)
        if self.retraining is not None:
            self.retraining.forget(scope)
        if self._generator is not None:
            self._generator.forget(scope, ids)
        # A training under way fails to register (its events are gone) and deletes its own folder;
        # anything else left in the user's folder goes now.
        self.registry.remove_user_folder(scope)
        return forget_checkpoints(self.settings, scope, receipt)

    # --- feedback and alignment (the objective level) ------------------------------------------

    def _learn_from(self, scope: Scope, feedback: Feedback) -> None:
        apply_learned(self.memory, scope)

    def thumbs(self, user: str | Scope, reply_id: str, up: bool, *, comment: str | None = None) -> Feedback:
        self._check_open()
        return self.feedback.thumbs(self.scope(user), reply_id, up, comment=comment)

    def edit(self, user: str | Scope, reply_id: str, edited: str, *, comment: str | None = None) -> Feedback:
        self._check_open()
        return self.feedback.edit(self.scope(user), reply_id, edited, comment=comment)

    def choose(self, user: str | Scope, reply_id: str, alternatives: Sequence[str], chosen: int) -> Feedback:
        self._check_open()
        return self.feedback.choose(self.scope(user), reply_id, alternatives, chosen)

    def alternatives(self, user: str | Scope, reply_id: str, n: int = 2, *, temperature: float = 0.8) -> list[str]:
        """`n` more answers to the request behind a reply, sampled by the chat model from the
        prompt the reply had, for the user to choose among with `choose` (the reply itself
        usually first). Answers the adapter wrote are regenerated by prompting too."""
        self._check_open()
        scope = self.scope(user)
        if not 1 <= n <= 8:
            raise InvalidRecordError("n must be between 1 and 8")
        provenance = self.feedback.provenance(scope, reply_id)
        request = self.feedback.request_of(scope, reply_id)
        messages = to_langchain(provenance.prompt) if provenance and provenance.prompt else [HumanMessage(request.text)]
        local = provenance is not None and provenance.generator == "local"
        model = self.local_model() if local else self.chat_model  # a local answer's prompt never leaves the machine
        if "temperature" in type(model).model_fields:
            model = model.model_copy(update={"temperature": temperature})
        return [str(model.invoke(messages).text) for _ in range(n)]

    def preference_data(self, user: str | Scope) -> PreferenceData:
        self._check_open()
        return preference_data(self.memory.feedback(self.scope(user)))

    def train_preferences(self, user: str | Scope, config: PreferenceConfig | None = None) -> PreferenceOutcome:
        """DPO/KTO on the user's adapter from their feedback; served only if it improved."""
        self._check_open()
        scope = self.scope(user)
        outcome = self.registry.train_preferences(scope, config=config or PreferenceConfig(
            time_budget_s=self.settings.preference_train_seconds,
        ))
        if self._generator is not None and outcome.replaced:
            self._generator.forget(scope, outcome.replaced)
        return outcome

    def build_soup(self, user: str | Scope, weights: dict[str, float] | None = None) -> SoupOutcome:
        """Merge the style adapters with the user's weights (from what is known about them)."""
        self._check_open()
        scope = self.scope(user)
        outcome = build_user_soup(self.registry, scope, self.settings.styles_path, weights=weights)
        if self._generator is not None and outcome.replaced:
            self._generator.forget(scope, outcome.replaced)
        return outcome

    def delete_feedback(self, user: str | Scope, feedback_id: str) -> list[str]:
        """Delete one piece of feedback, the adapters trained on it and the instructions that
        rested on it; returns the ids deleted (retracted instructions stay as history)."""
        self._check_open()
        scope = self.scope(user)
        deleted = self.memory.delete_feedback(scope, feedback_id)
        apply_learned(self.memory, scope)
        if self._generator is not None:
            self._generator.forget(scope, deleted[1:])
        return deleted

    def forget_event(self, user: str | Scope, event_id: str) -> ForgetReceipt:
        """Forget one message and what rests on it, and drop the user's logged reply prompts
        (they may quote it)."""
        self._check_open()
        scope = self.scope(user)
        adapters = {a.id for a in self.memory.adapters(scope)}
        receipt = self.memory.forget_event(scope, event_id)
        self.feedback.drop(scope)
        apply_learned(self.memory, scope)
        if self._generator is not None:
            self._generator.forget(scope, sorted(adapters - {a.id for a in self.memory.adapters(scope)}))
        return receipt

    def learned_instructions(self, user: str | Scope) -> list[Fact]:
        self._check_open()
        return instruction_facts(self.memory, self.scope(user))

    # --- lifecycle ---------------------------------------------------------------------------

    def scope(self, user: str | Scope) -> Scope:
        return user if isinstance(user, Scope) else Scope(tenant=self.settings.tenant, user_id=user)

    def local_model(self) -> BaseChatModel:
        """The local chat model (loaded on first use)."""
        self.graph  # noqa: B018 - builds it
        assert self._local is not None
        return self._local

    def adapter_generator(self) -> Any:
        """The adapter backend on the local model (loaded on first use)."""
        graph_ready = self.graph is not None  # builds the local model reference first
        with self._setup:
            if self._generator is None and graph_ready:
                from personagraph.agents.adapters.backend import LocalAdapterGenerator

                assert self._local is not None
                self._generator = LocalAdapterGenerator(
                    self._local.runtime, max_adapters=self.settings.max_loaded_adapters,  # type: ignore[attr-defined]
                    repetition_penalty=self.settings.local_repetition_penalty,
                )
        return self._generator

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this assistant is closed; open a new one")

    def close(self) -> None:
        """Finish pending reflections and any adapter training under way, then release everything."""
        with self._setup:
            if self._closed:
                return
            self._closed = True
        self.reflection.shutdown(wait=True)
        if self.retraining is not None:
            self.retraining.shutdown(wait=True)
        if self._generator is not None:
            self._generator.close()
        if self._owns_memory:
            self.memory.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LazyGenerator:
    """Creates the adapter backend (and loads the local model) only when a plan needs it."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant

    def generate(self, scope: Scope, messages: list[BaseMessage], adapter: AdapterRecord | None, *, max_new_tokens: int) -> str:
        return self.assistant.adapter_generator().generate(scope, messages, adapter, max_new_tokens=max_new_tokens)


def token_counter(chat_model: BaseChatModel) -> Any:
    """The local tokenizer's exact count when the local model answers; an estimate otherwise."""
    from personagraph.agents.llm.local import LocalChatModel

    if isinstance(chat_model, LocalChatModel):
        return lambda text: len(chat_model.runtime.tokenizer.encode(text))
    return None
