"""A Qdrant server or cluster through qdrant-client: the scale-out path, same design as Edge.

qdrant-client's embedded local mode (`location=":memory:"` or `path=`) speaks the same API
and stands in for a server in tests; it is far too slow to use for real past a few thousand
points (about a second per filtered search at 100k, measured here).
"""

from __future__ import annotations

import warnings

from qdrant_client import QdrantClient, models

from ..embedding import SparseVector as SparseTuple
from ..scope import Scope
from .base import IndexHit, IndexPoint, IndexQuery, point_uuid

_PAYLOAD_FIELDS = ["kind", "record_id", "time"]


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _scope_filter(scope: Scope) -> models.Filter:
    return models.Filter(must=[_match("scope_key", scope.key)])


def _filter(query: IndexQuery) -> models.Filter:
    must: list[models.Condition] = [_match("scope_key", query.scope.key)]
    must_not: list[models.Condition] = []
    if query.kinds:
        must.append(models.FieldCondition(key="kind", match=models.MatchAny(any=list(query.kinds))))
    if query.as_of is None:
        must.append(_match("status", "active"))
    else:
        must_not.append(_match("status", "retracted"))
        must.append(models.FieldCondition(key="valid_from", range=models.Range(lte=query.as_of)))
        must.append(models.FieldCondition(key="valid_to", range=models.Range(gt=query.as_of)))
    return models.Filter(must=must, must_not=must_not or None)


class QdrantServerIndex:
    """VectorIndex on one collection; the scope is a tenant-indexed payload field."""

    def __init__(self, client: QdrantClient, collection: str = "personagraph", dim: int = 384) -> None:
        self._client = client
        self._collection = collection
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config={"dense": models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            with warnings.catch_warnings():  # local mode warns that it ignores payload indexes
                warnings.simplefilter("ignore")
                client.create_payload_index(
                    collection, "scope_key",
                    models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
                )
                for name in ("kind", "status"):
                    client.create_payload_index(collection, name, models.PayloadSchemaType.KEYWORD)
                for name in ("valid_from", "valid_to"):
                    client.create_payload_index(collection, name, models.PayloadSchemaType.FLOAT)

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, collection: str = "personagraph") -> QdrantServerIndex:
        """`url` of a server or cluster; ":memory:" selects qdrant-client's local mode (tests only)."""
        if url == ":memory:":
            return cls(QdrantClient(location=":memory:"), collection)
        return cls(QdrantClient(url=url, api_key=api_key), collection)

    def upsert(self, points: list[IndexPoint]) -> None:
        if not points:
            return
        self._client.upsert(self._collection, points=[
            models.PointStruct(
                id=str(point_uuid(p.scope, p.kind, p.record_id)),
                vector={"dense": p.dense, "bm25": models.SparseVector(indices=p.sparse[0], values=p.sparse[1])},
                payload=p.payload(),
            )
            for p in points
        ], wait=True)

    def delete(self, scope: Scope, keys: list[tuple[str, str]]) -> None:
        if keys:
            ids = [str(point_uuid(scope, k, r)) for k, r in keys]
            self._client.delete(self._collection, points_selector=models.PointIdsList(points=ids), wait=True)

    def delete_scope(self, scope: Scope) -> None:
        self._client.delete(self._collection, points_selector=models.FilterSelector(filter=_scope_filter(scope)), wait=True)

    def _search(self, query: IndexQuery, vector, using: str) -> list[IndexHit]:
        if query.limit < 1:
            return []
        sparse = using == "bm25"
        response = self._client.query_points(
            self._collection, query=vector, using=using, query_filter=_filter(query),
            limit=query.limit, with_payload=_PAYLOAD_FIELDS, with_vectors=["bm25"] if sparse else False,
        )
        return [
            IndexHit(
                p.payload["kind"], p.payload["record_id"], p.score, p.payload.get("time", 0.0),
                tuple(p.vector["bm25"].indices) if sparse else (),
            )
            for p in response.points
        ]

    def search_dense(self, query: IndexQuery, vector: list[float]) -> list[IndexHit]:
        return self._search(query, vector, "dense")

    def search_sparse(self, query: IndexQuery, vector: SparseTuple) -> list[IndexHit]:
        if not vector[0]:
            return []
        return self._search(query, models.SparseVector(indices=vector[0], values=vector[1]), "bm25")

    def keys(self, scope: Scope) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        offset = None
        while True:
            records, offset = self._client.scroll(
                self._collection, scroll_filter=_scope_filter(scope), limit=1000, offset=offset,
                with_payload=_PAYLOAD_FIELDS, with_vectors=False,
            )
            found.update((r.payload["kind"], r.payload["record_id"]) for r in records)
            if offset is None:
                return found

    def count(self, scope: Scope | None = None) -> int:
        return self._client.count(self._collection, count_filter=_scope_filter(scope) if scope else None, exact=True).count

    def flush(self) -> None:
        """Writes are acknowledged with wait=True; nothing is buffered client-side."""

    def purge(self) -> None:
        """A Qdrant server vacuums deleted points and rotates its WAL itself (its optimizer
        settings decide when); a client cannot force it, so this does nothing. See docs/privacy.md."""

    def close(self) -> None:
        self._client.close()
