"""Per-user adapter data, training and perplexity, on the real SmolLM2 base (float32, no mocks)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch
from personagraph.agents.adapters.examples import (
    SFTExample,
    build_training_data,
    fact_examples,
    style_examples,
    with_context,
)
from personagraph.agents.adapters.perplexity import (
    IGNORE,
    encode_example,
    perplexity,
    target_nll,
)
from personagraph.agents.adapters.training import (
    TrainConfig,
    evaluate_adapter,
    load_soft_prompt,
    load_training_base,
    train_adapter,
)
from personagraph.agents.llm.errors import UnknownAdapterError
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import Event, Fact

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def conversation(n: int = 10, thread: str = "t1", start: datetime = T0) -> list[Event]:
    """Ann and Bob taking turns, Ann first, one minute apart."""
    return [
        Event(
            speaker="ann" if i % 2 == 0 else "bob",
            text=f"{'ann' if i % 2 == 0 else 'bob'} message {i} in {thread}",
            time=start + timedelta(minutes=i),
            thread_id=thread,
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def base() -> tuple[object, object]:
    return load_training_base()


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def example(target: str, prompt: str = "Say something.") -> SFTExample:
    return SFTExample(
        messages=[{"role": "system", "content": "You are ann."}, {"role": "user", "content": prompt}],
        target=target, source_ids=("evt_x",), time=T0, kind="message",
    )


# --- examples ---------------------------------------------------------------------------------------

def test_style_examples_are_time_ordered_with_thread_context() -> None:
    events = conversation(6, "t1") + conversation(4, "t2", start=T0 + timedelta(seconds=30))
    examples = style_examples(reversed(events), "ann", context_turns=2)
    assert [x.time for x in examples] == sorted(x.time for x in examples)
    assert all(x.kind == "message" for x in examples)
    assert len(examples) == 5  # 3 in t1, 2 in t2
    first = next(x for x in examples if x.target == "ann message 0 in t1")
    assert first.source_ids == (events[0].id,)  # no earlier turn: nothing but the target's own id
    later = next(x for x in examples if x.target == "ann message 4 in t1")
    user_text = later.messages[-1]["content"]
    assert user_text == "ann: ann message 2 in t1\nbob: bob message 3 in t1"
    assert later.source_ids == (events[4].id, events[2].id, events[3].id)
    assert "t2" not in user_text  # context never crosses threads
    assert later.messages[0]["role"] == "system" and "ann" in later.messages[0]["content"]


def test_newest_messages_are_held_out() -> None:
    data = build_training_data(conversation(20), [], "ann", heldout_fraction=0.2)
    assert len(data.train) == 8 and len(data.heldout) == 2
    assert max(x.time for x in data.train) < min(x.time for x in data.heldout)
    assert [x.target for x in data.heldout] == ["ann message 16 in t1", "ann message 18 in t1"]
    assert set(data.event_ids).isdisjoint({x.source_ids[0] for x in data.heldout})


def test_facts_train_only_and_never_from_heldout_events() -> None:
    events = conversation(20)
    by_text = {e.text: e for e in events}
    old = Fact(text="ann likes tea", sources=[by_text["ann message 2 in t1"].id], valid_from=T0)
    held = Fact(text="ann moved to Oslo", sources=[by_text["ann message 18 in t1"].id], valid_from=T0)
    said_by_bob_late = Fact(text="ann has a dog", sources=[by_text["bob message 17 in t1"].id], valid_from=T0)
    retracted = Fact(text="ann hates tea", sources=[], status="retracted")
    data = build_training_data(events, [old, held, said_by_bob_late, retracted], "ann")
    trained_facts = [x.target for x in data.train if x.kind == "fact"]
    assert trained_facts == ["ann likes tea"]
    assert data.fact_ids == (old.id,)
    assert all(x.kind == "message" for x in data.heldout)
    assert len(fact_examples([old, retracted], "ann")) == 1


def test_max_train_keeps_the_newest() -> None:
    data = build_training_data(conversation(20), [], "ann", max_train=3)
    assert [x.target for x in data.train] == [f"ann message {i} in t1" for i in (10, 12, 14)]


def test_hash_is_stable_and_follows_the_data() -> None:
    events = conversation(20)
    first = build_training_data(events, [], "ann").data_hash
    assert build_training_data(list(reversed(events)), [], "ann").data_hash == first
    edited = events[:4] + [events[4].model_copy(update={"text": "changed", "id": "evt_changed"})] + events[5:]
    assert build_training_data(edited, [], "ann").data_hash != first
    assert build_training_data(events[:-2], [], "ann").data_hash != first
    assert build_training_data(events, [], "ann", heldout_fraction=0.3).data_hash != first


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(InvalidRecordError, match="no messages by speaker 'zed'"):
        build_training_data(conversation(6), [], "zed")
    for fraction in (1.0, -0.1):
        with pytest.raises(InvalidRecordError, match="heldout_fraction"):
            build_training_data(conversation(6), [], "ann", heldout_fraction=fraction)
    with pytest.raises(InvalidRecordError, match="too few"):
        build_training_data(conversation(2), [], "ann")
    assert len(build_training_data(conversation(2), [], "ann", heldout_fraction=0).train) == 1


def test_with_context_adds_memory_to_the_system_message() -> None:
    x = example("hello")
    y = with_context(x, "ann likes tea")
    assert y.messages[0]["content"].startswith("You are ann.") and "ann likes tea" in y.messages[0]["content"]
    assert y.messages[1:] == x.messages[1:] and y.target == x.target
    assert x.messages[0]["content"] == "You are ann."  # the original is untouched


# --- encoding and perplexity ------------------------------------------------------------------------

def test_encode_masks_the_prompt_and_keeps_the_target(base) -> None:
    _, tok = base
    x = example("I really like green tea.")
    ids, labels = encode_example(tok, x, max_length=256)
    n_prompt = sum(label == IGNORE for label in labels)
    assert labels[:n_prompt] == [IGNORE] * n_prompt and labels[n_prompt:] == ids[n_prompt:]
    assert tok.decode(ids[n_prompt:]) == "I really like green tea." + tok.eos_token
    assert tok.decode(ids[:n_prompt]).endswith("<|im_start|>assistant\n")

    long = example("I really like green tea.", prompt="word " * 400)
    ids, labels = encode_example(tok, long, max_length=64)
    assert len(ids) == 64
    n_prompt = sum(label == IGNORE for label in labels)
    assert tok.decode(ids[n_prompt:]) == "I really like green tea." + tok.eos_token
    assert tok.decode(ids[:n_prompt]).endswith("<|im_start|>assistant\n")  # trimmed from the left
    assert not tok.decode(ids[:n_prompt]).startswith("<|im_start|>system")


def test_perplexity_is_positive_deterministic_and_tracks_predictability(base) -> None:
    model, tok = base
    easy = example("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", prompt="Count from 1 to 10, separated by commas.")
    hard = example("zebra quantum 7 lollipop fjord ratchet", prompt="Count from 1 to 10, separated by commas.")
    report = perplexity(model, tok, [easy, hard], batch_size=2)
    again = perplexity(model, tok, [easy, hard], batch_size=1)
    assert report.ppl > 1 and report.tokens > 0 and math.isclose(report.ppl, math.exp(report.mean_nll))
    assert report.per_example == pytest.approx(again.per_example, rel=1e-4)
    assert report.per_example[0] < report.per_example[1]
    with pytest.raises(UnknownAdapterError):
        perplexity(model, tok, [easy], adapter="nobody")


# --- training ---------------------------------------------------------------------------------------

def tiny_data() -> list[SFTExample]:
    return [example(f"My cat Pixel likes box number {i}.") for i in range(4)]


def test_lora_training_saves_an_adapter_that_changes_the_loss(base, tmp_path: Path) -> None:
    model, tok = base
    before = weights(model)
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    config = TrainConfig(kind="lora", max_steps=3, batch_size=2, max_length=48, lora_lr=5e-3, num_threads=1)
    report = train_adapter(model, tok, tiny_data(), config, tmp_path / "ann", progress=False)
    assert report.steps == 3 and report.stopped_by == "max_steps" and report.trainable_params > 0
    assert (tmp_path / "ann" / "adapter_model.safetensors").is_file() and report.bytes_on_disk > 0
    assert not list(tmp_path.glob(".ann-*"))  # no staging folder left behind

    base_report, adapted = evaluate_adapter(model, tok, tiny_data(), tmp_path / "ann", "lora", max_length=48)
    assert adapted.mean_nll < base_report.mean_nll  # it learned its training data
    after = weights(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert not any("lora" in name for name, _ in model.named_modules())
    with pytest.raises(InvalidRecordError, match="not prompt tuning"):
        load_soft_prompt(tmp_path / "ann")


def test_time_budget_stops_training(base, tmp_path: Path) -> None:
    model, tok = base
    config = TrainConfig(kind="lora", epochs=50, batch_size=2, max_length=48, time_budget_s=0.01, num_threads=1)
    report = train_adapter(model, tok, tiny_data(), config, tmp_path / "ann", progress=False)
    assert report.stopped_by == "time_budget" and report.steps == 1


def test_soft_prompt_matches_peft_prompt_tuning(base, tmp_path: Path) -> None:
    from peft import PeftModel

    model, tok = base
    before = weights(model)
    config = TrainConfig(kind="prompt", max_steps=2, batch_size=2, max_length=48, num_threads=1)
    train_adapter(model, tok, tiny_data(), config, tmp_path / "ann", progress=False)
    soft = load_soft_prompt(tmp_path / "ann")
    assert soft.shape == (config.num_virtual_tokens, model.config.hidden_size)
    ours = perplexity(model, tok, tiny_data()[:1], max_length=48, soft_prompt=soft)
    assert ours.ppl > 1 and math.isfinite(ours.ppl)

    # The same example through peft's own prompt-tuning forward gives the same loss.
    ids, labels = encode_example(tok, tiny_data()[0], 48)
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    peft_model = PeftModel.from_pretrained(model, str(tmp_path / "ann"))
    try:
        with torch.no_grad():
            nll, _ = target_nll(
                peft_model, {"input_ids": torch.tensor([ids])}, torch.tensor([labels]), config.num_virtual_tokens
            )
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(grads[n])
    assert nll.mean().item() == pytest.approx(ours.mean_nll, rel=1e-4)
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())
