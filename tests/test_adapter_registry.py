"""The registry serves only adapters whose weights sit in the user's own folder, and the
assistant refuses work once closed; no training needed for these."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from personagraph.agents.adapters.registry import AdapterRegistry
from personagraph.memory import AdapterRecord, Memory, Scope
from personagraph.memory.errors import ConfigurationError, InvalidRecordError

from personagraph.assistant import Assistant
from personagraph.settings import Settings

ANN = Scope(tenant="t", user_id="ann")
BEN = Scope(tenant="t", user_id="ben")


def _register(memory: Memory, registry: AdapterRegistry, scope: Scope, folder_of: Scope, data_hash: str) -> AdapterRecord:
    event = memory.add_event(scope, {"speaker": scope.user_id, "text": f"hello from {scope.user_id}", "time": datetime(2024, 1, 1, tzinfo=UTC)})
    record = AdapterRecord(adapter_kind="lora", status="rejected", base_model="m", data_hash=data_hash, example_count=1, heldout_count=1)
    folder = registry.folder(folder_of, record.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    return memory.register_adapter(scope, record.model_copy(update={"status": "registered", "path": str(folder), "sources": [event.id]}))


def test_only_adapters_in_the_users_own_folder_are_served(memory: Memory, tmp_path: Path) -> None:
    registry = AdapterRegistry(memory, tmp_path / "adapters")
    mine = _register(memory, registry, ANN, ANN, "hash_ann_1")
    assert registry.current(ANN) == mine
    _register(memory, registry, BEN, ANN, "hash_ben_1")  # a record in Ben's scope pointing into Ann's folder
    assert registry.current(BEN) is None


def test_weights_deleted_by_hand_mean_no_adapter_and_a_clear_eval_error(memory: Memory, tmp_path: Path) -> None:
    registry = AdapterRegistry(memory, tmp_path / "adapters")
    record = _register(memory, registry, ANN, ANN, "hash_ann_2")
    (Path(record.path) / "adapter_config.json").unlink()
    assert registry.current(ANN) is None
    with pytest.raises(InvalidRecordError, match="with weights"):
        registry.evaluate(ANN, record.id)


def test_a_closed_assistant_says_so(memory: Memory, tmp_path: Path) -> None:
    helper = Assistant(memory, chat_model="local:smollm2", reflection_model="none", settings=Settings(data_dir=tmp_path))
    helper.close()
    helper.close()  # twice is fine
    with pytest.raises(ConfigurationError, match="closed"):
        helper.respond(ANN, "Where do I live?")
    assert memory.events(ANN) == []


def test_aligned_adapters_are_current_only_on_the_plain_lora_they_rest_on(memory: Memory, tmp_path: Path) -> None:
    registry = AdapterRegistry(memory, tmp_path / "adapters")
    on_base = _register(memory, registry, ANN, ANN, "hash_soup_base")
    memory.register_adapter(ANN, on_base.model_copy(update={"objective": "soup"}))
    assert registry.current(ANN).objective == "soup"  # no plain LoRA yet: the soup on the base is served
    plain = _register(memory, registry, ANN, ANN, "hash_plain_1")
    memory.register_adapter(ANN, plain.model_copy(update={"metrics": {"gain": 0.1}}))
    assert registry.current(ANN).id == plain.id  # a soup on the base is stale once a plain LoRA exists
    prompt = _register(memory, registry, ANN, ANN, "hash_prompt_1")
    memory.register_adapter(ANN, prompt.model_copy(update={"adapter_kind": "prompt", "metrics": {"gain": 0.3}}))
    dpo = _register(memory, registry, ANN, ANN, "hash_dpo_1")
    memory.register_adapter(ANN, dpo.model_copy(update={"objective": "dpo", "base_adapter": plain.id}))
    assert registry.current(ANN).id == dpo.id  # aligned on the LoRA, though the soft prompt has the better gain
    assert registry.current(ANN, objective="sft").id == prompt.id
