"""`personagraph reflect` and `inspect` through typer's CliRunner on real stores.

These run the deterministic extractor (`--model none`) so they stay fast; the local model's
run through the same commands is in test_reflection_local.py (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from personagraph.memory import MiniLMEmbedder, Scope
from test_cli import ALICE_CHAT, BOB_CHAT, _ok, _run, _stats, _write_jsonl

from personagraph import Settings, cli, open_memory


@pytest.fixture(autouse=True)
def shared_embedder(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> None:
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    _ok(data, "ingest", str(_write_jsonl(tmp_path / "alice.jsonl", ALICE_CHAT)), "--user", "alice")
    _ok(data, "ingest", str(_write_jsonl(tmp_path / "bob.jsonl", BOB_CHAT)), "--user", "bob")
    return data


def test_reflect_then_inspect_shows_what_reflection_wrote(data_dir: Path, embedder: MiniLMEmbedder) -> None:
    out = _ok(data_dir, "reflect", "bob", "--model", "none", "--batch-size", "1").stdout
    assert "2 batches (2 done)" in out and "llm calls 0" in out

    shown = _ok(data_dir, "inspect", "bob").stdout
    listed = json.loads(_ok(data_dir, "inspect", "bob", "--json").stdout)
    memory = open_memory(Settings(data_dir=data_dir), embedder=embedder)
    try:
        scope = Scope(user_id="bob")
        facts = memory.facts(scope, status=None)
        relations = memory.records.list(scope, "relation")
    finally:
        memory.close()
    assert facts, "the deterministic extractor found nothing in Bob's chat"
    assert {f["id"] for f in listed["facts"]} == {f.id for f in facts}
    assert {r["id"] for r in listed["relations"]} == {r.id for r in relations}
    assert [r["status"] for r in listed["reflections"]] == ["done", "done"] and listed["messages_due"] == 0
    assert "reflection runs: 2 done; messages still due: 0" in shown
    assert "tea" in shown and all(f.id in shown for f in facts)  # "I prefer tea over coffee"


def test_reflect_twice_has_nothing_left_to_do(data_dir: Path) -> None:
    _ok(data_dir, "reflect", "alice", "--model", "none")
    again = _ok(data_dir, "reflect", "alice", "--model", "none").stdout
    assert "nothing to reflect for alice" in again


def test_reflect_one_user_leaves_the_other_due(data_dir: Path) -> None:
    _ok(data_dir, "reflect", "alice", "--model", "none")
    assert "messages still due: 2" in _ok(data_dir, "inspect", "bob").stdout
    assert _stats(data_dir)["reflection runs failed"] == "0"


def test_an_unknown_provider_is_a_clear_error(data_dir: Path) -> None:
    result = _run(data_dir, "reflect", "alice", "--model", "nosuchprovider:model-x")
    assert result.exit_code == 2 and "error:" in result.stderr
    assert "Traceback" not in result.output


def test_inspect_of_a_user_with_nothing_says_so(data_dir: Path) -> None:
    out = _ok(data_dir, "inspect", "carol").stdout
    assert "reflection runs: none yet; messages still due: 0" in out
