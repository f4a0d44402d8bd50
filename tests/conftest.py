"""Shared fixtures: one real MiniLM embedder per session, fresh real stores per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from personagraph.memory import Memory, MiniLMEmbedder, RecordStore, Scope
from personagraph.memory.index.edge import EdgeIndex

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
def memory(tmp_path: Path, embedder: MiniLMEmbedder) -> Memory:
    """In-memory records and an on-disk Qdrant Edge index: the fastest real stack."""
    mem = Memory(RecordStore.in_memory(), EdgeIndex(tmp_path / "index"), embedder)
    yield mem
    mem.index.close()


@pytest.fixture
def disk_memory(tmp_path: Path, embedder: MiniLMEmbedder) -> Memory:
    """The embedded default: SQLite records and a Qdrant Edge index, both on disk."""
    mem = Memory(RecordStore.sqlite(tmp_path / "records.sqlite"), EdgeIndex(tmp_path / "index"), embedder)
    yield mem
    mem.close()


@pytest.fixture
def alice() -> Scope:
    return Scope(user_id="alice")


@pytest.fixture
def bob() -> Scope:
    return Scope(user_id="bob")
