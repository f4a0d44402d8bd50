"""Conformance: LangGraph's BaseStore contract, checked on two stores side by side.

Every test runs on the reference `InMemoryStore` (with the real MiniLM embedder, so query
search is semantic) and on our `PersonaStore` over the real `memory` fixture (MiniLM + a
Qdrant Edge index, hybrid dense + BM25 retrieval). The behaviours are the ones LangGraph's
own store tests check (libs/checkpoint/tests/test_store*.py, the SQLite store's tests),
written afresh here. Where the two stores may legitimately differ (score values, the order
of filter-only results) the tests assert only what a user can rely on, and say so.

Namespaces: PersonaStore reads the user from the first label (`user_at=0`), and a few
collection names right after it are its own ("facts", "events", "episodes", "profile"), so
no test uses those as a second label.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.memory import InMemoryStore
from personagraph.memory import MiniLMEmbedder

StoreFactory = Callable[..., BaseStore]

DEFAULT_TTL: TTLConfig = {"default_ttl": None, "refresh_on_read": True}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["inmemory", "persona"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store a test runs on: the LangGraph reference or ours."""
    return request.param


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, store_kind: str, embedder: MiniLMEmbedder
) -> Iterator[StoreFactory]:
    """Build the store under test; `ttl` only matters to stores that support TTL."""
    memory = request.getfixturevalue("memory") if store_kind == "persona" else None
    built: list[BaseStore] = []

    def make(ttl: TTLConfig | None = None) -> BaseStore:
        if store_kind == "inmemory":
            store: BaseStore = InMemoryStore(
                index={"dims": embedder.dim, "embed": embedder.embed_documents}
            )
        else:
            from personagraph.memory.persona_store import NamespaceLayout, PersonaStore

            store = PersonaStore(
                memory, layout=NamespaceLayout(user_at=0), ttl=ttl if ttl is not None else DEFAULT_TTL
            )
        built.append(store)
        return store

    yield make
    for store in built:
        for name in ("stop_ttl_sweeper", "close"):
            closer = getattr(store, name, None)
            if callable(closer) and not inspect.iscoroutinefunction(closer):
                closer()


@pytest.fixture
def store(make_store: StoreFactory) -> BaseStore:
    """The store under test, with the default TTL settings."""
    return make_store()


def is_reference(store: BaseStore) -> bool:
    """True on LangGraph's InMemoryStore, for its documented quirks."""
    return isinstance(store, InMemoryStore)


def keys(items: list[Item]) -> list[str]:
    """The keys of a result list, in result order."""
    return [item.key for item in items]


def sweep(store: BaseStore) -> None:
    """Run the store's TTL sweep when it has one (LangGraph's SQL stores expose `sweep_ttl`)."""
    sweeper = getattr(store, "sweep_ttl", None)
    if sweeper is None:
        return
    result = sweeper()
    if inspect.isawaitable(result):
        asyncio.run(result)


# --------------------------------------------------------------------------- test data

COOKING = {
    "bread": "Knead the sourdough dough, let it proof overnight, then bake the bread in a hot oven.",
    "pasta": "Boil the spaghetti in salted water and toss it with a garlic and tomato sauce.",
    "soup": "Simmer onions, carrots and lentils in vegetable stock for a hearty soup.",
}
ASTRONOMY = {
    "jupiter": "Through the telescope we watched Jupiter's four largest moons orbit the planet.",
    "nebula": "The Orion Nebula is a stellar nursery where new stars are born from gas and dust.",
    "eclipse": "During a total solar eclipse the Moon completely blocks the light of the Sun.",
}

PRODUCTS: dict[str, dict[str, Any]] = {
    "p1": {"name": "apple", "color": "red", "price": 1.5, "stock": 10, "organic": True,
           "meta": {"origin": "italy", "grade": 1}},
    "p2": {"name": "cherry", "color": "red", "price": 4.0, "stock": 0, "organic": False,
           "meta": {"origin": "spain", "grade": 2}},
    "p3": {"name": "lime", "color": "green", "price": 0.5, "stock": 25, "organic": True,
           "meta": {"origin": "mexico", "grade": 3}},
    "p4": {"name": "blueberry", "color": "blue", "price": 6.25, "stock": 5, "organic": False,
           "meta": {"origin": "chile", "grade": 2}},
}
PRODUCTS_NS = ("test", "products")


def put_topics(store: BaseStore, namespace: tuple[str, ...] = ("test", "docs")) -> None:
    """Six short texts, three about cooking and three about astronomy."""
    for key, text in COOKING.items():
        store.put(namespace, key, {"text": text, "topic": "cooking"})
    for key, text in ASTRONOMY.items():
        store.put(namespace, key, {"text": text, "topic": "astronomy"})


def put_products(store: BaseStore) -> None:
    """Four items with strings, floats, ints, booleans and a nested object."""
    for key, value in PRODUCTS.items():
        store.put(PRODUCTS_NS, key, value)


def assert_scores_descending(results: list[SearchItem]) -> None:
    """Query results carry a score each, best first (values differ between stores)."""
    scores = [item.score for item in results]
    assert all(isinstance(score, float) for score in scores), scores
    assert scores == sorted(scores, reverse=True), scores


# --------------------------------------------------------------------------- put / get / delete


def test_put_then_get_round_trips_the_item(store: BaseStore) -> None:
    value = {
        "title": "Ünïcødé notes ✓",
        "count": 3,
        "ratio": 0.25,
        "done": False,
        "missing": None,
        "tags": ["a", "b"],
        "nested": {"deep": {"list": [1, {"x": "y"}]}},
    }
    store.put(("test", "docs"), "doc1", value)

    item = store.get(("test", "docs"), "doc1")
    assert isinstance(item, Item)
    assert item.namespace == ("test", "docs")
    assert item.key == "doc1"
    assert item.value == value
    assert isinstance(item.created_at, datetime) and item.created_at.tzinfo is not None
    assert isinstance(item.updated_at, datetime) and item.updated_at.tzinfo is not None
    assert item.updated_at >= item.created_at


def test_get_of_a_missing_item_is_none(store: BaseStore) -> None:
    store.put(("test", "docs"), "doc1", {"text": "hello"})

    assert store.get(("test", "docs"), "nope") is None
    assert store.get(("test", "other"), "doc1") is None
    # Namespaces are exact: neither the parent nor a child holds the item.
    assert store.get(("test",), "doc1") is None
    assert store.get(("test", "docs", "sub"), "doc1") is None
    # Another user's scope (the first label) does not see it either.
    assert store.get(("someone", "docs"), "doc1") is None


def test_overwrite_replaces_value_keeps_created_at_and_advances_updated_at(store: BaseStore) -> None:
    ns = ("test", "docs")
    store.put(ns, "doc1", {"title": "first", "only_in_first": True})
    first = store.get(ns, "doc1")
    assert first is not None
    time.sleep(0.02)

    store.put(ns, "doc1", {"title": "second"})
    second = store.get(ns, "doc1")
    assert second is not None
    # A put replaces the whole value; it does not merge.
    assert second.value == {"title": "second"}
    assert second.updated_at > first.updated_at
    assert second.updated_at >= second.created_at
    if not is_reference(store):
        # LangGraph's SQL stores keep created_at on overwrite; InMemoryStore rebuilds the
        # item and resets it, a reference quirk nobody should rely on.
        assert second.created_at == first.created_at
    assert len(store.search(ns)) == 1


def test_delete_removes_the_item_and_is_idempotent(store: BaseStore) -> None:
    ns = ("test", "docs")
    store.put(ns, "doc1", {"text": "keep"})
    store.put(ns, "doc2", {"text": "drop"})

    store.delete(ns, "doc2")
    assert store.get(ns, "doc2") is None
    assert keys(store.search(ns)) == ["doc1"]

    store.delete(ns, "doc2")  # deleting again is not an error
    store.delete(ns, "never-existed")
    store.delete(("test", "no-such-namespace"), "doc1")
    assert store.get(ns, "doc1") is not None

    store.put(ns, "doc2", {"text": "back"})
    restored = store.get(ns, "doc2")
    assert restored is not None and restored.value == {"text": "back"}


def test_the_same_key_in_two_namespaces_names_two_items(store: BaseStore) -> None:
    store.put(("test", "a"), "k", {"v": "a"})
    store.put(("test", "b"), "k", {"v": "b"})
    store.put(("test", "a", "deeper"), "k", {"v": "deep"})
    store.put(("other", "a"), "k", {"v": "other user"})

    expected = {("test", "a"): "a", ("test", "b"): "b", ("test", "a", "deeper"): "deep", ("other", "a"): "other user"}
    for ns, v in expected.items():
        item = store.get(ns, "k")
        assert item is not None and item.value == {"v": v} and item.namespace == ns
    assert sorted(item.value["v"] for item in store.search(("test",))) == ["a", "b", "deep"]

    store.delete(("test", "a"), "k")
    assert store.get(("test", "a"), "k") is None
    assert store.get(("test", "b"), "k") is not None
    assert store.get(("test", "a", "deeper"), "k") is not None
    assert store.get(("other", "a"), "k") is not None


def test_keys_are_free_form_strings(store: BaseStore) -> None:
    ns = ("test", "docs")
    odd_keys = ["notes/2024 v1.2 ✓", "with.period", "a*b?[c]%_", "  spaced  "]
    for i, key in enumerate(odd_keys):
        store.put(ns, key, {"i": i})
    for i, key in enumerate(odd_keys):
        item = store.get(ns, key)
        assert item is not None and item.key == key and item.value == {"i": i}
    # The public API turns a non-string key into its string.
    store.put(ns, 42, {"i": "int"})  # type: ignore[arg-type]
    item = store.get(ns, "42")
    assert item is not None and item.value == {"i": "int"}
    assert sorted(keys(store.search(ns))) == sorted([*odd_keys, "42"])


def test_labels_hold_any_text_and_match_literally(store: BaseStore) -> None:
    # Labels below the first may hold "@", spaces, SQL LIKE or glob characters...
    tricky = ("test", "alice@example", "a b%_?[x]")
    store.put(tricky, "k", {"v": 1})
    store.put(("test", "abc"), "k", {"v": 2})

    item = store.get(tricky, "k")
    assert item is not None and item.namespace == tricky
    assert [i.namespace for i in store.search(tricky)] == [tricky]
    assert tricky in store.list_namespaces(prefix=("test", "alice@example"))
    # ...and such characters are never patterns: "a_%" must not match "abc".
    assert store.search(("test", "a_%")) == []
    assert store.list_namespaces(prefix=("test", "a_%")) == []
    assert store.list_namespaces(prefix=("test", "a?c")) == []

    # The same holds for the first label (PersonaStore's user label).
    odd_user = ("odd user@x %_?[", "notes")
    store.put(odd_user, "k", {"v": 3})
    store.put(("abc", "notes"), "k", {"v": 4})
    item = store.get(odd_user, "k")
    assert item is not None and item.value == {"v": 3} and item.namespace == odd_user
    assert [i.value for i in store.search(odd_user[:1])] == [{"v": 3}]
    assert store.list_namespaces(prefix=odd_user[:1]) == [odd_user]
    assert store.search(("a_%",)) == [] and store.search(("a?c",)) == []
    assert store.list_namespaces(prefix=("a_%",)) == []


# --------------------------------------------------------------------------- batch


def test_batch_returns_results_in_op_order(store: BaseStore) -> None:
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})

    results = store.batch(
        [
            GetOp(("test", "foo"), "key1"),
            PutOp(("test", "bar"), "key2", {"data": "value2"}),
            SearchOp(("test",), filter={"data": "value1"}, limit=10, offset=0),
            ListNamespacesOp(match_conditions=(), max_depth=None, limit=10, offset=0),
            GetOp(("test",), "key3"),
        ]
    )
    assert len(results) == 5
    assert isinstance(results[0], Item) and results[0].value == {"data": "value1"}
    assert results[0].namespace == ("test", "foo") and results[0].key == "key1"
    assert results[1] is None
    assert isinstance(results[2], list) and keys(results[2]) == ["key1"]
    assert results[2][0].value == {"data": "value1"}
    assert isinstance(results[3], list)
    assert {("test", "foo"), ("test", "bar")} <= set(results[3])
    assert results[4] is None

    # The same kinds of op in another order: results still follow the ops.
    results = store.batch(
        [
            SearchOp(("test",), filter=None, limit=5, offset=0),
            GetOp(("test", "bar"), "key2"),
            ListNamespacesOp(
                match_conditions=(MatchCondition("suffix", ("foo",)),), max_depth=None, limit=5, offset=0
            ),
            PutOp(("test",), "key3", {"data": "value3"}),
            GetOp(("test", "foo"), "key1"),
        ]
    )
    assert len(results) == 5
    # Whether a read sees a write from the same batch is not specified; key3 may show.
    assert isinstance(results[0], list) and {"key1", "key2"} <= set(keys(results[0])) <= {"key1", "key2", "key3"}
    assert isinstance(results[1], Item) and results[1].value == {"data": "value2"}
    assert results[2] == [("test", "foo")]
    assert results[3] is None
    assert isinstance(results[4], Item) and results[4].key == "key1"

    key3 = store.get(("test",), "key3")
    assert key3 is not None and key3.value == {"data": "value3"}


def test_batch_puts_apply_and_the_last_put_of_a_key_wins(store: BaseStore) -> None:
    store.put(("test",), "gone", {"data": "old"})
    results = store.batch(
        [
            PutOp(("test",), "key1", {"data": "value1"}),
            PutOp(("test",), "key2", {"data": "first"}),
            PutOp(("test",), "gone", None),  # a None value deletes
            PutOp(("test",), "key2", {"data": "second"}),
        ]
    )
    assert results == [None, None, None, None]
    key1, key2 = store.get(("test",), "key1"), store.get(("test",), "key2")
    assert key1 is not None and key1.value == {"data": "value1"}
    assert key2 is not None and key2.value == {"data": "second"}
    assert store.get(("test",), "gone") is None


def test_batch_runs_several_searches_and_listings(store: BaseStore) -> None:
    for ns, key, value in [
        (("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
        (("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
        (("test", "baz"), "key3", {"data": "value3", "tag": "b"}),
        (("prod", "foo"), "key4", {"data": "value4", "tag": "a"}),
    ]:
        store.put(ns, key, value)

    results = store.batch(
        [
            SearchOp(("test",), filter={"tag": "a"}, limit=10, offset=0),
            SearchOp(("test",), filter=None, limit=2, offset=0),
            SearchOp(("test", "foo"), filter=None, limit=10, offset=0),
            ListNamespacesOp(match_conditions=(), max_depth=1, limit=10, offset=0),
            ListNamespacesOp(
                match_conditions=(MatchCondition("suffix", ("foo",)),), max_depth=None, limit=10, offset=0
            ),
        ]
    )
    assert sorted(keys(results[0])) == ["key1", "key2"]
    assert len(results[1]) == 2 and set(keys(results[1])) <= {"key1", "key2", "key3"}
    assert keys(results[2]) == ["key1"] and results[2][0].namespace == ("test", "foo")
    assert sorted(results[3]) == [("prod",), ("test",)]
    assert sorted(results[4]) == [("prod", "foo"), ("test", "foo")]


# --------------------------------------------------------------------------- filter search


def test_search_matches_whole_labels_of_the_prefix(store: BaseStore) -> None:
    store.put(("test", "docs"), "d1", {"n": 1})
    store.put(("test", "docs", "drafts"), "d2", {"n": 2})
    store.put(("test", "other"), "o1", {"n": 3})
    store.put(("someone", "docs"), "s1", {"n": 4})

    assert sorted(keys(store.search(("test",)))) == ["d1", "d2", "o1"]
    assert sorted(keys(store.search(("test", "docs")))) == ["d1", "d2"]
    assert keys(store.search(("test", "docs", "drafts"))) == ["d2"]
    assert store.search(("test", "doc")) == []  # a label is not a string prefix
    assert store.search(("nobody",)) == []
    found = {item.key: item for item in store.search(("test",))}
    assert found["d2"].namespace == ("test", "docs", "drafts")
    assert found["d2"].value == {"n": 2}


def test_search_with_an_empty_prefix_spans_every_namespace(store: BaseStore) -> None:
    store.put(("test", "docs"), "d1", {"n": 1})
    store.put(("someone", "notes"), "s1", {"n": 2})
    assert sorted(keys(store.search(()))) == ["d1", "s1"]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"color": "red"}, {"p1", "p2"}),
        ({"organic": True}, {"p1", "p3"}),
        ({"organic": False}, {"p2", "p4"}),
        ({"price": 4}, {"p2"}),  # JSON numbers: 4 equals 4.0
        ({"meta": {"origin": "spain"}}, {"p2"}),  # a nested object matches on the keys given
        ({"meta": {"grade": 2}}, {"p2", "p4"}),
        ({"color": "red", "meta": {"grade": 1}}, {"p1"}),  # several keys: all must match
        ({"name": "durian"}, set()),
    ],
    ids=["str", "true", "false", "int-float", "nested", "nested-int", "and", "no-match"],
)
def test_search_filter_equality(store: BaseStore, flt: dict[str, Any], expected: set[str]) -> None:
    put_products(store)
    results = store.search(PRODUCTS_NS, filter=flt)
    assert set(keys(results)) == expected
    for item in results:
        assert item.value == PRODUCTS[item.key]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"color": {"$eq": "red"}}, {"p1", "p2"}),
        ({"color": {"$ne": "red"}}, {"p3", "p4"}),
        ({"price": {"$ne": 4.0}}, {"p1", "p3", "p4"}),
        ({"price": {"$gt": 1.5}}, {"p2", "p4"}),
        ({"price": {"$gte": 1.5}}, {"p1", "p2", "p4"}),
        ({"price": {"$lt": 1.5}}, {"p3"}),
        ({"price": {"$lte": 1.5}}, {"p1", "p3"}),
        ({"stock": {"$eq": 0}}, {"p2"}),
        ({"stock": {"$gt": 0, "$lt": 10}}, {"p4"}),  # two operators on one field: a range
        ({"price": {"$gte": 1}, "color": "red"}, {"p1", "p2"}),
        ({"price": {"$gt": 100}}, set()),
    ],
    ids=["eq", "ne-str", "ne-num", "gt", "gte", "lt", "lte", "eq-zero", "range", "op-and-eq", "none"],
)
def test_search_filter_operators(store: BaseStore, flt: dict[str, Any], expected: set[str]) -> None:
    put_products(store)
    assert set(keys(store.search(PRODUCTS_NS, filter=flt))) == expected


def _reference_supports_dotted_filters() -> bool:
    probe = InMemoryStore()
    probe.put(("probe",), "k", {"a": {"b": 1}})
    return bool(probe.search(("probe",), filter={"a.b": 1}))


def test_search_filter_dotted_keys_reach_nested_fields(store: BaseStore) -> None:
    if is_reference(store) and not _reference_supports_dotted_filters():
        # LangGraph added dotted filter keys to InMemoryStore after the installed release;
        # the SQL stores have long read "a.b" as a JSON path.
        pytest.skip("the installed InMemoryStore predates dotted filter keys")
    put_products(store)
    store.put(("test", "access"), "hyphen", {"user": {"access-level": "nested"}})
    store.put(("test", "access"), "other", {"user": {"access-level": "flat"}})

    assert keys(store.search(PRODUCTS_NS, filter={"meta.origin": "italy"})) == ["p1"]
    assert set(keys(store.search(PRODUCTS_NS, filter={"meta.grade": {"$gte": 2}}))) == {"p2", "p3", "p4"}
    assert keys(store.search(("test", "access"), filter={"user.access-level": "nested"})) == ["hyphen"]


def test_search_refuses_unknown_filter_operators(store: BaseStore) -> None:
    put_products(store)
    # InMemoryStore raises ValueError; ours raises a typed error that is also a ValueError.
    with pytest.raises(ValueError):
        store.search(PRODUCTS_NS, filter={"price": {"$regex": "^1"}})
    with pytest.raises(ValueError):
        store.search(PRODUCTS_NS, filter={"color": {"$in": ["red", "blue"]}})


def test_search_filter_only_results_have_no_score(store: BaseStore) -> None:
    put_products(store)
    results = store.search(PRODUCTS_NS, filter={"color": "red"})
    assert results and all(isinstance(item, SearchItem) for item in results)
    assert all(item.score is None for item in results)


def test_search_limit_and_offset_page_through_filter_results(store: BaseStore) -> None:
    ns = ("test", "pages")
    for i in range(7):
        store.put(ns, f"k{i}", {"i": i, "kind": "even" if i % 2 == 0 else "odd"})
    store.put(("test", "elsewhere"), "x", {"i": 99, "kind": "even"})

    # The order of filter-only results is the store's own (insertion order in
    # InMemoryStore, newest first in the SQL stores); pages must still be stable.
    pages = [store.search(ns, limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [len(page) for page in pages] == [3, 3, 1, 0]
    paged = [key for page in pages for key in keys(page)]
    assert sorted(paged) == [f"k{i}" for i in range(7)]  # disjoint pages that cover it all
    assert keys(store.search(ns, limit=100)) == paged

    evens = [store.search(ns, filter={"kind": "even"}, limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(page) for page in evens] == [2, 2, 0]
    assert sorted(key for page in evens for key in keys(page)) == ["k0", "k2", "k4", "k6"]
    assert len(store.search(ns)) == 7  # the default limit is 10


# --------------------------------------------------------------------------- query search


def test_query_ranks_the_relevant_item_first(store: BaseStore) -> None:
    put_topics(store)

    results = store.search(("test", "docs"), query="how long should I bake sourdough bread")
    # Only the top hit is asserted: below it, MiniLM alone and our hybrid (dense + BM25)
    # ranking may order the weaker matches differently.
    assert results[0].key == "bread"
    assert_scores_descending(results)
    assert results[0].score > results[-1].score

    results = store.search(("test", "docs"), query="which planets can I see with a telescope")
    assert results[0].key == "jupiter"
    assert_scores_descending(results)
    assert results[0].value == {"text": ASTRONOMY["jupiter"], "topic": "astronomy"}
    assert results[0].namespace == ("test", "docs")


def test_query_search_stays_inside_the_prefix(store: BaseStore) -> None:
    put_topics(store, ("test", "docs"))
    store.put(("test", "kitchen"), "cake", {"text": "Bake the sourdough bread and a sponge cake."})
    store.put(("someone", "docs"), "loaf", {"text": "How long to bake sourdough bread."})

    results = store.search(("test", "docs"), query="bake sourdough bread")
    assert "cake" not in keys(results) and "loaf" not in keys(results)
    assert results[0].key == "bread"

    results = store.search(("test",), query="bake sourdough bread")
    assert "cake" in keys(results) and "loaf" not in keys(results)


def test_query_with_filter_ranks_within_the_filtered_items(store: BaseStore) -> None:
    put_topics(store)
    results = store.search(("test", "docs"), query="the sun and the moon", filter={"topic": "astronomy"})
    assert results[0].key == "eclipse"
    assert set(keys(results)) <= set(ASTRONOMY)
    assert_scores_descending(results)

    # The filter wins over relevance: a cooking query restricted to astronomy finds no recipe.
    results = store.search(("test", "docs"), query="boil spaghetti", filter={"topic": "astronomy"})
    assert set(keys(results)) <= set(ASTRONOMY)


def test_query_pagination_follows_the_ranking(store: BaseStore) -> None:
    put_topics(store)
    query = "baking bread and cooking pasta"
    full = store.search(("test", "docs"), query=query, limit=10)
    page1 = store.search(("test", "docs"), query=query, limit=2)
    page2 = store.search(("test", "docs"), query=query, limit=2, offset=2)

    assert len(page1) == 2 and len(page2) == 2
    assert not set(keys(page1)) & set(keys(page2))
    assert keys(page1) + keys(page2) == keys(full)[:4]
    assert len(full) == 6  # every item is a candidate; none is cut by a threshold


@pytest.mark.parametrize(
    "query",
    ["", None, "test " * 100, "test!@#$%^&*()"],
    ids=["empty", "none", "long", "punctuation"],
)
def test_query_edge_cases_still_return_the_item(store: BaseStore, query: str | None) -> None:
    store.put(("test", "docs"), "doc1", {"text": "test document"})
    results = store.search(("test", "docs"), query=query)
    assert keys(results) == ["doc1"]


def test_overwrite_reembeds_the_item(store: BaseStore) -> None:
    ns = ("test", "animals")
    store.put(ns, "doc1", {"text": "The zebra grazed on the African savanna."})
    store.put(ns, "doc2", {"text": "Lions and giraffes roam the Serengeti plains in Africa."})
    store.put(ns, "doc3", {"text": "A recipe for creamy tomato soup."})
    store.put(ns, "doc4", {"text": "How to patch a punctured bicycle tyre."})
    assert store.search(ns, query="zebras grazing in Africa")[0].key == "doc1"

    store.put(ns, "doc1", {"text": "Teaching a puppy to sit, stay and come when called."})
    assert store.search(ns, query="zebras grazing in Africa")[0].key == "doc2"
    assert store.search(ns, query="dog obedience training")[0].key == "doc1"


def test_delete_removes_the_item_from_query_search(store: BaseStore) -> None:
    put_topics(store)
    store.delete(("test", "docs"), "bread")
    results = store.search(("test", "docs"), query="bake sourdough bread")
    assert "bread" not in keys(results)
    assert len(results) == 5


def test_unindexed_items_are_not_ranked_but_still_stored(store: BaseStore) -> None:
    ns = ("test", "docs")
    for key in ("bread", "pasta", "jupiter"):
        text = COOKING.get(key) or ASTRONOMY[key]
        store.put(ns, key, {"text": text})
    ghost_text = "knead the sourdough dough and bake the bread"
    store.put(ns, "ghost", {"text": ghost_text}, index=False)

    results = store.search(ns, query=ghost_text, limit=3)
    assert "ghost" not in keys(results)
    assert results[0].key == "bread"

    # With room to spare a store may append unindexed items (InMemoryStore does; the SQL
    # stores never return them to a query), but only after every ranked item, unscored.
    results = store.search(ns, query=ghost_text, limit=10)
    if "ghost" in keys(results):
        ghost_at = keys(results).index("ghost")
        assert ghost_at == len(results) - 1 and results[ghost_at].score is None
    assert_scores_descending([item for item in results if item.key != "ghost"])

    assert keys(store.search(ns, filter={"text": ghost_text})) == ["ghost"]
    ghost = store.get(ns, "ghost")
    assert ghost is not None and ghost.value == {"text": ghost_text}


def test_query_pages_never_repeat_an_item(store: BaseStore) -> None:
    if is_reference(store):
        # InMemoryStore appends unindexed items to every short page regardless of the
        # offset, so they repeat across pages (the SQL stores never return them to a query).
        pytest.skip("InMemoryStore repeats unindexed items across query pages")
    ns = ("test", "docs")
    for key in ("bread", "pasta", "soup"):
        store.put(ns, key, {"text": COOKING[key]})
    store.put(ns, "plain1", {"text": "not indexed one"}, index=False)
    store.put(ns, "plain2", {"text": "not indexed two"}, index=False)

    pages = [store.search(ns, query="baking bread", limit=2, offset=o) for o in (0, 2, 4, 6)]
    visited = [key for page in pages for key in keys(page)]
    assert len(visited) == len(set(visited)), visited
    assert {"bread", "pasta", "soup"} <= set(visited) <= {"bread", "pasta", "soup", "plain1", "plain2"}
    assert visited[:3] == keys(store.search(ns, query="baking bread", limit=3))
    assert pages[-1] == []


def test_reput_without_index_drops_the_old_search_text(store: BaseStore) -> None:
    if is_reference(store):
        # InMemoryStore keeps the previous vectors when a put says index=False.
        pytest.skip("InMemoryStore ranks an item by the text of an earlier put")
    ns = ("test", "docs")
    for key in ("bread", "pasta", "jupiter"):
        store.put(ns, key, {"text": COOKING.get(key) or ASTRONOMY[key]})
    store.put(ns, "bread", {"text": COOKING["bread"], "v": 2}, index=False)

    results = store.search(ns, query="bake sourdough bread", limit=2)
    assert "bread" not in keys(results)
    bread = store.get(ns, "bread")
    assert bread is not None and bread.value["v"] == 2


def test_index_fields_choose_what_query_search_reads(store: BaseStore) -> None:
    ns = ("test", "fields")
    # Each item's indexed title and its unindexed note are about opposite topics.
    store.put(
        ns,
        "baking",
        {"title": "Baking sourdough bread at home", "note": "Telescope views of Jupiter and its moons"},
        index=["title"],
    )
    store.put(
        ns,
        "stargazing",
        {"title": "Stargazing with a backyard telescope", "note": "Kneading dough and proofing bread"},
        index=["title"],
    )
    assert store.search(ns, query="telescope views of Jupiter's moons")[0].key == "stargazing"
    assert store.search(ns, query="kneading and proofing bread dough")[0].key == "baking"

    # Nested paths work too.
    store.put(
        ns,
        "nested",
        {"meta": {"summary": "A total solar eclipse darkened the sky"}, "body": "spaghetti carbonara"},
        index=["meta.summary"],
    )
    assert store.search(ns, query="solar eclipse")[0].key == "nested"


# --------------------------------------------------------------------------- list_namespaces


def test_list_namespaces_by_prefix_suffix_and_depth(store: BaseStore) -> None:
    namespaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
        ("admin", "users", "789"),
    ]
    for i, ns in enumerate(namespaces):
        store.put(ns, f"id_{i}", {"data": f"value_{i:02d}"})

    ab = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert sorted(store.list_namespaces(prefix=("a", "b"))) == ab
    assert sorted(store.list_namespaces(suffix=("f",))) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert sorted(store.list_namespaces(prefix=("a",), suffix=("f",))) == [("a", "b", "f"), ("a", "c", "f")]
    # max_depth truncates deeper namespaces, once each.
    assert sorted(store.list_namespaces(prefix=("a", "b"), max_depth=3)) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    # LangGraph's own tests expect listings in sorted order, so pages are slices of it.
    assert store.list_namespaces(prefix=("a", "b"), limit=2) == ab[:2]
    assert store.list_namespaces(prefix=("a", "b"), offset=2) == ab[2:]
    assert store.list_namespaces(prefix=("nonexistent",)) == []
    # A prefix as long as the namespace matches it exactly.
    assert store.list_namespaces(prefix=("users", "123")) == [("users", "123")]
    assert sorted(store.list_namespaces()) == sorted(namespaces)


def test_list_namespaces_with_wildcards(store: BaseStore) -> None:
    namespaces = [
        ("users", "123"),
        ("users", "456"),
        ("users", "789", "settings"),
        ("admin", "users", "789"),
        ("guests", "123"),
        ("guests", "456", "preferences"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    for i, ns in enumerate(namespaces):
        store.put(ns, f"id_{i}", {"data": i})

    assert sorted(store.list_namespaces(prefix=("users", "*"))) == [
        ("users", "123"),
        ("users", "456"),
        ("users", "789", "settings"),
    ]
    assert store.list_namespaces(suffix=("*", "preferences")) == [("guests", "456", "preferences")]
    assert store.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []
    assert sorted(store.list_namespaces(prefix=("a", "*", "f"))) == [("a", "b", "f"), ("a", "c", "f")]
    assert sorted(store.list_namespaces(suffix=("*", "f"))) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert sorted(store.list_namespaces(prefix=("*", "123"))) == [("guests", "123"), ("users", "123")]

    store.put(("admin", "users", "settings", "789"), "foo", {"data": "x"})
    assert store.list_namespaces(prefix=("*", "users"), suffix=("settings", "*")) == [
        ("admin", "users", "settings", "789")
    ]


def test_list_namespaces_max_depth_without_prefix(store: BaseStore) -> None:
    for i, ns in enumerate(
        [("a", "b", "c", "d"), ("a", "b", "c", "e"), ("a", "b", "f"), ("a", "g"), ("h", "i", "j", "k")]
    ):
        store.put(ns, f"id_{i}", {"data": i})
    assert sorted(store.list_namespaces(max_depth=2)) == [("a", "b"), ("a", "g"), ("h", "i")]
    assert sorted(store.list_namespaces(max_depth=1)) == [("a",), ("h",)]


def test_list_namespaces_pagination(store: BaseStore) -> None:
    for i in range(20):
        store.put(("namespace", f"sub_{i:02d}"), f"id_{i:02d}", {"data": i})
    for offset in (0, 5, 15):
        page = store.list_namespaces(prefix=("namespace",), limit=5, offset=offset)
        assert page == [("namespace", f"sub_{i:02d}") for i in range(offset, offset + 5)]
    assert store.list_namespaces(prefix=("namespace",), limit=5, offset=20) == []
    assert len(store.list_namespaces(prefix=("namespace",))) == 20  # the default limit is 100


def test_list_namespaces_of_an_empty_store(store: BaseStore) -> None:
    assert store.list_namespaces() == []
    assert store.list_namespaces(prefix=("a",), suffix=("b",), max_depth=2) == []


def test_list_namespaces_forgets_a_namespace_once_emptied(store: BaseStore) -> None:
    if is_reference(store):
        # InMemoryStore keeps an empty dict per namespace it ever touched (even by a get),
        # so it lists emptied ones; the SQL stores derive namespaces from stored rows.
        pytest.skip("InMemoryStore lists namespaces that no longer hold items")
    store.put(("test", "keep"), "k", {"v": 1})
    store.put(("test", "drop"), "k", {"v": 2})
    store.get(("test", "never"), "k")
    store.delete(("test", "drop"), "k")
    assert store.list_namespaces(prefix=("test",)) == [("test", "keep")]


# --------------------------------------------------------------------------- namespace validation

BAD_PUT_NAMESPACES = [
    (),
    ("the", "thing.about"),
    ("some", "fun", ""),
    ("langgraph", "foo"),
    (123,),
    ("test", 4.5),
    ("nul\x00byte", "x"),
]
BAD_PUT_IDS = ["empty", "period", "empty-label", "langgraph-root", "int", "float", "nul"]


@pytest.mark.parametrize("namespace", BAD_PUT_NAMESPACES, ids=BAD_PUT_IDS)
def test_put_rejects_invalid_namespaces(store: BaseStore, namespace: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(namespace, "key", {"foo": "bar"})
    assert store.list_namespaces() == []


@pytest.mark.parametrize("namespace", BAD_PUT_NAMESPACES, ids=BAD_PUT_IDS)
async def test_aput_rejects_invalid_namespaces(store: BaseStore, namespace: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidNamespaceError):
        await store.aput(namespace, "key", {"foo": "bar"})
    assert await store.alist_namespaces() == []


BAD_LABELS = [("foo.bar",), ("foo", ""), (123,)]
READ_METHODS = ["get", "delete", "search", "prefix", "suffix"]


def _call_with(store: BaseStore, method: str, namespace: tuple[Any, ...]) -> Any:
    if method in ("prefix", "suffix"):
        return store.list_namespaces(**{method: namespace})
    if method == "search":
        return store.search(namespace)
    return getattr(store, method)(namespace, "key")


async def _acall_with(store: BaseStore, method: str, namespace: tuple[Any, ...]) -> Any:
    if method in ("prefix", "suffix"):
        return await store.alist_namespaces(**{method: namespace})
    if method == "search":
        return await store.asearch(namespace)
    return await getattr(store, f"a{method}")(namespace, "key")


@pytest.mark.parametrize("namespace", BAD_LABELS, ids=["period", "empty-label", "int"])
@pytest.mark.parametrize("method", READ_METHODS)
def test_reads_and_deletes_reject_invalid_labels(
    store: BaseStore, method: str, namespace: tuple[Any, ...]
) -> None:
    with pytest.raises(InvalidNamespaceError):
        _call_with(store, method, namespace)


@pytest.mark.parametrize("namespace", BAD_LABELS, ids=["period", "empty-label", "int"])
@pytest.mark.parametrize("method", READ_METHODS)
async def test_async_reads_and_deletes_reject_invalid_labels(
    store: BaseStore, method: str, namespace: tuple[Any, ...]
) -> None:
    with pytest.raises(InvalidNamespaceError):
        await _acall_with(store, method, namespace)


def test_a_period_label_cannot_reach_a_nested_namespace(store: BaseStore) -> None:
    store.put(("test", "a", "b"), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.get(("test", "a.b"), "k")
    with pytest.raises(InvalidNamespaceError):
        store.search(("test", "a.b"))


async def test_langgraph_is_only_reserved_as_the_root_label(store: BaseStore) -> None:
    doc = {"foo": "bar"}
    ns = ("foo", "langgraph", "foo")
    await store.aput(ns, "bar", doc)
    item = await store.aget(ns, "bar")
    assert item is not None and item.value == doc
    assert (await store.asearch(ns))[0].value == doc
    await store.adelete(ns, "bar")
    assert await store.aget(ns, "bar") is None

    store.put(ns, "bar", doc)
    item = store.get(ns, "bar")
    assert item is not None and item.value == doc
    assert store.search(ns)[0].value == doc
    store.delete(ns, "bar")
    assert store.get(ns, "bar") is None


# --------------------------------------------------------------------------- async parity


async def test_async_methods_match_the_sync_ones(store: BaseStore) -> None:
    ns = ("test", "docs")
    await store.aput(ns, "doc1", {"text": COOKING["bread"], "topic": "cooking", "n": 1})
    await store.aput(ns, "doc2", {"text": ASTRONOMY["eclipse"], "topic": "astronomy", "n": 2})
    await store.aput(("test", "other"), "doc3", {"text": "unrelated", "topic": "misc", "n": 3})

    item = await store.aget(ns, "doc1")
    assert item is not None and item.value["n"] == 1 and item == store.get(ns, "doc1")
    assert await store.aget(ns, "missing") is None

    assert keys(await store.asearch(ns, filter={"topic": "astronomy"})) == ["doc2"]
    assert set(keys(await store.asearch(("test",), filter={"n": {"$gte": 2}}))) == {"doc2", "doc3"}
    ranked = await store.asearch(ns, query="a solar eclipse")
    assert keys(ranked)[0] == "doc2"
    assert keys(ranked) == keys(store.search(ns, query="a solar eclipse"))
    assert_scores_descending(ranked)

    assert sorted(await store.alist_namespaces(prefix=("test",))) == [("test", "docs"), ("test", "other")]
    assert await store.alist_namespaces(suffix=("other",)) == [("test", "other")]
    assert await store.alist_namespaces(prefix=("test",), max_depth=1) == [("test",)]

    await store.adelete(ns, "doc1")
    assert await store.aget(ns, "doc1") is None
    assert store.get(ns, "doc1") is None

    results = await store.abatch(
        [
            GetOp(ns, "doc2"),
            PutOp(ns, "doc4", {"text": "new", "topic": "fresh", "n": 4}),
            SearchOp(("test",), filter={"topic": "misc"}, limit=10, offset=0),
            ListNamespacesOp(match_conditions=(), max_depth=None, limit=10, offset=0),
            GetOp(ns, "doc1"),
        ]
    )
    assert isinstance(results[0], Item) and results[0].key == "doc2"
    assert results[1] is None
    assert keys(results[2]) == ["doc3"]
    assert sorted(results[3]) == [("test", "docs"), ("test", "other")]
    assert results[4] is None
    doc4 = await store.aget(ns, "doc4")
    assert doc4 is not None and doc4.value["n"] == 4


async def test_concurrent_async_writes_and_reads(store: BaseStore) -> None:
    ns = ("test", "many")
    await asyncio.gather(*(store.aput(ns, f"k{i}", {"i": i}) for i in range(12)))
    items = await asyncio.gather(*(store.aget(ns, f"k{i}") for i in range(12)))
    assert [item.value["i"] if item else None for item in items] == list(range(12))
    assert len(await store.asearch(ns, limit=50)) == 12

    searches = await asyncio.gather(
        store.asearch(ns, filter={"i": {"$lt": 3}}),
        store.asearch(ns, filter={"i": {"$gte": 10}}),
        store.asearch(ns, filter={"i": 5}),
    )
    assert [sorted(keys(r)) for r in searches] == [["k0", "k1", "k2"], ["k10", "k11"], ["k5"]]
    await asyncio.gather(*(store.adelete(ns, f"k{i}") for i in range(0, 12, 2)))
    assert sorted(keys(await store.asearch(ns, limit=50))) == sorted(f"k{i}" for i in range(1, 12, 2))


# --------------------------------------------------------------------------- TTL (minutes, like LangGraph)


def test_ttl_is_accepted_only_by_stores_that_declare_it(store: BaseStore, store_kind: str) -> None:
    if store_kind == "persona":
        assert store.supports_ttl is True
    if not store.supports_ttl:
        with pytest.raises(NotImplementedError):
            store.put(("test", "ttl"), "k", {"v": 1}, ttl=5)
        store.put(("test", "ttl"), "k", {"v": 1}, ttl=None)  # "no expiry" is always fine
    else:
        store.put(("test", "ttl"), "k", {"v": 1}, ttl=5)
    item = store.get(("test", "ttl"), "k")
    assert item is not None and item.value == {"v": 1}


def _require_ttl(store: BaseStore) -> None:
    if not store.supports_ttl:
        pytest.skip(f"{type(store).__name__} does not declare supports_ttl")


def test_ttl_item_expires(store: BaseStore) -> None:
    _require_ttl(store)
    store.put(("test", "ttl"), "short", {"v": "gone soon"}, ttl=1 / 60)  # one second
    store.put(("test", "ttl"), "long", {"v": "stays"}, ttl=10)
    store.put(("test", "ttl-only"), "short", {"v": "gone soon"}, ttl=1 / 60)
    assert store.get(("test", "ttl"), "short", refresh_ttl=False) is not None

    time.sleep(2.2)
    sweep(store)
    assert store.get(("test", "ttl"), "short") is None
    assert keys(store.search(("test", "ttl"))) == ["long"]
    assert store.search(("test", "ttl"), filter={"v": "gone soon"}) == []
    assert store.list_namespaces(prefix=("test",)) == [("test", "ttl")]


async def test_async_put_with_ttl_expires(store: BaseStore) -> None:
    _require_ttl(store)
    await store.aput(("test", "ttl"), "short", {"v": 1}, ttl=1 / 60)
    assert await store.aget(("test", "ttl"), "short", refresh_ttl=False) is not None
    await asyncio.sleep(2.2)
    sweeper = getattr(store, "sweep_ttl", None)
    if sweeper is not None:
        result = sweeper()
        if inspect.isawaitable(result):
            await result
    assert await store.aget(("test", "ttl"), "short") is None


def test_default_ttl_applies_unless_a_put_overrides_it(make_store: StoreFactory) -> None:
    store = make_store(ttl={"default_ttl": 1 / 60, "refresh_on_read": True})
    _require_ttl(store)
    ns = ("test", "ttl")
    store.put(ns, "default", {"v": 1})
    store.put(ns, "forever", {"v": 2}, ttl=None)
    store.put(ns, "longer", {"v": 3}, ttl=10)

    time.sleep(2.2)
    sweep(store)
    assert store.get(ns, "default") is None
    assert store.get(ns, "forever") is not None
    assert store.get(ns, "longer") is not None


def test_reads_refresh_the_ttl(store: BaseStore) -> None:
    _require_ttl(store)
    ttl_s = 5.0
    ns = ("test", "ttl")
    for key in ("by_get", "by_search", "read_without_refresh", "unread"):
        store.put(ns, key, {"who": key}, ttl=ttl_s / 60)

    time.sleep(0.6 * ttl_s)  # t = 3 s
    assert store.get(ns, "by_get") is not None  # refresh_on_read is on: a plain get refreshes
    assert keys(store.search(ns, filter={"who": "by_search"})) == ["by_search"]
    assert store.get(ns, "read_without_refresh", refresh_ttl=False) is not None

    time.sleep(0.7 * ttl_s)  # t = 6.5 s: past the first deadline, 3.5 s after the refresh
    sweep(store)
    assert store.get(ns, "by_get", refresh_ttl=False) is not None
    assert store.get(ns, "by_search", refresh_ttl=False) is not None
    assert store.get(ns, "read_without_refresh", refresh_ttl=False) is None
    assert store.get(ns, "unread", refresh_ttl=False) is None

    time.sleep(0.7 * ttl_s)  # t = 10 s: past the refreshed deadline (8 s)
    sweep(store)
    assert store.search(ns, refresh_ttl=False) == []
