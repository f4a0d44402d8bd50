"""Preference training on the real local model: DPO/KTO with TRL on a user's LoRA, registered
only when held-out preferences improve, served like any adapter, forgotten with the user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from personagraph.agents.adapters.registry import AdapterRegistry
from personagraph.agents.adapters.training import load_training_base
from personagraph.agents.alignment.align import split_by_feedback
from personagraph.agents.alignment.trainer import PreferenceConfig
from personagraph.agents.planner import PlanFeatures, PlannerConfig, RulePolicy
from personagraph.memory import InvalidRecordError, Memory, Scope
from personagraph.tools.feedback import FeedbackRecorder

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
QUESTIONS = [
    "What should I pack for a beach day?", "How do I make tea?", "Tips for a first 5k run?", "How do I water a cactus?",
    "What should I cook tonight?", "How do I focus at work?", "Ideas for a rainy Sunday?", "How do I learn chess?",
]
SHORT = "- keep it simple\n- start small"


def long_answer(question: str) -> str:
    return (f"Well, that is a great question and there are many things to consider. {question[:-1]} depends on many "
            "factors, and I would say you should think carefully about all of them before deciding anything.")


@pytest.fixture(scope="module")
def base() -> tuple[Any, Any]:
    return load_training_base()


def _choices(memory: Memory, scope: Scope, prefer_short: list[bool]) -> None:
    recorder = FeedbackRecorder(memory)
    for i, short_wins in enumerate(prefer_short):
        question = QUESTIONS[i % len(QUESTIONS)]
        _, reply = memory.add_events(scope, [
            {"speaker": scope.user_id, "role": "user", "text": question, "time": T0 + timedelta(minutes=i)},
            {"speaker": "assistant", "role": "assistant", "text": long_answer(question), "time": T0 + timedelta(minutes=i, seconds=1)},
        ])
        recorder.choose(scope, reply.id, [long_answer(question), SHORT], chosen=1 if short_wins else 0)


def _snapshot(model: Any) -> tuple[Any, dict[str, bool], bool, bool]:
    import torch

    ids = torch.tensor([[1, 2, 3, 4, 5]])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the embedder changes the thread count, and with it the rounding
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits.clone()
    finally:
        torch.set_num_threads(threads)
    return logits, {n: p.requires_grad for n, p in model.named_parameters()}, model.training, model.config.use_cache


def test_split_holds_out_the_newest_feedback_never_all() -> None:
    assert split_by_feedback(["a"], 0.25) == ({"a"}, set())
    assert split_by_feedback(["a", "b", "c", "d", "e"], 0.25) == ({"a", "b", "c"}, {"d", "e"})
    assert split_by_feedback(["a", "b"], 0.9) == ({"a"}, {"b"})


def test_dpo_is_registered_when_held_out_preferences_improve_and_the_base_is_untouched(
    memory: Memory, alice: Scope, tmp_path: Path, base: tuple[Any, Any],
) -> None:
    before = _snapshot(base[0])
    _choices(memory, alice, [True] * 6)
    registry = AdapterRegistry(memory, tmp_path / "adapters", base=base)
    outcome = registry.train_preferences(alice, config=PreferenceConfig(max_steps=3, time_budget_s=300))
    record = outcome.record
    assert record.objective == "dpo" and outcome.run is not None and outcome.run.method == "dpo"
    assert record.heldout_count == 2 and record.example_count == 4  # 2 of 6 choices held out, 1 pair each
    assert outcome.after.margin > outcome.before.margin, record.reason  # the measurement behind the gate
    assert record.status == "registered" and Path(record.path, "adapter_config.json").is_file()
    assert set(record.feedback_ids) == {f.id for f in memory.feedback(alice)}
    assert registry.current(alice) == record  # served ahead of nothing, like any adapter
    after = _snapshot(base[0])
    assert after[0].equal(before[0]) and after[1:] == before[1:]
    again = registry.train_preferences(alice, config=PreferenceConfig(max_steps=3, time_budget_s=300))
    assert again.reused and again.record.id == record.id  # the same feedback is not trained twice


def test_training_that_makes_held_out_preferences_worse_is_rejected(memory: Memory, alice: Scope, tmp_path: Path, base: tuple[Any, Any]) -> None:
    # Four choices for the long answer, then two for the short one: learning the first
    # four moves the held-out two the wrong way.
    _choices(memory, alice, [False] * 4 + [True] * 2)
    registry = AdapterRegistry(memory, tmp_path / "adapters", base=base)
    outcome = registry.train_preferences(alice, config=PreferenceConfig(max_steps=4, time_budget_s=300))
    assert outcome.after.margin < outcome.before.margin
    assert outcome.record.status == "rejected" and outcome.record.path is None
    assert "no improvement" in outcome.record.reason
    assert not any(p.name.startswith("adp_") for p in (tmp_path / "adapters").rglob("*") if p.is_dir())
    assert registry.current(alice) is None


@pytest.mark.slow
def test_thumbs_alone_train_kto(memory: Memory, alice: Scope, tmp_path: Path, base: tuple[Any, Any]) -> None:
    recorder = FeedbackRecorder(memory)
    for i in range(6):
        question = QUESTIONS[i]
        answer = SHORT if i % 2 == 0 else long_answer(question)
        _, reply = memory.add_events(alice, [
            {"speaker": "alice", "role": "user", "text": question, "time": T0 + timedelta(minutes=i)},
            {"speaker": "assistant", "role": "assistant", "text": answer, "time": T0 + timedelta(minutes=i, seconds=1)},
        ])
        recorder.thumbs(alice, reply.id, up=answer == SHORT)
    registry = AdapterRegistry(memory, tmp_path / "adapters", base=base)
    outcome = registry.train_preferences(alice, config=PreferenceConfig(max_steps=2, time_budget_s=300))
    record = outcome.record
    assert record.objective == "kto" and outcome.run.method == "kto" and record.heldout_count == 2
    assert "held-out thumbs moved" in record.reason
    assert (record.status == "registered") == (outcome.after.accuracy > 0.5 and outcome.after.margin > 0)
    assert (record.path is not None) == (record.status == "registered")


def test_too_little_feedback_is_a_clear_error(memory: Memory, alice: Scope, tmp_path: Path) -> None:
    registry = AdapterRegistry(memory, tmp_path / "adapters")
    with pytest.raises(InvalidRecordError, match="not enough feedback"):
        registry.train_preferences(alice)
    _choices(memory, alice, [True])
    with pytest.raises(InvalidRecordError, match="at least 2"):  # one choice, one pair... and nothing to hold out
        registry.train_preferences(alice, config=PreferenceConfig(min_pairs=1))


def test_the_planner_serves_an_aligned_adapter_on_its_own_evidence() -> None:
    policy = RulePolicy(PlannerConfig())
    features = PlanFeatures(
        query_need="style", need_reason="a writing request", event_count=40, fact_count=3, adapter_id="adp_x",
        adapter_kind="lora", adapter_gain=None, adapter_objective="dpo",
        adapter_preference="held-out preference accuracy 50% -> 100%",
    )
    plan = policy.plan(features)
    assert plan.backend == "adapter+memory" and plan.adapter_id == "adp_x"
    assert any("dpo adapter adp_x" in reason for reason in plan.reasons)
    plain = features.model_copy(update={"adapter_objective": "sft", "adapter_gain": 0.01})
    assert policy.plan(plain).backend == "prompting"  # a plain adapter still needs its perplexity gain
