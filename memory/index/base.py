"""What every vector index backend offers: scoped upsert, delete, dense and BM25 search.

Points carry only what filtering needs (scope, kind, record id, status, validity); text and
everything else is read back from the record store, which is the truth.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..embedding import SparseVector
from ..scope import Scope

OPEN_START = -1e12  # validity bounds stored as floats so range filters need no null checks
OPEN_END = 1e12
_POINT_NS = uuid.UUID("5f1f1d2e-7c1a-4a57-9a53-0c5e1f2b7d10")


def point_uuid(scope: Scope, kind: str, record_id: str) -> uuid.UUID:
    """Point ids include the scope, so equal record ids of two users never collide."""
    return uuid.uuid5(_POINT_NS, f"{scope.key}\x1f{kind}\x1f{record_id}")


def ts(when: datetime | None, default: float) -> float:
    return when.timestamp() if when else default


@dataclass(frozen=True)
class IndexPoint:
    scope: Scope
    kind: str
    record_id: str
    dense: list[float]
    sparse: SparseVector
    status: str = "active"
    valid_from: float = OPEN_START
    valid_to: float = OPEN_END
    time: float = 0.0  # when it was said or learned: lets recency rank hits without a record read

    def payload(self) -> dict:
        return {
            "scope_key": self.scope.key, "kind": self.kind, "record_id": self.record_id,
            "status": self.status, "valid_from": self.valid_from, "valid_to": self.valid_to, "time": self.time,
        }


@dataclass(frozen=True)
class IndexQuery:
    """A scoped query. Without `as_of` only active records match; with it, those valid then."""

    scope: Scope
    limit: int = 50
    kinds: tuple[str, ...] | None = None
    as_of: float | None = None


@dataclass(frozen=True)
class IndexHit:
    kind: str
    record_id: str
    score: float
    time: float = 0.0
    terms: tuple[int, ...] = ()  # BM25 term ids of the point (sparse searches only)


class VectorIndex(Protocol):
    """Every method is scoped; `keys`/`count` exist so reconcile can diff the index against records."""

    def upsert(self, points: list[IndexPoint]) -> None: ...
    def delete(self, scope: Scope, keys: list[tuple[str, str]]) -> None: ...
    def delete_scope(self, scope: Scope) -> None: ...
    def search_dense(self, query: IndexQuery, vector: list[float]) -> list[IndexHit]: ...
    def search_sparse(self, query: IndexQuery, vector: SparseVector) -> list[IndexHit]: ...
    def keys(self, scope: Scope) -> set[tuple[str, str]]: ...
    def count(self, scope: Scope | None = None) -> int: ...
    def flush(self) -> None: ...
    def purge(self) -> None: ...  # erase deleted points from storage files, not only from answers
    def close(self) -> None: ...
