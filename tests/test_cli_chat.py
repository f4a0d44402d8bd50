"""`personagraph chat` and `personagraph adapters` through typer's CliRunner on real stores and
the real local model: the plan and the memories used are shown, exchanges are stored, and the
adapter commands handle a user with no adapter cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from personagraph.memory import MiniLMEmbedder, Scope
from test_cli import ALICE_CHAT, _ok, _run, _write_jsonl

from personagraph import Settings, cli, open_memory


@pytest.fixture(autouse=True)
def shared_embedder(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> None:
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)
    monkeypatch.setenv("PERSONAGRAPH_CHAT_MODEL", "none")  # background reflection by the rules: fast


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    _ok(data, "ingest", str(_write_jsonl(tmp_path / "alice.jsonl", ALICE_CHAT)), "--user", "alice")
    _ok(data, "reflect", "alice", "--model", "none")
    return data


def test_chat_answers_shows_plan_and_memories_and_stores_the_exchange(data_dir: Path, embedder: MiniLMEmbedder) -> None:
    out = _ok(data_dir, "chat", "alice", "-m", "What is my cat called?", "--plan", "--memories").stdout
    assert "assistant>" in out
    assert "plan: prompting on local" in out and "query need: recall" in out
    assert "Pixel" in out  # the quoted memory about the cat is listed under the answer
    memory = open_memory(Settings(data_dir=data_dir), embedder=embedder)
    try:
        turns = memory.events(Scope(user_id="alice"), "chat")
        reflected = memory.unreflected_events(Scope(user_id="alice"), "chat")
    finally:
        memory.close()
    assert [t.role for t in turns] == ["user", "assistant"] and turns[0].text == "What is my cat called?"
    assert turns[1].metadata["backend"] == "prompting"
    assert reflected == []  # closing the chat waited for the background reflection


def test_adapter_commands_on_a_user_without_adapters(data_dir: Path) -> None:
    assert "no adapters for alice" in _ok(data_dir, "adapters", "list", "alice").stdout
    result = _run(data_dir, "adapters", "eval", "alice")
    assert result.exit_code == 2 and "no registered adapter" in result.output
    assert "deleted 0 adapter(s)" in _ok(data_dir, "adapters", "delete", "alice").stdout
    bad = _run(data_dir, "adapters", "train", "alice", "--kind", "dora")
    assert bad.exit_code == 2 and "lora or prompt" in bad.output


def test_training_is_skipped_when_not_due(data_dir: Path) -> None:
    out = _ok(data_dir, "adapters", "train", "alice", "--if-due").stdout
    assert "not due" in out and "need 20" in out
