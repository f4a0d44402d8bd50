"""Reconciliation rules, model-decision mapping, entity resolution and budgets, one at a time."""

from __future__ import annotations

from personagraph.graphs.reflection import LLMBudget
from personagraph.graphs.reflection.entities import (
    EntityResolver,
    normalise_name,
    resolve_entities,
)
from personagraph.graphs.reflection.reconcile import (
    Decision,
    ModelDecision,
    ModelDecisions,
    ReconcileConfig,
    apply_model_decisions,
    changes_for,
    dedupe_batch,
    fact_id_for,
    reconcile,
    rule_decision,
)
from personagraph.graphs.reflection.schema import CandidateEntity, CandidateFact
from personagraph.memory import Fact, Scope
from personagraph.memory.models import Entity

CONFIG = ReconcileConfig()


def cand(text: str, subject: str | None = None, predicate: str | None = None, obj: str | None = None, src: str = "e1") -> CandidateFact:
    return CandidateFact(text=text, subject=subject, predicate=predicate, object=obj, sources=[src])


def fact(text: str, subject: str | None = None, predicate: str | None = None, obj: str | None = None, fid: str = "f1") -> Fact:
    return Fact(id=fid, text=text, subject=subject, predicate=predicate, object=obj, sources=["e0"])


# ================================================================================ rules
def test_same_text_is_a_noop_whatever_the_case_and_punctuation() -> None:
    d = rule_decision(cand("Alice is allergic to peanuts."), [(fact("alice is ALLERGIC to peanuts"), 0.99)], CONFIG)
    assert d is not None and (d.action, d.target_id) == ("noop", "f1")


def test_near_duplicate_with_the_same_object_is_a_noop_but_a_new_object_is_not() -> None:
    old = fact("Alice loves jazz music", "Alice", "likes", "jazz")
    assert rule_decision(cand("Alice really loves jazz", "Alice", "likes", "jazz"), [(old, 0.95)], CONFIG).action == "noop"  # type: ignore[union-attr]
    other = rule_decision(cand("Alice loves blues music", "Alice", "likes", "blues"), [(old, 0.95)], CONFIG)
    assert other is None or other.action != "noop"


def test_a_near_duplicate_without_a_triple_is_a_noop() -> None:
    old = fact("Melanie is a big fan of pottery", "Melanie", "likes", "pottery")
    d = rule_decision(cand("Melanie is a big fan of pottery, the creative process is amazing."), [(old, 0.95)], CONFIG)
    assert d is not None and d.action == "noop"


def test_a_single_valued_predicate_with_a_new_object_supersedes() -> None:
    d = rule_decision(cand("Alice lives in Porto", "Alice", "lives_in", "Porto"), [(fact("Alice lives in Lisbon", "Alice", "lives_in", "Lisbon"), 0.8)], CONFIG)
    assert d is not None and (d.action, d.target_id) == ("supersede", "f1")


def test_a_many_valued_predicate_never_supersedes_by_rule() -> None:
    d = rule_decision(cand("Alice likes tea", "Alice", "likes", "tea"), [(fact("Alice likes coffee", "Alice", "likes", "coffee"), 0.7)], CONFIG)
    assert d is None or d.action != "supersede"


def test_another_subject_never_supersedes() -> None:
    d = rule_decision(cand("Bob lives in Porto", "Bob", "lives_in", "Porto"), [(fact("Alice lives in Lisbon", "Alice", "lives_in", "Lisbon"), 0.8)], CONFIG)
    assert d is None or d.action != "supersede"


def test_the_opposite_predicate_on_the_same_object_retracts() -> None:
    d = rule_decision(cand("Alice dislikes horror movies", "Alice", "dislikes", "horror movies"), [(fact("Alice likes horror movies", "Alice", "likes", "horror movies"), 0.85)], CONFIG)
    assert d is not None and (d.action, d.target_id) == ("retract", "f1")


def test_nothing_related_is_an_add_and_something_related_goes_to_the_model() -> None:
    assert rule_decision(cand("Alice plays the cello"), [(fact("Alice lives in Lisbon"), 0.2)], CONFIG).action == "add"  # type: ignore[union-attr]
    assert rule_decision(cand("Alice plays the cello"), [], CONFIG).action == "add"  # type: ignore[union-attr]
    assert rule_decision(cand("Alice plays cello in an orchestra"), [(fact("Alice plays the cello"), 0.8)], CONFIG) is None


# ================================================================================ model decisions
def test_model_numbers_map_back_to_ids_and_bad_answers_fall_back_to_add() -> None:
    pending = [cand("Alice lives in Porto", "Alice", "lives_in", "Porto"), cand("Alice plays cello", src="e2"), cand("Alice runs", src="e3")]
    existing = [fact("Alice lives in Lisbon", "Alice", "lives_in", "Lisbon", fid="f_lisbon"), fact("Alice likes music", fid="f_music")]
    answer = ModelDecisions(decisions=[
        ModelDecision(candidate=1, action="supersede", target=1),
        ModelDecision(candidate=2, action="supersede", target=2),  # not the same slot: refused
        ModelDecision(candidate=3, action="noop", target=7),  # no fact 7: refused
    ])
    made = apply_model_decisions(pending, existing, answer)
    assert [(d.action, d.target_id, d.by) for d in made] == [
        ("supersede", "f_lisbon", "model"), ("add", None, "fallback"), ("add", None, "fallback"),
    ]


def test_a_missing_answer_or_no_model_means_add() -> None:
    pending = [cand("Alice plays cello in an orchestra")]
    neighbours = [[(fact("Alice plays the cello"), 0.8)]]
    assert [d.action for d in reconcile(pending, neighbours, None)] == ["add"]
    assert [d.action for d in reconcile(pending, neighbours, lambda c, e: None)] == ["add"]


def test_the_model_is_asked_once_for_all_ambiguous_candidates_and_never_for_clear_ones() -> None:
    asked: list[tuple[int, int]] = []

    def decide(pending, existing):
        asked.append((len(pending), len(existing)))
        return ModelDecisions(decisions=[ModelDecision(candidate=1, action="update", target=1)])

    cands = [cand("Alice plays cello in an orchestra", src="e1"), cand("Alice is allergic to cats", src="e2"), cand("Alice plays cello every Sunday", src="e3")]
    neighbours = [[(fact("Alice plays the cello"), 0.8)], [], [(fact("Alice plays the cello"), 0.75)]]
    decisions = reconcile(cands, neighbours, decide)
    assert asked == [(2, 1)]
    assert [d.action for d in decisions] == ["update", "add", "add"]


def test_two_candidates_cannot_both_close_one_fact() -> None:
    old = fact("Alice lives in Lisbon", "Alice", "lives_in", "Lisbon")
    decisions = reconcile(
        [cand("Alice lives in Porto", "Alice", "lives_in", "Porto", "e1"), cand("Alice lives in Braga", "Alice", "lives_in", "Braga", "e2")],
        [[(old, 0.8)], [(old, 0.8)]], None,
    )
    assert [d.action for d in decisions] == ["supersede", "add"]


# ================================================================================ change sets
def test_change_set_follows_each_action() -> None:
    old = fact("Alice lives in Lisbon", "Alice", "lives_in", "Lisbon", fid="f_old")
    music = fact("Alice likes music", fid="f_music")
    existing = {f.id: f for f in (old, music)}
    decisions = [
        Decision(candidate=cand("Alice lives in Porto", "Alice", "lives_in", "Porto"), action="supersede", target_id="f_old", reason="r"),
        Decision(candidate=cand("Alice likes music", src="e9"), action="noop", target_id="f_music", reason="r"),
        Decision(candidate=cand("Alice plays cello"), action="add", reason="r"),
    ]
    changes = changes_for(decisions, existing)
    assert [old_id for old_id, _ in changes.supersede] == ["f_old"]
    assert [f.text for f in changes.add] == ["Alice plays cello"]
    assert [(f.id, sorted(f.sources)) for f in changes.update] == [("f_music", ["e0", "e9"])]


def test_fact_ids_are_stable_so_replays_collide() -> None:
    assert fact_id_for(cand("Alice plays cello.")) == fact_id_for(cand("alice plays cello"))
    assert fact_id_for(cand("Alice plays cello", src="e1")) != fact_id_for(cand("Alice plays cello", src="e2"))


def test_batch_dedupe_merges_sources() -> None:
    (merged,) = dedupe_batch([cand("Alice plays cello", src="e1"), cand("alice plays cello!", src="e2")])
    assert merged.sources == ["e1", "e2"]


# ================================================================================ entities
def test_names_normalise_away_possessives_articles_and_spacing() -> None:
    assert normalise_name("My  sister's") == "sister"
    assert normalise_name("the Blue-Note") == "blue note"


def test_resolution_order_exact_alias_normalised_embedding(embedder) -> None:
    known = [Entity(name="Melanie", entity_type="person", aliases=["Mel"]), Entity(name="New York City", entity_type="place")]
    resolver = EntityResolver(list(known), embedder)
    assert resolver.resolve("melanie")[1] == "exact"
    assert resolver.resolve("Mel")[1] == "alias"
    assert resolver.resolve("Melanie's")[1] in ("alias", "normalised")
    found, how = resolver.resolve("New York")
    assert (found.name if found else None, how) == ("New York City", "embedding")
    assert resolver.resolve("Hannah") == (None, "new")


def test_resolving_rewrites_facts_and_records_the_alias() -> None:
    resolver = EntityResolver([Entity(name="Melanie", entity_type="person", aliases=["Mel"])])
    facts, entities = resolve_entities(
        [cand("Alice met Mel", "Alice", "met", "Mel", "e1")], [CandidateEntity(name="Pixel", entity_type="pet", sources=["e1"])],
        resolver, speakers=["Alice"],
    )
    assert (facts[0].subject, facts[0].object) == ("Alice", "Melanie")
    by_name = {e.name: e for e in entities}
    assert by_name["Alice"].entity_type == "person" and by_name["Pixel"].entity_type == "pet"
    assert by_name["Melanie"].sources == ["e1"] and by_name["Melanie"].aliases == ["Mel"]


# ================================================================================ budget
def test_budget_counts_per_batch_and_per_user_hour_independently() -> None:
    now = [0.0]
    budget = LLMBudget(per_batch=2, per_user_per_hour=3, clock=lambda: now[0])
    alice, bob = Scope(user_id="alice"), Scope(user_id="bob")
    assert budget.try_spend(alice, 0) and budget.try_spend(alice, 1)
    assert not budget.try_spend(alice, 2)  # batch limit
    assert budget.try_spend(alice, 0)
    assert not budget.try_spend(alice, 0)  # hour limit
    assert budget.try_spend(bob, 0)  # another user has their own hour
    now[0] = 3600.5
    assert budget.try_spend(alice, 0) and budget.used_this_hour(alice) == 1
    assert (budget.total_calls, budget.refused) == (5, 2)

