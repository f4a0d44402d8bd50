"""Complete deletion: the scan of every store after a forget, and the index purge behind it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from personagraph.memory import Memory, RecordStore, Scope
from personagraph.memory.index.edge import EdgeIndex

from benchmarks.reliability import deletion
from benchmarks.reliability.profile import SMOKE
from benchmarks.reliability.scan import files_holding


def test_nothing_of_a_forgotten_user_is_left_in_any_file_or_live_object(tmp_path: Path, embedder) -> None:
    result = deletion.run(SMOKE, tmp_path, embedder)
    assert result.figures["users_forgotten"] == SMOKE.deletion_users
    assert result.figures["records_deleted"] > 40
    assert result.ok, result.details["trials"]
    receipt = result.details["trials"][0]["receipt"]
    assert receipt["records_deleted"]["checkpoint_threads"] == 1 and receipt["records_deleted"]["feedback"] >= 1


def test_without_the_purge_the_scan_finds_the_forgotten_users_vectors(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(EdgeIndex, "purge", lambda self: None)
    result = deletion.run(SMOKE, tmp_path, embedder)
    assert result.figures["residue_files"] > 0
    assert any("index/" in f for t in result.details["trials"] for files in t["residue_files"].values() for f in files)


def _disk_memory(root: Path, embedder) -> Memory:
    return Memory(RecordStore.sqlite(root / "records.sqlite"), EdgeIndex(root / "index"), embedder)


def test_the_purge_keeps_every_other_users_points_searchable(tmp_path: Path, embedder) -> None:
    memory = _disk_memory(tmp_path, embedder)
    gone, kept = Scope(user_id="gone"), Scope(user_id="kept")
    memory.add_events(gone, [{"speaker": "g", "text": f"zqgone note {i}"} for i in range(5)])
    memory.add_events(kept, [{"speaker": "k", "text": f"kept note about tulips {i}"} for i in range(5)])
    before = memory.index.keys(kept)
    assert memory.forget_user(gone).complete
    assert memory.index.keys(kept) == before and memory.index.count() == 5
    assert memory.search(kept, "tulips").items
    memory.close()
    assert not files_holding(tmp_path / "index", ["gone"])
    reopened = _disk_memory(tmp_path, embedder)
    assert reopened.index.keys(kept) == before
    reopened.close()


@pytest.mark.parametrize("cut", ["copy_half_built", "between_renames", "old_not_removed"])
def test_a_purge_cut_short_at_any_step_leaves_one_whole_index(tmp_path: Path, embedder, cut: str) -> None:
    memory = _disk_memory(tmp_path, embedder)
    kept = Scope(user_id="kept")
    memory.add_events(kept, [{"speaker": "k", "text": f"note {i}"} for i in range(4)])
    keys = memory.index.keys(kept)
    memory.close()
    index, fresh, old = tmp_path / "index", tmp_path / "index.rebuild", tmp_path / "index.old"
    if cut == "copy_half_built":  # a crash while copying: the copy is incomplete and never swapped in
        fresh.mkdir()
        (fresh / "junk").write_text("partial")
    elif cut == "between_renames":  # the old shard moved aside, the complete copy not yet in place
        shutil.copytree(index, fresh)
        index.rename(old)
    else:  # swapped, but the old copy not yet removed
        shutil.copytree(index, old)
    reopened = _disk_memory(tmp_path, embedder)
    assert reopened.index.keys(kept) == keys
    assert not fresh.exists() and not old.exists()
    reopened.close()


def test_a_purge_that_fails_midway_leaves_the_index_open_and_whole(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from personagraph.memory.index import edge

    memory = _disk_memory(tmp_path, embedder)
    kept = Scope(user_id="kept")
    memory.add_events(kept, [{"speaker": "k", "text": f"note {i}"} for i in range(3)])
    keys = memory.index.keys(kept)

    def disk_full(path: Path) -> None:
        (path.with_name(path.name + ".rebuild")).rename(path.with_name("elsewhere"))  # the copy is lost
        raise OSError("no space left on device")

    monkeypatch.setattr(edge, "swap_in", disk_full)
    with pytest.raises(OSError):
        memory.index.purge()
    assert memory.index.keys(kept) == keys  # reopened, on the old shard
    assert memory.search(kept, "note").items
    memory.close()
