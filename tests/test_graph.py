"""Specification of the knowledge-graph view: ScopeGraph and the per-scope GraphCache.

The story used throughout: Bob is a friend of Ann Lee (alias "Annie"). Ann worked at Acme Corp
from 2019 until June 2023, then moved to Globex. She lives in New York City (aliases "NYC",
"the Big Apple"), where Acme Corp has its headquarters. Lisbon is known but unconnected.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from personagraph.memory import Entity, Relation, Scope
from personagraph.memory.graph import GraphCache, ScopeGraph

JOB_CHANGE = datetime(2023, 6, 1, tzinfo=UTC)
WHILE_AT_ACME = datetime(2021, 3, 15, tzinfo=UTC)
BEFORE_ACME = datetime(2018, 1, 1, tzinfo=UTC)

ANN = Entity(name="Ann Lee", entity_type="person", aliases=["Annie"])
BOB = Entity(name="Bob", entity_type="person")
ACME = Entity(name="Acme Corp", entity_type="organization")
GLOBEX = Entity(name="Globex", entity_type="organization")
NYC = Entity(name="New York City", entity_type="place", aliases=["NYC", "the Big Apple"])
LISBON = Entity(name="Lisbon", entity_type="place")

FRIEND = Relation(id="r_friend", subject_id=BOB.id, predicate="friend_of", object_id=ANN.id)
AT_ACME = Relation(
    id="r_acme", subject_id=ANN.id, predicate="works_at", object_id=ACME.id,
    valid_from=datetime(2019, 1, 1, tzinfo=UTC), valid_to=JOB_CHANGE,
)
AT_GLOBEX = Relation(
    id="r_globex", subject_id=ANN.id, predicate="works_at", object_id=GLOBEX.id, valid_from=JOB_CHANGE,
)
LIVES = Relation(id="r_lives", subject_id=ANN.id, predicate="lives_in", object_id=NYC.id)
HQ = Relation(id="r_hq", subject_id=ACME.id, predicate="headquartered_in", object_id=NYC.id)

ENTITIES = [ANN, BOB, ACME, GLOBEX, NYC, LISBON]
RELATIONS = [FRIEND, AT_ACME, AT_GLOBEX, LIVES, HQ]


@pytest.fixture
def graph() -> ScopeGraph:
    return ScopeGraph(ENTITIES, RELATIONS)


def rel_ids(relations: list[Relation]) -> set[str]:
    return {r.id for r in relations}


def touching(graph: ScopeGraph, entity_id: str, when: datetime | None = None) -> set[str]:
    """Ids of the relations valid at `when` that have `entity_id` as subject or object."""
    view = graph.as_of(when)
    return {k for *_, k in view.in_edges(entity_id, keys=True)} | {k for *_, k in view.out_edges(entity_id, keys=True)}


def path_ids(paths: list[list[Relation]]) -> list[list[str]]:
    return sorted([r.id for r in path] for path in paths)


# ----------------------------------------------------------------------------- structure


def test_graph_holds_entities_as_nodes_and_relations_as_keyed_edges(graph):
    assert set(graph.graph.nodes) == {e.id for e in ENTITIES}
    assert graph.graph.nodes[ANN.id]["name"] == "Ann Lee"
    assert graph.graph.nodes[ANN.id]["entity_type"] == "person"
    assert graph.graph.has_edge(ANN.id, ACME.id, key="r_acme")
    assert graph.graph.edges[ANN.id, ACME.id, "r_acme"]["relation"] == AT_ACME
    assert graph.graph.number_of_edges() == len(RELATIONS)


# ----------------------------------------------------------------------------- neighbours




def test_neighbours_are_the_currently_valid_relations_touching_the_entity(graph):
    # The closed Acme job is history; the relation direction does not matter.
    assert rel_ids(graph.neighbours(ANN.id)) == {"r_friend", "r_globex", "r_lives"}
    assert rel_ids(graph.neighbours(NYC.id)) == {"r_lives", "r_hq"}


def test_neighbours_at_a_past_time_are_the_relations_valid_then(graph):
    assert rel_ids(graph.neighbours(ANN.id, WHILE_AT_ACME)) == {"r_friend", "r_acme", "r_lives"}
    assert rel_ids(graph.neighbours(ACME.id)) == {"r_hq"}


def test_one_hop_neighbours_are_only_relations_touching_the_entity(graph):
    # Bob's only relation is his friendship with Ann; Ann's job and home are two hops away.
    assert rel_ids(graph.neighbours(BOB.id, hops=1)) == {"r_friend"}


def test_two_hop_neighbours_reach_the_relations_of_direct_neighbours(graph):
    # Two hops from Bob: the friendship, then Ann's current relations; Acme's HQ is three away.
    assert rel_ids(graph.neighbours(BOB.id, hops=2)) == {"r_friend", "r_globex", "r_lives"}


def test_neighbours_now_leave_out_closed_relations(graph):
    for entity in (ANN, ACME, NYC, BOB):
        assert "r_acme" not in rel_ids(graph.neighbours(entity.id))
    assert {"r_friend", "r_globex", "r_lives"} <= rel_ids(graph.neighbours(ANN.id))
    assert "r_hq" in rel_ids(graph.neighbours(ACME.id))


def test_neighbours_at_a_past_time_include_relations_closed_since_and_not_later_ones(graph):
    then = rel_ids(graph.neighbours(ANN.id, WHILE_AT_ACME))

    assert {"r_acme", "r_friend", "r_lives"} <= then
    assert "r_globex" not in then  # Ann had not joined Globex yet
    assert "r_acme" in rel_ids(graph.neighbours(ACME.id, WHILE_AT_ACME))


def test_neighbours_of_an_unknown_or_isolated_entity_are_empty(graph):
    assert graph.neighbours("ent_nobody") == []
    assert graph.neighbours(LISBON.id) == []


def test_more_hops_never_returns_fewer_relations(graph):
    found = [rel_ids(graph.neighbours(BOB.id, hops=h)) for h in (1, 2, 3)]

    assert "r_friend" in found[0]
    assert found[0] <= found[1] <= found[2]
    assert found[2] == {"r_friend", "r_globex", "r_lives", "r_hq"}  # Acme's HQ, via New York


# ----------------------------------------------------------------------------- paths


def test_paths_connect_two_entities_through_relations_in_either_direction(graph):
    assert path_ids(graph.paths(BOB.id, GLOBEX.id)) == [["r_friend", "r_globex"]]
    assert path_ids(graph.paths(GLOBEX.id, BOB.id)) == [["r_globex", "r_friend"]]


def test_paths_now_skip_closed_relations_but_paths_then_use_them(graph):
    assert path_ids(graph.paths(BOB.id, ACME.id)) == [["r_friend", "r_lives", "r_hq"]]
    assert path_ids(graph.paths(BOB.id, ACME.id, WHILE_AT_ACME)) == [
        ["r_friend", "r_acme"],
        ["r_friend", "r_lives", "r_hq"],
    ]


def test_paths_are_limited_to_max_hops(graph):
    assert path_ids(graph.paths(BOB.id, ACME.id, WHILE_AT_ACME, max_hops=2)) == [["r_friend", "r_acme"]]
    assert graph.paths(BOB.id, ACME.id, max_hops=2) == []


def test_paths_follow_each_of_several_relations_between_the_same_pair(graph):
    graph.add_relation(Relation(id="r_loves", subject_id=ANN.id, predicate="loves", object_id=NYC.id))

    assert path_ids(graph.paths(ANN.id, NYC.id, max_hops=1)) == [["r_lives"], ["r_loves"]]


def test_paths_to_unconnected_or_unknown_entities_are_empty(graph):
    assert graph.paths(BOB.id, LISBON.id) == []
    assert graph.paths(BOB.id, "ent_nobody") == []
    assert graph.paths("ent_nobody", BOB.id) == []


# ----------------------------------------------------------------------------- as_of


def test_as_of_now_holds_only_relations_without_an_end(graph):
    view = graph.as_of(None)

    assert {k for _, _, k in view.edges(keys=True)} == {"r_friend", "r_globex", "r_lives", "r_hq"}
    assert set(view.nodes) == {e.id for e in ENTITIES}  # entities stay even when edges go


def test_as_of_inside_a_closed_interval_holds_that_relation(graph):
    view = graph.as_of(WHILE_AT_ACME)

    assert view.has_edge(ANN.id, ACME.id, key="r_acme")
    assert not view.has_edge(ANN.id, GLOBEX.id, key="r_globex")  # had not started yet


def test_as_of_intervals_include_their_start_and_exclude_their_end(graph):
    view = graph.as_of(JOB_CHANGE)

    assert not view.has_edge(ANN.id, ACME.id, key="r_acme")
    assert view.has_edge(ANN.id, GLOBEX.id, key="r_globex")


def test_as_of_before_a_relation_started_omits_it(graph):
    view = graph.as_of(BEFORE_ACME)

    assert {k for _, _, k in view.edges(keys=True)} == {"r_friend", "r_lives", "r_hq"}


def test_as_of_takes_a_naive_datetime_as_utc(graph):
    naive = datetime(2021, 3, 15)

    assert graph.as_of(naive).has_edge(ANN.id, ACME.id, key="r_acme")


def test_as_of_returns_a_copy_that_does_not_change_the_graph(graph):
    view = graph.as_of(None)
    view.remove_node(ANN.id)

    assert ANN.id in graph.graph
    assert touching(graph, ANN.id) == {"r_friend", "r_globex", "r_lives"}


# ----------------------------------------------------------------------------- entities_in


def test_entities_in_finds_multi_word_names_case_insensitively(graph):
    assert graph.entities_in("I had lunch with ann LEE yesterday") == [ANN.id]
    assert graph.entities_in("Moving to NEW YORK city next month") == [NYC.id]


def test_entities_in_finds_aliases_including_multi_word_ones(graph):
    assert graph.entities_in("annie called") == [ANN.id]
    assert graph.entities_in("Flights to nyc are cheap") == [NYC.id]
    assert graph.entities_in("back in The Big Apple") == [NYC.id]


def test_entities_in_matches_whole_words_only(graph):
    assert graph.entities_in("The Annual report from Annabel") == []
    assert graph.entities_in("Bobsleigh at the Globexpo") == []
    assert graph.entities_in("A walk in old York") == []  # part of a multi-word name is no match


def test_entities_in_ignores_punctuation_and_possessives(graph):
    found = graph.entities_in("Did Bob's boss at Acme-Corp, or Globex?")

    assert set(found) == {BOB.id, ACME.id, GLOBEX.id}


def test_entities_in_lists_each_entity_once(graph):
    found = graph.entities_in("Ann Lee, also called Annie, met Bob; Bob and Annie went to NYC.")

    assert sorted(found) == sorted([ANN.id, BOB.id, NYC.id])


def test_entities_in_finds_nothing_in_text_without_names(graph):
    assert graph.entities_in("what did I have for breakfast?") == []
    assert graph.entities_in("") == []


# ----------------------------------------------------------------------------- edits


def test_remove_entity_drops_its_node_relations_and_names(graph):
    graph.remove_entity(ANN.id)

    assert ANN.id not in graph.graph
    assert graph.entities_in("Ann Lee and Annie") == []
    assert graph.neighbours(BOB.id) == []
    assert touching(graph, NYC.id) == {"r_hq"}
    assert set(graph.entities_in("Bob in NYC")) == {BOB.id, NYC.id}  # other names still found


def test_remove_entity_of_an_unknown_id_changes_nothing(graph):
    graph.remove_entity("ent_nobody")

    assert graph.graph.number_of_nodes() == len(ENTITIES)
    assert graph.graph.number_of_edges() == len(RELATIONS)


def test_adding_an_entity_again_updates_its_node(graph):
    graph.add_entity(ANN.model_copy(update={"entity_type": "engineer", "aliases": ["Annie", "Dr Lee"]}))

    assert graph.graph.nodes[ANN.id]["entity_type"] == "engineer"
    assert graph.entities_in("I saw dr lee today") == [ANN.id]
    assert touching(graph, ANN.id) == {"r_friend", "r_globex", "r_lives"}  # its relations stay


def test_adding_an_entity_again_forgets_aliases_it_no_longer_has(graph):
    graph.add_entity(ANN.model_copy(update={"aliases": []}))

    assert graph.entities_in("annie called") == []
    assert graph.entities_in("Ann Lee called") == [ANN.id]


def test_remove_relation_drops_only_that_edge(graph):
    graph.remove_relation("r_lives")

    assert touching(graph, ANN.id) == {"r_friend", "r_globex"}
    assert touching(graph, NYC.id) == {"r_hq"}
    assert path_ids(graph.paths(BOB.id, ACME.id)) == []
    assert NYC.id in graph.graph  # its entities stay
    assert graph.graph.number_of_edges() == len(RELATIONS) - 1


def test_remove_relation_of_an_unknown_id_changes_nothing(graph):
    graph.remove_relation("r_nothing")

    assert graph.graph.number_of_edges() == len(RELATIONS)


def test_adding_a_relation_again_replaces_it_so_it_can_be_closed(graph):
    moved_out = datetime(2024, 1, 1, tzinfo=UTC)
    graph.add_relation(LIVES.model_copy(update={"valid_to": moved_out}))

    assert graph.graph.number_of_edges() == len(RELATIONS)
    assert "r_lives" not in rel_ids(graph.neighbours(ANN.id))
    assert "r_lives" in rel_ids(graph.neighbours(ANN.id, datetime(2023, 12, 1, tzinfo=UTC)))


def test_adding_a_relation_again_with_new_endpoints_moves_the_edge(graph):
    graph.add_relation(LIVES.model_copy(update={"object_id": LISBON.id}))

    assert not graph.graph.has_edge(ANN.id, NYC.id, key="r_lives")
    assert graph.graph.has_edge(ANN.id, LISBON.id, key="r_lives")
    assert touching(graph, LISBON.id) == {"r_lives"}


# ----------------------------------------------------------------------------- GraphCache


class RecordingLoader:
    """A loader over a mutable per-scope store that counts how often each scope is loaded."""

    def __init__(self) -> None:
        self.data: dict[Scope, tuple[list[Entity], list[Relation]]] = {}
        self.calls: list[Scope] = []

    def __call__(self, scope: Scope) -> tuple[list[Entity], list[Relation]]:
        self.calls.append(scope)
        entities, relations = self.data.get(scope, ([], []))
        return list(entities), list(relations)


ALICE_SCOPE = Scope(user_id="alice")
BOB_SCOPE = Scope(user_id="bob")


def test_graph_cache_loads_a_scope_lazily_and_only_once():
    loader = RecordingLoader()
    loader.data[ALICE_SCOPE] = (ENTITIES, RELATIONS)
    cache = GraphCache(loader)

    assert loader.calls == []
    assert not cache.loaded(ALICE_SCOPE)

    first = cache.get(ALICE_SCOPE)
    second = cache.get(ALICE_SCOPE)

    assert first is second
    assert loader.calls == [ALICE_SCOPE]
    assert cache.loaded(ALICE_SCOPE)
    assert touching(first, ANN.id) == {"r_friend", "r_globex", "r_lives"}


def test_graph_cache_keeps_one_separate_graph_per_scope():
    loader = RecordingLoader()
    loader.data[ALICE_SCOPE] = (ENTITIES, RELATIONS)
    loader.data[BOB_SCOPE] = ([LISBON], [])
    cache = GraphCache(loader)

    alice_graph = cache.get(ALICE_SCOPE)
    bob_graph = cache.get(BOB_SCOPE)

    assert alice_graph is not bob_graph
    assert loader.calls == [ALICE_SCOPE, BOB_SCOPE]
    assert bob_graph.entities_in("Ann Lee in Lisbon") == [LISBON.id]
    assert alice_graph.entities_in("Ann Lee") == [ANN.id]
    assert cache.get(Scope(user_id="alice")) is alice_graph  # scopes compare by value


def test_graph_cache_drop_forgets_a_scope_so_the_next_get_reloads_it():
    loader = RecordingLoader()
    loader.data[ALICE_SCOPE] = ([ANN], [])
    loader.data[BOB_SCOPE] = ([BOB], [])
    cache = GraphCache(loader)
    stale = cache.get(ALICE_SCOPE)
    bob_graph = cache.get(BOB_SCOPE)

    loader.data[ALICE_SCOPE] = ([ANN, NYC], [LIVES])
    cache.drop(ALICE_SCOPE)

    assert not cache.loaded(ALICE_SCOPE)
    assert cache.loaded(BOB_SCOPE)
    fresh = cache.get(ALICE_SCOPE)
    assert fresh is not stale
    assert rel_ids(fresh.neighbours(ANN.id)) == {"r_lives"}
    assert stale.neighbours(ANN.id) == []
    assert cache.get(BOB_SCOPE) is bob_graph
    assert loader.calls == [ALICE_SCOPE, BOB_SCOPE, ALICE_SCOPE]


def test_graph_cache_drop_of_an_unloaded_scope_is_harmless():
    loader = RecordingLoader()
    cache = GraphCache(loader)

    cache.drop(ALICE_SCOPE)

    assert not cache.loaded(ALICE_SCOPE)
    assert loader.calls == []
