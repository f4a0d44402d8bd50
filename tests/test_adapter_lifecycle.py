"""The per-user adapter lifecycle end to end on the real local model: train from memory →
gate on held-out perplexity → register → serve through the assistant (mixed batches with
other users) → retrain threshold → delete and forget, weights included."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from personagraph.agents.adapters.training import TrainConfig
from personagraph.agents.llm.runtime import GenerationRequest
from personagraph.memory import Memory, MiniLMEmbedder, RecordStore, Scope
from personagraph.memory.index.edge import EdgeIndex

from personagraph.assistant import Assistant
from personagraph.settings import Settings

pytestmark = pytest.mark.slow

ZED = Scope(tenant="t", user_id="zed")
GIB = Scope(tenant="t", user_id="gib")
TOPICS = ["the gym", "my bike", "pizza night", "the rain", "band practice", "the new job", "my cat", "the beach",
          "coffee", "the train", "football", "my sister", "the garden", "a film", "the market", "homework"]
START = datetime(2024, 1, 1, tzinfo=UTC)


def _conversation(speaker: str, lines: list[str]) -> list[dict]:
    turns = []
    for n, line in enumerate(lines):
        at = START + timedelta(hours=n)
        turns.append({"speaker": "Friend", "role": "other", "text": f"What's new with {TOPICS[n % len(TOPICS)]}?", "time": at, "thread_id": f"s{n // 8}"})
        turns.append({"speaker": speaker, "text": line, "time": at + timedelta(minutes=1), "thread_id": f"s{n // 8}"})
    return turns


def _zed_lines() -> list[str]:
    """A very regular voice an adapter learns in a few steps."""
    return [f"yo yo! {TOPICS[n % len(TOPICS)]} is mega, zed out ✌" for n in range(40)]


def _gibberish_then_english() -> list[str]:
    """Trained on noise, held out on English: an adapter that can only get worse."""
    rng = random.Random(7)
    noise = ["".join(rng.choice("qxzjkvw") for _ in range(40)) for _ in range(32)]
    english = [f"I went to {TOPICS[n]} yesterday and it was lovely, thanks for asking." for n in range(8)]
    return noise + english


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("lifecycle")
    memory = Memory(RecordStore.sqlite(root / "records.sqlite"), EdgeIndex(root / "index"), MiniLMEmbedder())
    memory.add_events(ZED, _conversation("Zed", _zed_lines()))
    memory.add_events(GIB, _conversation("Gib", _gibberish_then_english()))
    settings = Settings(data_dir=root, adapter_retrain_after=10, adapter_auto_train=False)
    helper = Assistant(memory, chat_model="local:smollm2", reflection_model="none", settings=settings, owns_memory=True)
    yield helper
    helper.close()


def _fast(lr: float) -> TrainConfig:
    return TrainConfig(kind="lora", lora_lr=lr, max_steps=12, batch_size=8, time_budget_s=120)


def test_an_adapter_that_beats_the_base_is_registered_with_its_figures(assistant: Assistant) -> None:
    outcome = assistant.train_adapter(ZED, config=_fast(3e-3), progress=False)
    record = outcome.record
    assert outcome.registered and record.gain > 0.15
    assert record.metrics["adapter_ppl"] < record.metrics["base_ppl"]
    assert (record.example_count, record.heldout_count) == (32, 8)
    assert record.base_model and len(record.data_hash) >= 8 and Path(record.path, "adapter_config.json").is_file()
    remeasured = assistant.registry.evaluate(ZED, record.id)  # on the same held-out messages
    assert remeasured["heldout"] == 8 and remeasured["base_ppl"] == pytest.approx(record.metrics["base_ppl"], rel=1e-4)
    again = assistant.train_adapter(ZED, config=_fast(3e-3), progress=False)
    assert again.reused and again.record.id == record.id  # same data: nothing retrained


def test_an_adapter_that_does_not_beat_the_base_is_not_registered(assistant: Assistant) -> None:
    outcome = assistant.train_adapter(GIB, config=_fast(0.5), progress=False)  # noise at a wild rate
    assert not outcome.registered and outcome.record.gain <= 0
    assert outcome.record.path is None and "not above" in outcome.record.reason
    assert not any((assistant.settings.adapters_path / GIB.tenant / GIB.user_id).glob("*/adapter_config.json"))
    assert assistant.registry.current(GIB) is None


def test_style_requests_use_the_users_own_adapter_and_nobody_elses(assistant: Assistant) -> None:
    zed = assistant.respond(ZED, "Write a message to my friend about the gym")
    assert zed.plan.backend == "adapter+memory" and zed.plan.adapter_id == assistant.registry.current(ZED).id
    assert zed.answer
    gib = assistant.respond(GIB, "Write a message to my friend about the gym")
    assert gib.plan.backend == "prompting" and gib.plan.adapter_id is None
    recall = assistant.respond(ZED, "What did I say about pizza night?")
    assert recall.plan.backend == "prompting"


def test_concurrent_users_share_a_mixed_batch_and_each_gets_their_own_adapter(assistant: Assistant) -> None:
    generator = assistant.adapter_generator()
    record = assistant.registry.current(ZED)
    messages = [SystemMessage("You are Zed. Write the next message as Zed would."), HumanMessage("Friend: What's new with the beach?")]
    alone_zed = generator.generate(ZED, messages, record, max_new_tokens=12)
    alone_gib = generator.generate(GIB, messages, None, max_new_tokens=12)
    assert alone_zed != alone_gib
    batches_before = generator.batcher.stats()["batches"]
    results: dict[str, str] = {}
    start = threading.Barrier(2)

    def ask(name: str, scope: Scope, adapter: object) -> None:
        start.wait()
        results[name] = generator.generate(scope, messages, adapter, max_new_tokens=12)  # type: ignore[arg-type]

    threads = [threading.Thread(target=ask, args=("zed", ZED, record)), threading.Thread(target=ask, args=("gib", GIB, None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"zed": alone_zed, "gib": alone_gib}
    assert generator.batcher.stats()["batches"] - batches_before <= 2


def test_retraining_is_due_after_enough_new_messages(assistant: Assistant) -> None:
    due, why = assistant.registry.retrain_due(ZED)
    assert not due, why
    later = START + timedelta(days=30)
    assistant.memory.add_events(ZED, [
        {"speaker": "Zed", "text": f"yo yo! update {n}, zed out ✌", "time": later + timedelta(minutes=n), "thread_id": "new"} for n in range(10)
    ])
    due, why = assistant.registry.retrain_due(ZED)
    assert due, why


def test_deleting_and_forgetting_remove_weights_and_unload(assistant: Assistant) -> None:
    record = assistant.registry.current(ZED)
    generator = assistant.adapter_generator()
    assert generator.pool.loaded()
    deleted = assistant.delete_adapters(ZED)
    assert [d.id for d in deleted if d.status == "registered"] == [record.id]
    assert not Path(record.path).exists() and generator.pool.loaded() == []
    with pytest.raises(Exception, match="unknown|no adapter|not loaded"):
        generator.runtime.generate_batch([GenerationRequest([1, 2, 3], adapter="u_missing", max_new_tokens=2)])
    receipt = assistant.forget_user(GIB)
    assert receipt.complete and assistant.memory.adapters(GIB) == []


def test_enough_new_messages_schedule_training_in_the_background(tmp_path: Path) -> None:
    amy = Scope(tenant="t", user_id="amy")
    memory = Memory(RecordStore.sqlite(tmp_path / "records.sqlite"), EdgeIndex(tmp_path / "index"), MiniLMEmbedder())
    memory.add_events(amy, _conversation("Amy", [f"honestly {TOPICS[n % len(TOPICS)]} was grand, cheers" for n in range(24)]))
    settings = Settings(data_dir=tmp_path, adapter_min_messages=20, adapter_train_seconds=15, adapter_auto_train=True)
    with Assistant(memory, chat_model="local:smollm2", reflection_model="none", settings=settings, owns_memory=True) as helper:
        helper.respond(amy, "What did I say about the gym?")
        assert helper.retraining.stats.scheduled == 1
        assert helper.retraining.wait(timeout=600)
        records = memory.adapters(amy)
        assert len(records) == 1 and records[0].sources
        assert helper.retraining.stats.registered + helper.retraining.stats.rejected == 1
        assert not helper.retraining.maybe_schedule(amy)  # trained on everything there is: not due again
