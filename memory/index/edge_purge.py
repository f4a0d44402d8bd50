"""Erase deleted points from a Qdrant Edge shard's files, not only from its answers.

A delete in Qdrant marks points as gone; their vectors and payload stay in the segment files
until a vacuum, and the write-ahead log keeps the original upserts until it rotates (measured
here: a forgotten user's label and dense vectors were still in `segments/` and `wal/` after
`forget_user`). Dense vectors can be inverted back towards the text, so a forget that leaves
them is not a forget. `copy_live_points` copies the live points into a fresh shard and `swap_in`
swaps the folders: the new segments and log hold nothing that was deleted.

Crash safety: the copy is built in `<path>.rebuild`; the swap renames `<path>` to `<path>.old`
and the copy to `<path>`, then removes `<path>.old`. `recover_rebuild` (run before opening)
finishes or undoes a swap a crash (or an error) interrupted, so the shard is always whole; an interrupted
purge is redone by the journal replay of the forget that asked for it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from qdrant_edge import EdgeShard, Point, ScrollRequest, UpdateOperation

_COPY_PAGE = 1000


def _siblings(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".rebuild"), path.with_name(path.name + ".old")


def recover_rebuild(path: Path) -> None:
    """Leave `path` holding one whole shard after a crash at any step of a purge (copy, close, swap)."""
    fresh, old = _siblings(path)
    if old.exists():
        if path.exists():  # the swap finished; only the old copy's removal was cut short
            shutil.rmtree(old)
        else:  # cut between the two renames: the copy was complete, take it
            if fresh.exists():
                fresh.rename(path)
                shutil.rmtree(old)
            else:
                old.rename(path)
    if fresh.exists():  # a copy that never got swapped in
        shutil.rmtree(fresh)


def copy_live_points(path: Path, shard: EdgeShard, create: Callable[[Path], EdgeShard]) -> None:
    """Build `<path>.rebuild` from `shard`'s live points (the shard stays open and in use)."""
    fresh, _ = _siblings(path)
    if fresh.exists():
        shutil.rmtree(fresh)
    shard.flush()
    copy = create(fresh)
    try:
        offset = None
        while True:
            records, offset = shard.scroll(ScrollRequest(offset=offset, limit=_COPY_PAGE, with_payload=True, with_vector=True))
            if records:
                copy.update(UpdateOperation.upsert_points([Point(r.id, r.vector, r.payload) for r in records]))
            if offset is None:
                break
        copy.flush()
    finally:
        copy.close()


def swap_in(path: Path) -> None:
    """Put the finished copy in place of the shard at `path` (closed by the caller)."""
    fresh, old = _siblings(path)
    path.rename(old)
    fresh.rename(path)
    shutil.rmtree(old)
