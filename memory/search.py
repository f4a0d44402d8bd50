"""The retrieval pipeline behind `Memory.search`: stages, fusion, reading and packing.

Stages (dense, BM25, graph expansion, recency, neighbouring turns) each produce a ranking;
weighted reciprocal-rank fusion merges them; records are then read for the best keys only,
so an index point without a record (an orphan) is never returned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from .embedding import Bm25Encoder, Embedder
from .graph import GraphCache
from .index.base import IndexQuery, VectorIndex, ts
from .models import (
    INDEXED_KINDS,
    Fact,
    Record,
    RecordKind,
    StoreItem,
    record_sources,
    record_time,
)
from .records import RecordStore
from .retrieval import (
    Fused,
    Key,
    RetrievalConfig,
    pack,
    recency_ranking,
    rrf_fuse,
    term_coverage,
)
from .scope import Scope
from .timeline import TimelineCache


class RetrievedItem(BaseModel):
    kind: RecordKind
    id: str
    text: str
    score: float
    stages: dict[str, int] = Field(description="retrieval stage -> rank of this item there (1-based)")
    sources: list[str] = Field(description="event ids behind the item (an event is its own source)")
    time: datetime | None = None


class SearchResult(BaseModel):
    query: str
    items: list[RetrievedItem]
    tokens: int = Field(description="context tokens of the packed items")
    timings_ms: dict[str, float]


class Retriever:
    """Runs one scoped search; owns no state beyond the stores and caches it is given."""

    def __init__(
        self, records: RecordStore, index: VectorIndex, embedder: Embedder, sparse: Bm25Encoder,
        graphs: GraphCache, timelines: TimelineCache,
    ) -> None:
        self.records = records
        self.index = index
        self.embedder = embedder
        self.sparse = sparse
        self.graphs = graphs
        self.timelines = timelines

    def search(
        self, scope: Scope, query: str, kinds: Sequence[RecordKind] | None, k: int,
        as_of: datetime | None, token_budget: int | None, config: RetrievalConfig,
    ) -> SearchResult:
        timings: dict[str, float] = {}
        iq = IndexQuery(scope, config.prefetch, tuple(kinds) if kinds else None, ts(as_of, 0) if as_of else None)
        rankings: dict[str, list[Key]] = {}
        stamps: dict[Key, float] = {}

        t = time.perf_counter()
        if config.dense:
            vector = self.embedder.embed_query(query)
            timings["embed"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            hits = self.index.search_dense(iq, vector)
            rankings["dense"] = [(h.kind, h.record_id) for h in hits]
            stamps.update({(h.kind, h.record_id): h.time for h in hits})
            timings["dense"] = (time.perf_counter() - t) * 1000
        weights = dict(config.weights)
        if config.bm25:
            t = time.perf_counter()
            query_terms = self.sparse.embed_query(query)
            hits = self.index.search_sparse(iq, query_terms)
            rankings["bm25"] = [(h.kind, h.record_id) for h in hits]
            if config.bm25_full_coverage > 0:
                coverage = term_coverage(query_terms[0], [h.terms for h in hits[:3]])
                weights["bm25"] = weights.get("bm25", 1.0) * min(1.0, coverage / config.bm25_full_coverage)
            stamps.update({(h.kind, h.record_id): h.time for h in hits})
            timings["bm25"] = (time.perf_counter() - t) * 1000
        if config.graph:
            t = time.perf_counter()
            rankings["graph"] = self._graph_candidates(scope, query, as_of, kinds)
            timings["graph"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        if config.recency and stamps:
            rankings["recency"] = recency_ranking(stamps, as_of.timestamp() if as_of else None)
        if config.neighbours and (not kinds or "event" in kinds):
            first = [f.key for f in rrf_fuse(rankings, config.rrf_k, weights)]
            rankings["neighbours"] = self._neighbour_ranking(scope, first[: config.neighbour_hits], as_of)
        fused = rrf_fuse(rankings, config.rrf_k, weights)
        items, tokens = self._materialize(scope, fused, k, token_budget, as_of)
        timings["fuse_pack"] = (time.perf_counter() - t) * 1000
        return SearchResult(query=query, items=items, tokens=tokens, timings_ms=timings)

    def _graph_candidates(
        self, scope: Scope, query: str, as_of: datetime | None, kinds: Sequence[RecordKind] | None
    ) -> list[Key]:
        """Facts on the edges of entities the query names that share a word with the query.

        Words are compared after BM25's stemming and stop-word removal ("live" meets
        "lives_in"), against the predicate and the far end's name; the named entity itself
        does not count, so naming a person does not pull in every fact about them.
        """
        if kinds and "fact" not in kinds:
            return []
        graph = self.graphs.get(scope)
        query_terms = set(self.sparse.embed_query(query)[0])
        ranked: list[Key] = []
        for entity_id in graph.entities_in(query):
            relations = [r for r in graph.neighbours(entity_id, as_of, hops=1) if r.fact_id]
            scored = [
                (len(query_terms.intersection(self.sparse.embed_query(graph.describe(r, entity_id))[0])), r)
                for r in relations
            ]
            scored = [(shared, r) for shared, r in scored if shared]
            scored.sort(key=lambda pair: (-pair[0], -(pair[1].valid_from or pair[1].created_at).timestamp(), pair[1].id))
            for _, relation in scored:
                if ("fact", relation.fact_id) not in ranked:
                    ranked.append(("fact", relation.fact_id))
        facts = self.records.get_many(scope, "fact", [rid for _, rid in ranked])
        return [key for key in ranked if key[1] in facts and facts[key[1]].status != "retracted"]  # type: ignore[attr-defined]

    def _materialize(
        self, scope: Scope, fused: list[Fused], k: int, budget: int | None, as_of: datetime | None,
    ) -> tuple[list[RetrievedItem], int]:
        """Read records for the best-ranked keys only, in slices, until k items are packed.

        Keys without a record (an index point whose record is gone) and facts whose record
        no longer matches (an index write that failed after a retraction) are skipped, so
        the record store stays the truth of what search returns. A fact whose sentence was
        already shown is skipped too.
        """
        items: list[RetrievedItem] = []
        used = 0
        step = 2 * k + 10
        seen_facts: set[str] = set()  # one sentence can carry two facts (two triples): show it once
        for start in range(0, len(fused), step):
            chunk = fused[start:start + step]
            records = self.hydrate(scope, {f.key for f in chunk})
            present = []
            for f in chunk:
                record = records.get(f.key)
                if record is None or not _current(record, as_of):
                    continue
                if isinstance(record, Fact):
                    if record.text in seen_facts:
                        continue
                    seen_facts.add(record.text)
                present.append(f)
            texts = [records[f.key].index_text() for f in present]  # type: ignore[attr-defined]
            remaining = None if budget is None else budget - used
            chosen, cost = pack(texts, k - len(items), remaining, self.embedder.count_tokens)
            used += cost
            for i in chosen:
                record = records[present[i].key]
                items.append(RetrievedItem(
                    kind=record.kind, id=record.id, text=texts[i], score=present[i].score,
                    stages=present[i].stages, sources=record_sources(record), time=record_time(record),
                ))
            if len(items) >= k:
                break
        return items, used

    def _neighbour_ranking(self, scope: Scope, hits: list[Key], as_of: datetime | None) -> list[Key]:
        """The turns before and after each top event hit, in the hits' order."""
        timeline = self.timelines.get(scope)
        ranked: list[Key] = []
        for kind, rid in hits:
            if kind != "event":
                continue
            for neighbour in (timeline.previous(rid), timeline.next(rid)):
                if neighbour and ("event", neighbour) not in ranked:
                    ranked.append(("event", neighbour))
        if as_of is not None:  # a turn said after as_of was not known then
            said = self.records.get_many(scope, "event", [rid for _, rid in ranked])
            ranked = [key for key in ranked if key[1] in said and said[key[1]].time <= as_of]  # type: ignore[attr-defined]
        return ranked

    def hydrate(self, scope: Scope, keys: set[Key]) -> dict[Key, Record]:
        out: dict[Key, Record] = {}
        for kind in INDEXED_KINDS:
            ids = [rid for k, rid in keys if k == kind]
            if ids:
                out.update({(kind, rid): rec for rid, rec in self.records.get_many(scope, kind, ids).items()})
        return out


def _current(record: Record, as_of: datetime | None) -> bool:
    """Does the record itself (not its index point) say it belongs in this search?"""
    if isinstance(record, StoreItem):  # an item is known from when it was first put until it expires
        return not record.expired() and (as_of is None or record.created_at <= as_of)
    if not isinstance(record, Fact):
        return True
    if as_of is None:
        return record.status == "active"
    starts_ok = record.valid_from is None or record.valid_from <= as_of
    return record.status != "retracted" and starts_ok and (record.valid_to is None or as_of < record.valid_to)
