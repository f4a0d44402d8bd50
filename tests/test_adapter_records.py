"""Adapter records in memory: scoped, listed newest first, and deleted with the user or the
events they were trained on, weights included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from personagraph.memory import AdapterRecord, Memory, Scope
from personagraph.memory.errors import RecordNotFoundError

ALICE = Scope(tenant="t", user_id="alice")
BOB = Scope(tenant="t", user_id="bob")


def _weights(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"x")
    return folder


def _adapter(path: Path | None, sources: list[str], data_hash: str = "abcdef0123", status: str = "registered") -> AdapterRecord:
    return AdapterRecord(
        adapter_kind="lora", status=status, base_model="smollm2", data_hash=data_hash,
        example_count=10, heldout_count=3, metrics={"base_ppl": 30.0, "adapter_ppl": 20.0, "gain": 1 / 3},
        path=str(path) if path else None, sources=sources,
    )


def _events(memory: Memory, scope: Scope) -> list[str]:
    events = memory.add_events(scope, [
        {"speaker": "Alice", "text": f"message {i}", "time": datetime(2024, 1, 1 + i, tzinfo=UTC)} for i in range(3)
    ])
    return [e.id for e in events]


def test_register_list_and_delete_removes_weights(memory: Memory, tmp_path: Path) -> None:
    ids = _events(memory, ALICE)
    folder = _weights(tmp_path / "w1")
    record = memory.register_adapter(ALICE, _adapter(folder, ids))
    assert [a.id for a in memory.adapters(ALICE, status="registered")] == [record.id]
    assert record.gain == pytest.approx(1 / 3)
    assert memory.adapters(BOB) == []
    memory.delete_adapter(ALICE, record.id)
    assert not folder.exists()
    assert memory.adapters(ALICE) == []


def test_sources_must_be_this_users_events(memory: Memory, tmp_path: Path) -> None:
    alice_ids = _events(memory, ALICE)
    with pytest.raises(RecordNotFoundError):
        memory.register_adapter(BOB, _adapter(_weights(tmp_path / "w"), alice_ids))
    with pytest.raises(RecordNotFoundError):
        memory.delete_adapter(BOB, _adapter(None, [], status="rejected").id)


def test_registered_needs_weights_path() -> None:
    with pytest.raises(ValueError, match="path"):
        _adapter(None, [])


def test_forget_user_removes_adapter_weights(memory: Memory, tmp_path: Path) -> None:
    ids = _events(memory, ALICE)
    folder = _weights(tmp_path / "alice")
    memory.register_adapter(ALICE, _adapter(folder, ids))
    bob_folder = _weights(tmp_path / "bob")
    memory.register_adapter(BOB, _adapter(bob_folder, _events(memory, BOB)))
    receipt = memory.forget_user(ALICE)
    assert receipt.complete and receipt.records_deleted["adapter"] == 1
    assert not folder.exists() and bob_folder.exists()
    assert len(memory.adapters(BOB)) == 1


def test_forgetting_a_training_event_deletes_the_adapter(memory: Memory, tmp_path: Path) -> None:
    ids = _events(memory, ALICE)
    trained = memory.register_adapter(ALICE, _adapter(_weights(tmp_path / "a"), ids[:2], data_hash="hash_one_1"))
    untouched = memory.register_adapter(ALICE, _adapter(_weights(tmp_path / "b"), ids[2:], data_hash="hash_two_2"))
    receipt = memory.forget_event(ALICE, ids[0])
    assert receipt.complete and receipt.records_deleted.get("adapter") == 1
    assert not Path(trained.path).exists() and Path(untouched.path).exists()
    assert [a.id for a in memory.adapters(ALICE)] == [untouched.id]


def test_weights_outside_a_peft_folder_are_never_removed(memory: Memory, tmp_path: Path) -> None:
    ids = _events(memory, ALICE)
    plain = tmp_path / "not_an_adapter"
    plain.mkdir()
    (plain / "keep.txt").write_text("mine")
    record = memory.register_adapter(ALICE, _adapter(plain, ids))
    memory.delete_adapter(ALICE, record.id)
    assert (plain / "keep.txt").exists()
