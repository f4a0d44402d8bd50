"""Soups: per-user weights from profile, instructions and feedback; peft's exact weighted merge;
registration and serving like any adapter. Style adapters here have random weights of the
trained shape (building real ones takes minutes: `tests/test_alignment_cli.py`, slow)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from personagraph.agents.adapters.registry import AdapterRegistry
from personagraph.agents.adapters.training import load_training_base
from personagraph.agents.alignment.preferences import DPOPair
from personagraph.agents.alignment.soups import (
    as_casual,
    as_concise,
    as_formal,
    merge_soup,
    pole_pairs,
    soup_weights,
)
from personagraph.agents.alignment.style_library import build_user_soup
from personagraph.memory import (
    Fact,
    InvalidRecordError,
    Memory,
    Profile,
    ProfileValue,
    Scope,
)
from personagraph.memory.models import StyleProfile

ANSWER = "You can keep basil alive by watering it when the soil is dry. It's best to give it six hours of sun! Don't let it sit in water."


@pytest.fixture(scope="module")
def base() -> tuple[Any, Any]:
    return load_training_base()


def _random_lora(base: Any, folder: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    model.save_pretrained(str(folder))
    model.unload()
    return folder


@pytest.fixture(scope="module")
def styles(base: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("styles")
    _random_lora(base[0], root / "length", 1)
    _random_lora(base[0], root / "tone", 2)
    return root


def _delta(folder: Path, module: str) -> Any:
    """ΔW = scaling · B @ A of one module of a saved LoRA."""
    import json

    from safetensors.torch import load_file

    weights = load_file(folder / "adapter_model.safetensors")
    config = json.loads((folder / "adapter_config.json").read_text())
    a = next(v for k, v in weights.items() if module in k and "lora_A" in k)
    b = next(v for k, v in weights.items() if module in k and "lora_B" in k)
    return (config["lora_alpha"] / config["r"]) * (b @ a)


def test_poles_differ_measurably() -> None:
    assert as_concise(ANSWER) == "You can keep basil alive by watering it when the soil is dry."
    assert "It is best" in as_formal(ANSWER) and "!" not in as_formal(ANSWER) and "Do not" in as_formal(ANSWER)
    assert as_casual(ANSWER).startswith("Hey!") and "It's" in as_casual(ANSWER)
    pairs = pole_pairs("How do I keep basil alive?", ANSWER)
    assert set(pairs) == {"length", "tone"} and pairs["length"].chosen == as_concise(ANSWER)
    assert pole_pairs("q", "Water it.") .keys() == {"tone"}  # too short to cut


def test_weights_come_from_profile_instructions_and_chosen_answers() -> None:
    profile = Profile(style=StyleProfile(verbosity=ProfileValue(value="short answers", fact_ids=["f1"])))
    assert soup_weights(profile, [], []) == {"length": 1.0, "tone": 0.0}
    casual = Fact(text="Prefers a relaxed, casual tone.", fact_kind="instruction", predicate="answer_style", object="casual")
    assert soup_weights(Profile(), [casual], [])["tone"] == -1.0
    long_wins = DPOPair(prompt=[{"role": "user", "content": "q"}], chosen=ANSWER * 2, rejected="Water it.", feedback_id="f")
    short_wins = long_wins.model_copy(update={"chosen": "Water it.", "rejected": ANSWER * 2})
    assert soup_weights(Profile(), [], [long_wins, long_wins, short_wins])["length"] == pytest.approx(-1 / 3)
    assert soup_weights(profile, [], [long_wins])["length"] == 0.0  # profile says short, choices say long
    assert soup_weights(Profile(), [], []) == {"length": 0.0, "tone": 0.0}


def test_merge_is_the_exact_weighted_sum_and_weights_change_it(base: tuple[Any, Any], styles: Path, tmp_path: Path) -> None:
    import torch

    user = _random_lora(base[0], tmp_path / "user", 3)
    dirs = {"length": styles / "length", "tone": styles / "tone"}
    one, two = tmp_path / "soup1", tmp_path / "soup2"
    rank = merge_soup(base[0], dirs, {"length": 1.0, "tone": 0.5}, one, user_adapter=user)
    merge_soup(base[0], dirs, {"length": -1.0, "tone": 0.5}, two, user_adapter=user)
    assert rank == 24  # cat: the ranks add up
    module = "layers.3.self_attn.q_proj"
    expected = _delta(user, module) + _delta(styles / "length", module) + 0.5 * _delta(styles / "tone", module)
    assert torch.allclose(_delta(one, module), expected, atol=1e-5)
    difference = _delta(one, module) - _delta(two, module)
    assert torch.allclose(difference, 2 * _delta(styles / "length", module), atol=1e-5)
    assert not any("lora" in n for n, _ in base[0].named_modules())  # the base is given back clean


def test_a_users_soup_is_registered_and_served(memory: Memory, alice: Scope, bob: Scope, styles: Path, tmp_path: Path, base: tuple[Any, Any]) -> None:
    registry = AdapterRegistry(memory, tmp_path / "adapters", base=base)
    with pytest.raises(InvalidRecordError, match="nothing known"):
        build_user_soup(registry, alice, styles)  # no style signal for alice yet
    with pytest.raises(InvalidRecordError, match="between -1 and 1"):
        build_user_soup(registry, alice, styles, weights={"length": 3.0})
    with pytest.raises(InvalidRecordError, match="unknown style"):
        build_user_soup(registry, alice, styles, weights={"colour": 1.0})
    event = memory.add_event(alice, {"speaker": "alice", "text": "Keep answers short please", "time": datetime(2026, 1, 1, tzinfo=UTC)})
    memory.add_fact(alice, {"text": "Prefers short, concise answers.", "fact_kind": "instruction", "predicate": "answer_style",
                            "object": "concise", "subject": "user", "sources": [event.id]})
    outcome = build_user_soup(registry, alice, styles)
    record = outcome.record
    assert outcome.weights == {"length": 1.0} and record.objective == "soup" and record.soup_weights == {"length": 1.0}
    assert registry.current(alice) == record and registry.current(bob) is None
    assert Path(record.path).parent == tmp_path / "adapters" / alice.tenant / alice.user_id
    assert build_user_soup(registry, alice, styles).reused
    newer = build_user_soup(registry, alice, styles, weights={"length": 0.5, "tone": -0.5})
    assert newer.replaced == [record.id] and registry.current(alice) == newer.record
    receipt = memory.forget_user(alice)
    assert receipt.complete and not Path(newer.record.path).exists()
