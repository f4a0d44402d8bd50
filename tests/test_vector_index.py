"""Conformance suite for the VectorIndex protocol, run against every backend.

Each test states one behaviour the rest of personagraph relies on. The same test body runs on
Qdrant Edge (in-process, on disk) and on QdrantServerIndex over qdrant-client's local mode
(standing in for a Qdrant server); a behaviour that differs between them is a bug.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from personagraph.memory import Bm25Encoder, ConfigurationError, MiniLMEmbedder, Scope
from personagraph.memory.index.base import (
    OPEN_END,
    OPEN_START,
    IndexHit,
    IndexPoint,
    IndexQuery,
    VectorIndex,
    point_uuid,
)
from personagraph.memory.index.edge import EdgeIndex
from personagraph.memory.index.server import QdrantServerIndex
from qdrant_client import QdrantClient

ALICE = Scope(user_id="alice")
BOB = Scope(user_id="bob")
ALICE_AT_OTHER_TENANT = Scope(tenant="acme", user_id="alice")

# A small corpus whose topics are far apart, so the nearest text to each query is unambiguous.
CORPUS = {
    "cat": "My cat Miso sleeps on the windowsill every afternoon.",
    "climbing": "I go bouldering at the climbing gym every Tuesday evening.",
    "job": "I work night shifts as a nurse in the children's hospital.",
    "food": "Spicy ramen with extra garlic is my favourite dinner.",
    "travel": "Next spring I am flying to Lisbon for a two-week holiday.",
}

_BM25 = Bm25Encoder()
_DENSE_CACHE: dict[str, list[float]] = {}


def _dense(embedder: MiniLMEmbedder, text: str) -> list[float]:
    if text not in _DENSE_CACHE:
        _DENSE_CACHE[text] = embedder.embed_documents([text])[0]
    return _DENSE_CACHE[text]


def _unit(i: int, dim: int = 384) -> list[float]:
    """A cheap distinct vector, for tests that are about bookkeeping rather than ranking."""
    vec = [0.0] * dim
    vec[i % dim] = 1.0
    return vec


def make_point(
    embedder: MiniLMEmbedder,
    scope: Scope,
    record_id: str,
    text: str,
    *,
    kind: str = "fact",
    status: str = "active",
    valid_from: float = OPEN_START,
    valid_to: float = OPEN_END,
) -> IndexPoint:
    return IndexPoint(
        scope=scope, kind=kind, record_id=record_id,
        dense=_dense(embedder, text), sparse=_BM25.embed_document(text),
        status=status, valid_from=valid_from, valid_to=valid_to,
    )


def corpus_points(embedder: MiniLMEmbedder, scope: Scope) -> list[IndexPoint]:
    return [make_point(embedder, scope, rid, text) for rid, text in CORPUS.items()]


def ids(hits: list[IndexHit]) -> list[str]:
    return [h.record_id for h in hits]


def dense_search(index: VectorIndex, embedder: MiniLMEmbedder, query: IndexQuery, text: str) -> list[IndexHit]:
    return index.search_dense(query, embedder.embed_query(text))


def sparse_search(index: VectorIndex, query: IndexQuery, text: str) -> list[IndexHit]:
    return index.search_sparse(query, _BM25.embed_query(text))


def _open(backend: str, tmp_path: Path) -> VectorIndex:
    if backend == "edge":
        return EdgeIndex(tmp_path / "edge")
    return QdrantServerIndex(QdrantClient(location=":memory:"))


@pytest.fixture(params=["edge", "server"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    idx = _open(request.param, tmp_path)
    yield idx
    idx.close()


# ----------------------------------------------------------------------------- ranking


def test_dense_search_ranks_the_semantically_closest_text_first(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))
    query = IndexQuery(scope=ALICE)

    assert ids(dense_search(index, embedder, query, "What kind of pet does the user have?"))[0] == "cat"
    assert ids(dense_search(index, embedder, query, "Which sport or hobby do they practise?"))[0] == "climbing"
    assert ids(dense_search(index, embedder, query, "What is their profession?"))[0] == "job"
    assert ids(dense_search(index, embedder, query, "Where are they going on vacation?"))[0] == "travel"


def test_dense_scores_are_cosine_similarities_in_descending_order(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    hits = index.search_dense(IndexQuery(scope=ALICE), _dense(embedder, CORPUS["food"]))

    assert len(hits) == len(CORPUS)
    assert hits[0].record_id == "food"
    assert hits[0].kind == "fact"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)  # a text is its own nearest neighbour
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in scores)


def test_search_returns_at_most_limit_hits(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    hits = dense_search(index, embedder, IndexQuery(scope=ALICE, limit=2), "pets")

    assert len(hits) == 2


def test_a_limit_of_zero_returns_no_hits(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    assert dense_search(index, embedder, IndexQuery(scope=ALICE, limit=0), "pets") == []
    assert sparse_search(index, IndexQuery(scope=ALICE, limit=0), "Miso") == []


def test_sparse_search_ranks_exact_term_matches_first(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))
    query = IndexQuery(scope=ALICE)

    # A name the dense model knows nothing about: only the lexical match can find it.
    assert ids(sparse_search(index, query, "Miso"))[0] == "cat"
    assert ids(sparse_search(index, query, "Lisbon"))[0] == "travel"
    # Stemming: "ramen" and "garlic" match as terms regardless of surrounding words.
    assert ids(sparse_search(index, query, "garlic ramen recipe"))[0] == "food"


def test_sparse_search_returns_only_points_sharing_a_term(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    hits = sparse_search(index, IndexQuery(scope=ALICE), "bouldering")

    assert ids(hits) == ["climbing"]
    assert hits[0].score > 0


def test_sparse_scores_weight_rare_terms_higher_than_common_ones(index, embedder):
    # "every" occurs in two texts, "windowsill" in one: IDF must make the rare term count more.
    index.upsert(corpus_points(embedder, ALICE))

    hits = sparse_search(index, IndexQuery(scope=ALICE), "every windowsill")

    assert ids(hits)[0] == "cat"
    assert set(ids(hits)) == {"cat", "climbing"}
    assert hits[0].score > hits[1].score


def test_empty_sparse_query_returns_no_hits(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    assert index.search_sparse(IndexQuery(scope=ALICE), ([], [])) == []
    # A query of stopwords only encodes to the empty vector.
    assert _BM25.embed_query("the and of it") == ([], [])
    assert sparse_search(index, IndexQuery(scope=ALICE), "the and of it") == []


def test_search_in_an_empty_scope_returns_no_hits(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    assert dense_search(index, embedder, IndexQuery(scope=BOB), "pets") == []
    assert sparse_search(index, IndexQuery(scope=BOB), "Miso") == []


# ----------------------------------------------------------------------------- scopes


def test_point_ids_differ_by_scope_kind_and_record_id():
    assert point_uuid(ALICE, "fact", "f1") != point_uuid(BOB, "fact", "f1")
    assert point_uuid(ALICE, "fact", "f1") != point_uuid(ALICE_AT_OTHER_TENANT, "fact", "f1")
    assert point_uuid(ALICE, "fact", "f1") != point_uuid(ALICE, "event", "f1")
    assert point_uuid(ALICE, "fact", "f1") == point_uuid(Scope(user_id="alice"), "fact", "f1")


def test_scopes_with_identical_texts_and_ids_never_see_each_other(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))
    index.upsert(corpus_points(embedder, BOB))
    index.upsert(corpus_points(embedder, ALICE_AT_OTHER_TENANT))
    index.upsert([make_point(embedder, BOB, "bob-only", "My cat Miso is a tabby.")])

    for scope in (ALICE, ALICE_AT_OTHER_TENANT):
        query = IndexQuery(scope=scope)
        dense = dense_search(index, embedder, query, "What kind of pet does the user have?")
        sparse = sparse_search(index, query, "Miso cat")
        # Each record id appears once: no twin from another scope, and nothing Bob-only.
        assert sorted(ids(dense)) == sorted(CORPUS)
        assert ids(sparse) == ["cat"]

    bob_sparse = sparse_search(index, IndexQuery(scope=BOB), "Miso cat")
    assert sorted(ids(bob_sparse)) == ["bob-only", "cat"]
    assert index.count(ALICE) == len(CORPUS)
    assert index.count(BOB) == len(CORPUS) + 1
    assert index.count() == 3 * len(CORPUS) + 1


def test_deleting_a_key_in_one_scope_leaves_the_same_key_in_another(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))
    index.upsert(corpus_points(embedder, BOB))

    index.delete(ALICE, [("fact", "cat")])

    assert ("fact", "cat") not in index.keys(ALICE)
    assert ("fact", "cat") in index.keys(BOB)
    assert "cat" in ids(sparse_search(index, IndexQuery(scope=BOB), "Miso"))
    assert sparse_search(index, IndexQuery(scope=ALICE), "Miso") == []


def test_delete_scope_removes_exactly_that_scope(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))
    index.upsert(corpus_points(embedder, BOB))
    index.upsert(corpus_points(embedder, ALICE_AT_OTHER_TENANT))

    index.delete_scope(ALICE)

    assert index.count(ALICE) == 0
    assert index.keys(ALICE) == set()
    assert dense_search(index, embedder, IndexQuery(scope=ALICE), "pets") == []
    assert index.count(BOB) == len(CORPUS)
    assert index.count(ALICE_AT_OTHER_TENANT) == len(CORPUS)  # same user id, other tenant
    assert index.count() == 2 * len(CORPUS)


# ----------------------------------------------------------------------------- filters


def test_kinds_filter_keeps_only_the_requested_kinds(index, embedder):
    index.upsert([
        make_point(embedder, ALICE, "f1", "My cat Miso sleeps all day.", kind="fact"),
        make_point(embedder, ALICE, "e1", "Miso knocked a glass off the table today.", kind="event"),
        make_point(embedder, ALICE, "p1", "A week of Miso the cat causing chaos.", kind="episode"),
    ])

    def found(kinds: tuple[str, ...] | None) -> set[tuple[str, str]]:
        query = IndexQuery(scope=ALICE, kinds=kinds)
        dense = dense_search(index, embedder, query, "the cat")
        sparse = sparse_search(index, query, "Miso")
        assert {(h.kind, h.record_id) for h in dense} == {(h.kind, h.record_id) for h in sparse}
        return {(h.kind, h.record_id) for h in dense}

    assert found(("fact",)) == {("fact", "f1")}
    assert found(("event", "episode")) == {("event", "e1"), ("episode", "p1")}
    assert found(None) == {("fact", "f1"), ("event", "e1"), ("episode", "p1")}


# Validity as float timestamps: an old fact was replaced at T_CHANGE.
T_START, T_CHANGE = 1_600_000_000.0, 1_700_000_000.0
BEFORE_START, DURING_OLD, AFTER_CHANGE = T_START - 1.0, T_START + 1000.0, T_CHANGE + 1000.0


@pytest.fixture
def history(index, embedder) -> VectorIndex:
    """Alice lived in Paris, then moved to Berlin; one claim was retracted; one never expires."""
    index.upsert([
        make_point(embedder, ALICE, "paris", "I live in Paris.", status="superseded",
                   valid_from=T_START, valid_to=T_CHANGE),
        make_point(embedder, ALICE, "berlin", "I live in Berlin.", valid_from=T_CHANGE),
        make_point(embedder, ALICE, "rome", "I live in Rome.", status="retracted",
                   valid_from=T_START, valid_to=OPEN_END),
        make_point(embedder, ALICE, "name", "My name is Alice."),  # open interval, active
    ])
    return index


def _visible(index: VectorIndex, embedder: MiniLMEmbedder, as_of: float | None) -> set[str]:
    query = IndexQuery(scope=ALICE, as_of=as_of)
    dense = set(ids(dense_search(index, embedder, query, "Where does she live?")))
    sparse = set(ids(sparse_search(index, query, "live Paris Berlin Rome Alice name")))
    assert dense == sparse, "dense and sparse search must apply the same filter"
    return dense


def test_without_as_of_only_active_points_match(history, embedder):
    assert _visible(history, embedder, None) == {"berlin", "name"}


def test_as_of_in_the_past_shows_what_was_valid_then_including_superseded(history, embedder):
    assert _visible(history, embedder, DURING_OLD) == {"paris", "name"}


def test_as_of_after_a_change_shows_the_replacement(history, embedder):
    assert _visible(history, embedder, AFTER_CHANGE) == {"berlin", "name"}


def test_as_of_validity_is_half_open_from_inclusive_to_exclusive(history, embedder):
    assert _visible(history, embedder, T_START) == {"paris", "name"}
    assert _visible(history, embedder, T_CHANGE) == {"berlin", "name"}


def test_as_of_before_anything_started_shows_only_open_intervals(history, embedder):
    assert _visible(history, embedder, BEFORE_START) == {"name"}


def test_retracted_points_never_match_at_any_time(history, embedder):
    for as_of in (None, BEFORE_START, T_START, DURING_OLD, T_CHANGE, AFTER_CHANGE):
        assert "rome" not in _visible(history, embedder, as_of)
    assert ("fact", "rome") in history.keys(ALICE)  # still indexed, just filtered out


# ----------------------------------------------------------------------------- bookkeeping


def test_keys_and_count_report_each_scopes_points(index, embedder):
    assert index.count() == 0
    assert index.keys(ALICE) == set()

    index.upsert(corpus_points(embedder, ALICE))
    index.upsert([make_point(embedder, BOB, "e1", "Hello there", kind="event")])

    assert index.keys(ALICE) == {("fact", rid) for rid in CORPUS}
    assert index.keys(BOB) == {("event", "e1")}
    assert index.count(ALICE) == len(CORPUS)
    assert index.count(BOB) == 1
    assert index.count() == len(CORPUS) + 1


def test_keys_pages_through_more_than_one_scroll_batch(index):
    n = 2_345  # the backends scroll 1,000 at a time
    sparse = _BM25.embed_document("filler")
    index.upsert([
        IndexPoint(scope=ALICE, kind="event", record_id=f"e{i}", dense=_unit(i), sparse=sparse)
        for i in range(n)
    ])
    index.upsert([IndexPoint(scope=BOB, kind="event", record_id="e0", dense=_unit(0), sparse=sparse)])

    assert index.keys(ALICE) == {("event", f"e{i}") for i in range(n)}
    assert index.count(ALICE) == n
    assert index.count() == n + 1


def test_upserting_the_same_key_twice_replaces_the_point(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))
    index.upsert([make_point(embedder, ALICE, "cat", "My dog Rex chews every shoe in the house.")])

    assert index.count(ALICE) == len(CORPUS)
    assert index.keys(ALICE) == {("fact", rid) for rid in CORPUS}
    assert sparse_search(index, IndexQuery(scope=ALICE), "Miso windowsill") == []
    assert ids(sparse_search(index, IndexQuery(scope=ALICE), "Rex shoe")) == ["cat"]


def test_re_upserting_with_a_new_status_changes_what_matches(index, embedder):
    index.upsert([make_point(embedder, ALICE, "f1", "I live in Paris.")])
    index.upsert([make_point(embedder, ALICE, "f1", "I live in Paris.", status="retracted")])

    assert index.count(ALICE) == 1
    assert sparse_search(index, IndexQuery(scope=ALICE), "Paris") == []


def test_delete_removes_only_the_given_keys(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    index.delete(ALICE, [("fact", "cat"), ("fact", "food")])

    assert index.keys(ALICE) == {("fact", rid) for rid in CORPUS} - {("fact", "cat"), ("fact", "food")}
    assert index.count(ALICE) == len(CORPUS) - 2
    assert "cat" not in ids(dense_search(index, embedder, IndexQuery(scope=ALICE), "pet cat"))


def test_delete_of_unknown_or_wrong_kind_keys_is_a_no_op(index, embedder):
    index.upsert(corpus_points(embedder, ALICE))

    index.delete(ALICE, [])
    index.delete(ALICE, [("fact", "no-such-record"), ("event", "cat")])  # "cat" is a fact

    assert index.count(ALICE) == len(CORPUS)


def test_upsert_of_nothing_is_a_no_op(index):
    index.upsert([])

    assert index.count() == 0


# ----------------------------------------------------------------------------- backends agree


def test_both_backends_rank_identically(tmp_path, embedder):
    edge = _open("edge", tmp_path)
    server = _open("server", tmp_path)
    try:
        for idx in (edge, server):
            idx.upsert(corpus_points(embedder, ALICE))
        for text in ("pets", "what do they eat", "travel plans", "work"):
            q = IndexQuery(scope=ALICE)
            edge_hits = dense_search(edge, embedder, q, text)
            server_hits = dense_search(server, embedder, q, text)
            assert ids(edge_hits) == ids(server_hits)
            assert [h.score for h in edge_hits] == pytest.approx([h.score for h in server_hits], abs=1e-4)
        for text in ("every windowsill", "Miso", "garlic ramen", "I go every Tuesday"):
            q = IndexQuery(scope=ALICE)
            edge_hits = sparse_search(edge, q, text)
            server_hits = sparse_search(server, q, text)
            assert ids(edge_hits) == ids(server_hits)
            assert [h.score for h in edge_hits] == pytest.approx([h.score for h in server_hits], rel=1e-3)
    finally:
        edge.close()
        server.close()


# ----------------------------------------------------------------------------- Edge only


def test_edge_index_persists_across_close_and_reopen(tmp_path, embedder):
    path = tmp_path / "edge"
    first = EdgeIndex(path)
    first.upsert(corpus_points(embedder, ALICE))
    first.upsert([make_point(embedder, BOB, "e1", "Hello there", kind="event")])
    first.delete(ALICE, [("fact", "job")])
    first.close()

    reopened = EdgeIndex(path)
    try:
        assert reopened.count() == len(CORPUS)
        assert reopened.count(ALICE) == len(CORPUS) - 1
        assert reopened.keys(BOB) == {("event", "e1")}
        assert ids(sparse_search(reopened, IndexQuery(scope=ALICE), "Miso"))[0] == "cat"
        assert ids(dense_search(reopened, embedder, IndexQuery(scope=ALICE), "a pet"))[0] == "cat"
        # The payload indexes survive as well: filters still apply after reopening.
        assert ids(sparse_search(reopened, IndexQuery(scope=ALICE, kinds=("event",)), "Miso")) == []
    finally:
        reopened.close()


def test_edge_index_refuses_a_second_opener_of_the_same_path(tmp_path, embedder):
    path = tmp_path / "edge"
    owner = EdgeIndex(path)
    try:
        owner.upsert(corpus_points(embedder, ALICE))

        with pytest.raises(ConfigurationError, match="open in another process") as caught:
            EdgeIndex(path)

        assert str(path) in str(caught.value)
        assert "WouldBlock" in str(caught.value.__cause__)
        assert owner.count(ALICE) == len(CORPUS)  # the owner is unaffected
    finally:
        owner.close()


def test_edge_index_can_be_reopened_once_the_owner_closes(tmp_path):
    path = tmp_path / "edge"
    EdgeIndex(path).close()

    again = EdgeIndex(path)
    try:
        assert again.count() == 0
    finally:
        again.close()
