"""The planner's rule policy on constructed users and requests, and the LLM policy's guard rails."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from personagraph.agents.planner import (
    LLMPolicy,
    PlanFeatures,
    PlannerConfig,
    PlanningError,
    RulePolicy,
)
from personagraph.agents.query_need import classify_query


def features(query: str, **given: object) -> PlanFeatures:
    need, why = classify_query(query)
    base = {"query_need": need, "need_reason": why, "event_count": 120, "fact_count": 15}
    return PlanFeatures(**{**base, **given})


ADAPTER = {"adapter_id": "adp_1", "adapter_kind": "lora", "adapter_gain": 0.22}


@pytest.mark.parametrize(("query", "need"), [
    ("What's my dog's name?", "recall"),
    ("Where did I say I was moving?", "recall"),
    ("Do you remember my favourite band?", "recall"),
    ("Write a reply to my landlord about the broken heater", "style"),
    ("Draft a tweet announcing my new job", "style"),
    ("Rewrite this in my voice: see you soon", "style"),
    ("Explain how photosynthesis works", "general"),
    ("What is the capital of Portugal?", "general"),
])
def test_query_needs(query: str, need: str) -> None:
    assert classify_query(query)[0] == need


def test_cold_start_gets_plain_prompting() -> None:
    plan = RulePolicy().plan(features("Write a note to my sister", event_count=0, fact_count=0))
    assert plan.backend == "prompting" and not plan.retrieves
    assert any("cold start" in r for r in plan.reasons)


def test_style_request_with_good_adapter_gets_adapter_and_memory() -> None:
    plan = RulePolicy().plan(features("Draft a message to my team about Friday", **ADAPTER))
    assert plan.backend == "adapter+memory" and plan.adapter_id == "adp_1" and plan.generator == "local"
    assert plan.retrieves and "fact" in plan.memory_kinds


def test_fact_lookup_gets_prompting_even_with_an_adapter() -> None:
    plan = RulePolicy().plan(features("Where do I work now?", **ADAPTER))
    assert plan.backend == "prompting" and plan.adapter_id is None
    assert plan.k == PlannerConfig().recall_k and "fact" in plan.memory_kinds


def test_weak_adapter_is_not_used() -> None:
    plan = RulePolicy().plan(features("Write a toast for my brother", **{**ADAPTER, "adapter_gain": 0.01}))
    assert plan.backend == "prompting"
    assert any("below" in r for r in plan.reasons)


def test_tight_latency_drops_retrieval_for_the_adapter() -> None:
    plan = RulePolicy().plan(features("Write a reply to Jo", latency_budget_ms=500, **ADAPTER))
    assert plan.backend == "adapter" and not plan.retrieves


def test_local_only_keeps_prompting_on_the_local_model() -> None:
    remote = {"chat_model_is_local": False}
    assert RulePolicy().plan(features("Where do I live?", **remote)).generator == "chat_model"
    plan = RulePolicy().plan(features("Where do I live?", local_only=True, **remote))
    assert plan.generator == "local" and any("local_only" in r for r in plan.reasons)
    with pytest.raises(PlanningError):
        RulePolicy().plan(features("Where do I live?", local_only=True, local_model_available=False, **remote))


def test_thresholds_are_configurable() -> None:
    strict = RulePolicy(PlannerConfig(min_adapter_gain=0.5))
    assert strict.plan(features("Draft an email to my boss", **ADAPTER)).backend == "prompting"


class _StructuredFake(GenericFakeChatModel):
    """A fake chat model whose structured output parses its scripted JSON reply."""

    def with_structured_output(self, schema, **kwargs):  # type: ignore[no-untyped-def, override]
        return self | (lambda message: schema.model_validate_json(message.content))


def test_llm_policy_cannot_pick_an_adapter_the_user_lacks() -> None:
    model = _StructuredFake(messages=iter([AIMessage(content='{"backend": "adapter", "memory_kinds": [], "k": 0, "reason": "style"}')]))
    plan = LLMPolicy(model).plan(features("Write a poem for my mum"))
    assert plan.backend == "prompting" and plan.policy == "rules"
    assert any("no usable adapter" in r for r in plan.reasons)


def test_llm_policy_choice_is_used_and_explained() -> None:
    model = _StructuredFake(messages=iter([AIMessage(content='{"backend": "adapter+memory", "memory_kinds": ["event"], "k": 5, "reason": "sounds personal"}')]))
    plan = LLMPolicy(model).plan(features("Tell me a joke", **ADAPTER))
    assert (plan.backend, plan.policy, plan.memory_kinds, plan.k) == ("adapter+memory", "llm", ["event"], 5)
    assert plan.reasons[-1] == "LLM policy: sounds personal"


def test_llm_policy_failure_falls_back_to_rules() -> None:
    model = _StructuredFake(messages=iter([AIMessage(content="not json")]))
    plan = LLMPolicy(model).plan(features("Where do I live?"))
    assert plan.policy == "rules" and any("LLM policy failed" in r for r in plan.reasons)


@pytest.mark.parametrize(("query", "need"), [
    ("How do I boil an egg?", "general"),
    ("How do I usually take my coffee?", "recall"),
])
def test_how_to_is_not_recall(query: str, need: str) -> None:
    assert classify_query(query)[0] == need


@pytest.mark.parametrize(("query", "need"), [
    ("How do I write a for loop in Python?", "general"),
    ("What is the answer to 2+2?", "general"),
    ("What did I reply to my landlord?", "recall"),
    ("Can you make a caption for my hiking photo?", "style"),
    ("Write a note to my landlord saying I told him about the leak", "style"),
    ("Reply to Tom: did I leave my keys?", "style"),
])
def test_writing_words_inside_other_questions(query: str, need: str) -> None:
    """Found in review: a writing verb alone does not make a style request."""
    assert classify_query(query)[0] == need


def test_recall_can_go_to_the_adapter_with_memories_when_configured() -> None:
    policy = RulePolicy(PlannerConfig(recall_with_adapter=True))
    plan = policy.plan(features("Where do I work now?", **ADAPTER))
    assert plan.backend == "adapter+memory" and "fact" in plan.memory_kinds and plan.k == PlannerConfig().recall_k
    assert policy.plan(features("Where do I work now?")).backend == "prompting"  # no adapter: prompting as before
