"""Qdrant Edge: the Qdrant engine in-process, on disk, with a write-ahead log.

Measured here (shared/notes/qdrant-edge.md): a one-user filtered search at 100k points takes
well under a millisecond and reopening takes a few hundredths of a second. One process owns
a shard; a second opener is refused with a clear error.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    KeywordIndexParams,
    MatchAny,
    MatchValue,
    Modifier,
    Point,
    Query,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    SparseVector,
    UpdateOperation,
)

from ..embedding import SparseVector as SparseTuple
from ..errors import StoreInUseError
from ..scope import Scope
from .base import IndexHit, IndexPoint, IndexQuery, point_uuid
from .edge_purge import copy_live_points, recover_rebuild, swap_in

_PAYLOAD_FIELDS = ["kind", "record_id", "time"]
T = TypeVar("T")


def _filter(query: IndexQuery) -> Filter:
    must = [FieldCondition("scope_key", match=MatchValue(query.scope.key))]
    must_not = []
    if query.kinds:
        must.append(FieldCondition("kind", match=MatchAny(list(query.kinds))))
    if query.as_of is None:
        must.append(FieldCondition("status", match=MatchValue("active")))
    else:
        must_not.append(FieldCondition("status", match=MatchValue("retracted")))
        must.append(FieldCondition("valid_from", range=RangeFloat(lte=query.as_of)))
        must.append(FieldCondition("valid_to", range=RangeFloat(gt=query.as_of)))
    return Filter(must=must, must_not=must_not or None)


def _scope_filter(scope: Scope) -> Filter:
    return Filter(must=[FieldCondition("scope_key", match=MatchValue(scope.key))])


def _own(folder: Path) -> int | None:
    """Hold an exclusive advisory lock on `folder` (flock on the folder itself: no file is added),
    or refuse at once. Qdrant Edge's own WAL lock is taken only after opening has begun (and
    is let go while `purge` swaps shards), so this is what keeps a second opener out entirely."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): Qdrant Edge's own lock still refuses a second owner
        return None
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreInUseError(
            f"{folder} is open in another process (or another open in this one); the embedded "
            "index takes one process per data dir: use a Qdrant server via PERSONAGRAPH_QDRANT_URL "
            "to share an index between processes"
        ) from exc
    return fd


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    """One call on the shard at a time: `purge` swaps the shard, and no search or write may run
    on the one being closed (Qdrant Edge queries hold the GIL anyway: nothing is lost)."""
    @functools.wraps(method)
    def run(self: EdgeIndex, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)
    return run


class EdgeIndex:
    """VectorIndex on one Qdrant Edge shard in `path`, shared by all scopes of this store."""

    def __init__(self, path: str | Path, dim: int = 384, *, owner_of: str | Path | None = None) -> None:
        """`owner_of`: a folder (the data dir) this index holds exclusively while open, taken
        before anything on disk is read or repaired, so a second opener changes nothing."""
        path = Path(path)
        self.path, self.dim = path, dim
        self._lock = threading.RLock()
        self._owner = _own(Path(owner_of)) if owner_of is not None else None
        try:
            self._shard = self._open(path, dim)
        except BaseException:
            self._release()
            raise

    @classmethod
    def _open(cls, path: Path, dim: int) -> EdgeShard:
        try:
            recover_rebuild(path)
            if (path / "edge_config.json").exists() or any(path.glob("segments*")):
                return EdgeShard.load(str(path))
            path.mkdir(parents=True, exist_ok=True)
            return cls._create(path, dim)
        except Exception as exc:  # the engine raises a bare Exception on a held WAL lock
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreInUseError(
                    f"the index at {path} is open in another process (or another open in this one); "
                    "Qdrant Edge allows one owner per shard: use a Qdrant server via "
                    "PERSONAGRAPH_QDRANT_URL to share an index between processes"
                ) from exc
            raise

    def _release(self) -> None:
        if self._owner is not None:
            os.close(self._owner)  # closing the descriptor drops the lock
            self._owner = None

    @classmethod
    def _create(cls, path: Path, dim: int) -> EdgeShard:
        shard = EdgeShard.create(str(path), cls._config(dim))
        shard.update(UpdateOperation.create_field_index("scope_key", KeywordIndexParams(is_tenant=True)))
        shard.update(UpdateOperation.create_field_index("kind", KeywordIndexParams()))
        shard.update(UpdateOperation.create_field_index("status", KeywordIndexParams()))
        return shard

    @_locked
    def purge(self) -> None:
        """Erase deleted points from the files (segments and write-ahead log), not only from
        answers: see edge_purge.py. Costs a copy of the live points; forgetting a user calls it."""
        copy_live_points(self.path, self._shard, lambda p: self._create(p, self.dim))
        self._shard.close()
        try:
            swap_in(self.path)
        finally:  # whatever failed, one whole shard is at `path` again, and open
            recover_rebuild(self.path)
            self._shard = EdgeShard.load(str(self.path))

    @staticmethod
    def _config(dim: int) -> EdgeConfig:
        return EdgeConfig(
            vectors={"dense": EdgeVectorParams(size=dim, distance=Distance.Cosine)},
            sparse_vectors={"bm25": EdgeSparseVectorParams(modifier=Modifier.Idf)},
        )

    @_locked
    def upsert(self, points: list[IndexPoint]) -> None:
        if not points:
            return
        self._shard.update(UpdateOperation.upsert_points([
            Point(
                point_uuid(p.scope, p.kind, p.record_id),
                {"dense": p.dense, "bm25": SparseVector(p.sparse[0], p.sparse[1])},
                p.payload(),
            )
            for p in points
        ]))

    @_locked
    def delete(self, scope: Scope, keys: list[tuple[str, str]]) -> None:
        if keys:
            self._shard.update(UpdateOperation.delete_points([point_uuid(scope, k, r) for k, r in keys]))

    @_locked
    def delete_scope(self, scope: Scope) -> None:
        self._shard.update(UpdateOperation.delete_points_by_filter(_scope_filter(scope)))

    @_locked
    def _search(self, query: IndexQuery, nearest: Query, using: str) -> list[IndexHit]:
        sparse = using == "bm25"
        hits = self._shard.query(QueryRequest(
            limit=query.limit, query=nearest, filter=_filter(query), with_payload=_PAYLOAD_FIELDS,
            with_vector=["bm25"] if sparse else False,
        ))
        return [
            IndexHit(
                h.payload["kind"], h.payload["record_id"], h.score, h.payload.get("time", 0.0),
                tuple(h.vector["bm25"].indices) if sparse else (),
            )
            for h in hits
        ]

    def search_dense(self, query: IndexQuery, vector: list[float]) -> list[IndexHit]:
        return self._search(query, Query.Nearest(vector, using="dense"), "dense")

    def search_sparse(self, query: IndexQuery, vector: SparseTuple) -> list[IndexHit]:
        if not vector[0]:
            return []
        return self._search(query, Query.Nearest(SparseVector(vector[0], vector[1]), using="bm25"), "bm25")

    @_locked
    def keys(self, scope: Scope) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        offset = None
        while True:
            records, offset = self._shard.scroll(ScrollRequest(
                offset=offset, limit=1000, filter=_scope_filter(scope),
                with_payload=_PAYLOAD_FIELDS, with_vector=False,
            ))
            found.update((r.payload["kind"], r.payload["record_id"]) for r in records)
            if offset is None:
                return found

    @_locked
    def count(self, scope: Scope | None = None) -> int:
        return self._shard.count(CountRequest(exact=True, filter=_scope_filter(scope) if scope else None))

    @_locked
    def flush(self) -> None:
        self._shard.flush()

    @_locked
    def close(self) -> None:
        try:
            self._shard.close()
        finally:
            self._release()
