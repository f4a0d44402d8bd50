"""The planner: per request, which backend answers, which memories it gets, and why.

Backends: `prompting` (any chat model, memories quoted in the prompt), `adapter` (the local
base model with the user's own trained adapter, no retrieved memory) and `adapter+memory`
(both). The rule policy is the default: it is instant, its thresholds are settings, and every
decision lists the reasons that made it. An LLM policy may be used instead; its choice is
checked against the same features (no adapter is used that the user does not have, nothing
leaves the machine under `local_only`) and the rules decide when it fails.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from personagraph.memory.errors import ConfigurationError
from pydantic import BaseModel, Field

from .query_need import QueryNeed

log = logging.getLogger(__name__)

Backend = Literal["prompting", "adapter", "adapter+memory"]
Generator = Literal["chat_model", "local"]
MemoryKind = Literal["fact", "event", "episode", "item"]  # item: what store users and LangMem tools wrote


class PlanFeatures(BaseModel):
    """What the planner knows about one request: the query, the user's data and adapter, limits."""

    query_need: QueryNeed
    need_reason: str
    event_count: int = Field(ge=0)
    fact_count: int = Field(ge=0)
    item_count: int = Field(0, ge=0, description="store items (notes an agent or LangMem wrote through PersonaStore)")
    adapter_id: str | None = Field(None, description="set only when an adapter backend is available to serve it")
    adapter_kind: Literal["lora", "prompt"] | None = None
    adapter_gain: float | None = Field(None, description="held-out perplexity drop against the base (0.2 = 20%)")
    adapter_objective: Literal["sft", "dpo", "kto", "soup"] | None = Field(
        None, description="sft: learned from the user's messages; dpo, kto, soup: aligned on their feedback and style",
    )
    adapter_preference: str | None = Field(None, description="what the alignment measured, for the reasons")
    messages_since_training: int = 0
    latency_budget_ms: int | None = None
    local_only: bool = False
    chat_model_is_local: bool = True
    local_model_available: bool = True


class Plan(BaseModel):
    """The decision for one request, with the reasons behind each part of it."""

    backend: Backend
    generator: Generator
    adapter_id: str | None = None
    memory_kinds: list[MemoryKind] = Field(default_factory=list)
    k: int = Field(0, ge=0)
    use_profile: bool = True
    contrast_strength: float = Field(0.0, ge=0.0)
    reasons: list[str]
    policy: Literal["rules", "llm"] = "rules"
    features: PlanFeatures

    @property
    def retrieves(self) -> bool:
        return bool(self.memory_kinds) and self.k > 0


class PlannerConfig(BaseModel):
    """The rule policy's thresholds."""

    min_adapter_gain: float = Field(0.05, description="an adapter below this held-out gain is not used")
    stale_after_messages: int = Field(200, ge=1, description="new messages after which an adapter counts as stale")
    recall_k: int = Field(8, ge=1)
    style_k: int = Field(4, ge=1)
    general_k: int = Field(3, ge=0)
    tight_latency_ms: int = Field(1500, ge=0, description="below this budget: no retrieval for style, fewer memories otherwise")
    tight_k: int = Field(2, ge=1)
    contrast_strength: float = Field(0.0, ge=0.0, description="CoS strength λ for prompting on the local model (0 = off)")
    recall_with_adapter: bool = Field(
        False, description="answer recall requests with adapter + memory when the user has a good adapter "
        "(benchmarks/personalization measured lower answer perplexity that way on LoCoMo with the local model)",
    )


class PlanPolicy(Protocol):
    def plan(self, features: PlanFeatures) -> Plan: ...


class RulePolicy:
    """Thresholded rules; see PlannerConfig for the numbers."""

    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()

    def plan(self, features: PlanFeatures) -> Plan:
        cfg, f = self.config, features
        reasons = [f"query need: {f.query_need} ({f.need_reason})"]
        generator, why_generator = self._generator(f)
        reasons.append(why_generator)
        tight = f.latency_budget_ms is not None and f.latency_budget_ms < cfg.tight_latency_ms
        adapter_ok, why_adapter = self._adapter_usable(f)
        reasons.append(why_adapter)

        if f.event_count == 0 and f.fact_count == 0 and f.item_count == 0:
            reasons.append("cold start: nothing remembered yet, plain prompting")
            return Plan(backend="prompting", generator=generator, reasons=reasons, use_profile=False, features=f)

        if f.query_need == "style" and adapter_ok:
            if tight:
                reasons.append(f"latency budget {f.latency_budget_ms} ms is tight: the adapter alone, no retrieval")
                return Plan(backend="adapter", generator="local", adapter_id=f.adapter_id, use_profile=False, reasons=reasons, features=f)
            reasons.append("style request with a good adapter: the adapter writes, a few memories supply the facts")
            return Plan(
                backend="adapter+memory", generator="local", adapter_id=f.adapter_id,
                memory_kinds=["fact", "event"], k=cfg.style_k, reasons=reasons, features=f,
            )

        if f.query_need == "recall" and adapter_ok and cfg.recall_with_adapter:
            k = cfg.tight_k if tight else cfg.recall_k
            reasons.append(f"fact lookup with a good adapter: the adapter answers, the {k} best memories are quoted")
            return Plan(
                backend="adapter+memory", generator="local", adapter_id=f.adapter_id,
                memory_kinds=["fact", "event", "episode", "item"], k=k, reasons=reasons, features=f,
            )
        if f.query_need == "recall":
            k = cfg.tight_k if tight else cfg.recall_k
            reasons.append(f"fact lookup: quote the {k} best memories (an adapter cannot be trusted to recall facts)")
            kinds: list[MemoryKind] = ["fact", "event", "episode", "item"]
        elif f.query_need == "style":
            k = cfg.tight_k if tight else cfg.style_k
            reasons.append(f"style request without a usable adapter: show the model {k} of the user's memories and messages")
            kinds = ["fact", "event"]
        else:
            k = min(cfg.general_k, cfg.tight_k) if tight else cfg.general_k
            reasons.append(f"general request: the profile and {k} facts at most, to keep the prompt short")
            kinds = ["fact", "item"] if k else []
        if tight:
            reasons.append(f"latency budget {f.latency_budget_ms} ms is tight: fewer memories")
        strength = cfg.contrast_strength if generator == "local" else 0.0
        if strength:
            reasons.append(f"contrastive decoding at strength {strength} on the local model")
        return Plan(
            backend="prompting", generator=generator, memory_kinds=kinds, k=k,
            contrast_strength=strength, reasons=reasons, features=f,
        )

    def _generator(self, f: PlanFeatures) -> tuple[Generator, str]:
        if f.chat_model_is_local:
            return "local", "the chat model is local"
        if f.local_only:
            if not f.local_model_available:
                raise PlanningError("local_only is set but no local model is available")
            return "local", "local_only: the request may not leave this machine, so the local model answers"
        return "chat_model", "prompting goes to the configured chat model"

    def _adapter_usable(self, f: PlanFeatures) -> tuple[bool, str]:
        if f.adapter_id is None:
            return False, "the user has no registered adapter"
        stale = f.messages_since_training >= self.config.stale_after_messages
        note = f"; stale ({f.messages_since_training} new messages since training)" if stale else ""
        aligned = f.adapter_objective not in (None, "sft")
        if aligned and f.adapter_gain is None:  # aligned from a fresh LoRA: its registration gate is the evidence
            return True, f"{f.adapter_objective} adapter {f.adapter_id}: {f.adapter_preference or 'aligned on feedback'}{note}"
        gain = f.adapter_gain or 0.0
        if gain < self.config.min_adapter_gain:
            return False, f"adapter gain {gain:.1%} is below {self.config.min_adapter_gain:.0%}"
        extra = f"; {f.adapter_objective}: {f.adapter_preference}" if aligned and f.adapter_preference else ""
        return True, f"{f.adapter_kind} adapter {f.adapter_id} lowers held-out perplexity by {gain:.1%}{extra}{note}"


class PlanningError(ConfigurationError):
    """No plan can satisfy the request's constraints (e.g. `local_only` with no local model)."""


class _LLMChoice(BaseModel):
    backend: Backend
    memory_kinds: list[MemoryKind] = Field(default_factory=list, max_length=4)
    k: int = Field(4, ge=0, le=20)
    reason: str = Field(max_length=300)


class LLMPolicy:
    """Asks a chat model to choose, then holds the choice to the features; rules on failure."""

    def __init__(self, model: BaseChatModel, fallback: RulePolicy | None = None) -> None:
        self.model = model
        self.fallback = fallback or RulePolicy()

    def plan(self, features: PlanFeatures) -> Plan:
        rules = self.fallback.plan(features)
        try:
            choice = self.model.with_structured_output(_LLMChoice).invoke([
                SystemMessage(
                    "Choose how to answer a user's request. Backends: prompting (memories quoted in the prompt), "
                    "adapter (the user's own fine-tuned model, no memories), adapter+memory (both). "
                    "Reply with backend, memory_kinds (fact, event, episode, item), k and a short reason."
                ),
                HumanMessage(features.model_dump_json(exclude_none=True)),
            ])
        except Exception as exc:  # noqa: BLE001 - any model failure falls back to the rules
            log.warning("LLM planner failed (%s); using the rules", exc)
            return rules.model_copy(update={"reasons": [*rules.reasons, f"LLM policy failed: {exc}"]})
        if not isinstance(choice, _LLMChoice):
            choice = _LLMChoice.model_validate(choice)
        if choice.backend != "prompting" and not self.fallback._adapter_usable(features)[0]:
            return rules.model_copy(update={"reasons": [*rules.reasons, f"LLM chose {choice.backend}, but no usable adapter"]})
        uses_adapter = choice.backend != "prompting"
        kinds = [] if choice.backend == "adapter" else choice.memory_kinds
        return Plan(
            backend=choice.backend,
            generator="local" if uses_adapter else rules.generator,
            adapter_id=features.adapter_id if uses_adapter else None,
            memory_kinds=kinds, k=choice.k if kinds else 0, reasons=[*rules.reasons[:2], f"LLM policy: {choice.reason}"],
            policy="llm", features=features,
        )
