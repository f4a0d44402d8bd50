"""The deterministic extractor: explicit first-person statements in, candidate facts out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from personagraph.graphs.reflection.explicit import extract_explicit
from personagraph.graphs.reflection.schema import CandidateFact
from personagraph.memory.models import Event

T0 = datetime(2023, 5, 8, 14, 0, tzinfo=UTC)  # a Monday
SAMPLE = Path(__file__).resolve().parents[1] / "personagraph" / "samples" / "demo_conversation.jsonl"


def _event(text: str, role: str = "user", speaker: str = "Caroline", minutes: int = 0) -> Event:
    return Event(speaker=speaker, role=role, text=text, time=T0 + timedelta(minutes=minutes))  # type: ignore[arg-type]


def _facts(text: str, role: str = "user") -> list[CandidateFact]:
    return extract_explicit([_event(text, role)])[0]


def _triples(text: str) -> set[tuple[str, str, str]]:
    return {(f.subject or "", f.predicate or "", f.object or "") for f in _facts(text)}


C = "Caroline"
POSITIVE = [
    # allergies and diet
    ("I'm allergic to peanuts", {(C, "allergic_to", "peanuts")}),
    ("I am severely allergic to shellfish, so be careful.", {(C, "allergic_to", "shellfish")}),
    ("I have a peanut allergy.", {(C, "allergic_to", "peanut")}),
    ("I've got a severe nut allergy", {(C, "allergic_to", "nut")}),
    ("I'm vegetarian.", {(C, "diet", "vegetarian")}),
    ("I'm a vegan these days", {(C, "diet", "vegan")}),
    ("I'm lactose intolerant", {(C, "condition", "lactose intolerant")}),
    ("I don't eat pork.", {(C, "avoids", "pork")}),
    ("I never drink alcohol", {(C, "avoids", "alcohol")}),
    ("I follow a strict vegan diet", {(C, "diet", "vegan")}),
    ("I'm very sensitive to caffeine", {(C, "intolerant_to", "caffeine")}),
    ("I avoid dairy products due to lactose intolerance", {(C, "avoids", "dairy products")}),
    ("I prefer not to fly", {(C, "avoids", "fly")}),
    # preferences and dislikes
    ("I prefer tea to coffee.", {(C, "prefers", "tea")}),
    ("I prefer window seats over aisle seats", {(C, "prefers", "window seats")}),
    ("I love hiking in the mountains every weekend.", {(C, "likes", "hiking in the mountains")}),
    ("I really enjoy baking bread", {(C, "likes", "baking bread")}),
    ("i like jazz and i hate country music", {(C, "likes", "jazz"), (C, "dislikes", "country music")}),
    ("I'm a huge fan of Taylor Swift!", {(C, "likes", "Taylor Swift")}),
    ("I'm really into bouldering", {(C, "likes", "bouldering")}),
    ("My favourite band is Radiohead.", {(C, "favourite_band", "Radiohead")}),
    ("My favorite food is sushi", {(C, "favourite_food", "sushi")}),
    ("Paddington 2 is my favourite film", {(C, "favourite_film", "Paddington 2")}),
    ("I hate horror movies because they scare me.", {(C, "dislikes", "horror movies")}),
    ("I don't like horror movies", {(C, "dislikes", "horror movies")}),
    ("I don't really like crowds", {(C, "dislikes", "crowds")}),
    ("I can't stand loud music", {(C, "dislikes", "loud music")}),
    ("I'm not a fan of cilantro", {(C, "dislikes", "cilantro")}),
    ("Bullet points work best for me.", {(C, "prefers", "Bullet points")}),
    ("I have a strong aversion to crowded beaches.", {(C, "dislikes", "crowded beaches")}),
    ("I have no interest in superhero movies", {(C, "dislikes", "superhero movies")}),
    ("I'm not interested in reality TV", {(C, "dislikes", "reality TV")}),
    ("I have a strong preference for aisle seats", {(C, "prefers", "aisle seats")}),
    ("I have a severe fear of heights", {(C, "fears", "heights")}),
    ("I strongly dislike stand-up comedy shows", {(C, "dislikes", "stand-up comedy shows")}),
    # identity
    ("My name is Caroline.", {(C, "name", "Caroline")}),
    ("Please call me Caz", {(C, "name", "Caz")}),
    ("I'm 34 years old", {(C, "age", "34")}),
    ("I turned 30 yesterday!", {(C, "age", "30")}),
    # location
    ("I live in Bristol.", {(C, "lives_in", "Bristol")}),
    ("I live in the Netherlands with my partner", {(C, "lives_in", "Netherlands")}),
    ("I moved to Lisbon last month", {(C, "lives_in", "Lisbon")}),
    ("I'm from Toronto originally", {(C, "from", "Toronto")}),
    ("I grew up in Cork", {(C, "from", "Cork")}),
    # occupation
    ("I work as a nurse at St Mary's.", {(C, "works_as", "nurse")}),
    ("I work at Google", {(C, "works_at", "Google")}),
    ("I'm a software engineer", {(C, "occupation", "software engineer")}),
    ("I'm actually a primary school teacher", {(C, "occupation", "primary school teacher")}),
    ("I just started a new job at Acme Corp!", {(C, "works_at", "Acme Corp")}),
    ("I'm retired", {(C, "occupation", "retired")}),
    # relationships
    ("My sister Nadia is coming to visit.", {(C, "sister", "Nadia")}),
    ("My dog is called Biscuit", {(C, "dog", "Biscuit")}),
    ("my best friend, Jo, lives nearby", {(C, "best_friend", "Jo")}),
    ("I have a cat named Luna", {(C, "cat", "Luna")}),
    ("Tom is my husband", {(C, "husband", "Tom")}),
    ("My mum's name is Ruth", {(C, "mother", "Ruth")}),
    # plans
    ("I'm going to visit my parents next week.", {(C, "plans", "visit Caroline's parents")}),
    ("I'm flying to Tokyo next March", {(C, "travelling_to", "Tokyo")}),
    ("I'm planning to run a marathon in October", {(C, "plans", "run a marathon")}),
    ("I'll be in Paris next week", {(C, "plans", "be in Paris")}),
    ("I'm moving to Berlin in June", {(C, "moving_to", "Berlin")}),
    # instructions
    ("Please keep your answers short.", {(C, "verbosity", "keep answers short")}),
    ("Don't use emojis", {(C, "tone", "don't use emojis")}),
    ("Reply in Spanish from now on", {(C, "language", "reply in Spanish")}),
    ("Can you always use bullet points?", {(C, "instruction", "always use bullet points")}),
    ("From now on, please be more formal.", {(C, "formality", "be more formal")}),
    # possessions
    ("I have a Tesla", {(C, "has", "Tesla")}),
    ("I own a small sailing boat", {(C, "has", "small sailing boat")}),
    ("I have two kids", {(C, "has", "two kids")}),
]

NOTHING = [
    "hi!", "thanks so much", "lol", "ok cool", "How are you?", "Nice to meet you!",
    "Do you like jazz?", "Am I allergic to nuts?", "What's your favourite film?", "Do I live in Leeds?",
    "If I were vegan I'd eat more beans.", "If I'm allergic, I'll find out soon.", "Maybe I'm allergic to cats",
    "I'm not allergic to anything.", "I'm not vegetarian", "I don't think I'm allergic to peanuts",
    "I used to live in Paris", "I'd love to visit Japan", "I love it!", "I like how you explained that",
    "I love you guys", "I'm a terrible cook", "I'm a big fan", "I have a question about my order",
    "I have a feeling it will rain", "I'll let you know", "I'll think about it", "Write a short poem about cats",
    "Give me a brief summary of this article", "Please keep an eye on him", "Remind me in September",
    "My dog ate a sock", "He's a two-year-old beagle", "She loves jazz", "Nadia wants to see the tile museum",
    "The vet said to keep an eye on him.", "Call me tomorrow", "Don't call me Sam",
    "Being my own boss and doing something I love is awesome", "I'm grateful to have a job I enjoy every day",
    "Keep it up with German!", "My girlfriend, Toby and I are going camping",
    "I'll always remember our camping trip last year", "I love your turtles so much!", "I love the way it turned out",
    "I've got a funny story.",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVE)
def test_extracts(text: str, expected: set[tuple[str, str, str]]) -> None:
    assert _triples(text) == expected


@pytest.mark.parametrize("text", NOTHING)
def test_extracts_nothing(text: str) -> None:
    assert _facts(text) == []


@pytest.mark.parametrize("text", ["I'm allergic to peanuts", "My sister Nadia lives in Oslo", "I hate horror movies"])
def test_assistant_messages_are_ignored(text: str) -> None:
    assert extract_explicit([_event(text, role="assistant", speaker="assistant")]) == ([], [])


def test_other_speakers_are_read() -> None:
    facts, _ = extract_explicit([_event("I'm vegan", role="other", speaker="Melanie")])
    assert [(f.subject, f.predicate, f.text) for f in facts] == [("Melanie", "diet", "Melanie is vegan.")]


def test_fact_shape() -> None:
    event = _event("I'm allergic to peanuts, properly allergic.")
    (fact,) = extract_explicit([event])[0]
    assert fact.text == "Caroline is allergic to peanuts."
    assert fact.fact_kind == "attribute"
    assert fact.sources == [event.id]
    assert fact.origin == "explicit"
    assert fact.valid_from == event.time
    assert 0.85 <= fact.confidence <= 0.95


def test_negation_never_inverts() -> None:
    facts = _facts("I don't like horror movies")
    assert [f.predicate for f in facts] == ["dislikes"]
    assert "doesn't like" in facts[0].text


@pytest.mark.parametrize(("text", "subject", "predicate", "obj"), [
    ("My sister loves horror films.", "Caroline's sister", "likes", "horror films"),
    ("My dog loves the beach", "Caroline's dog", "likes", "beach"),
    ("My brother is allergic to cats", "Caroline's brother", "allergic_to", "cats"),
    ("My husband works at Oxfam", "Caroline's husband", "works_at", "Oxfam"),
    ("My mom hates flying", "Caroline's mom", "dislikes", "flying"),
])
def test_third_party_statements_are_about_the_third_party(text: str, subject: str, predicate: str, obj: str) -> None:
    facts = _facts(text)
    assert [(f.subject, f.predicate, f.object) for f in facts] == [(subject, predicate, obj)]
    assert all(f.subject != C for f in facts)


def test_third_party_known_by_name_in_the_batch() -> None:
    events = [_event("My sister Nadia is visiting"), _event("My sister loves horror films", minutes=1)]
    facts, entities = extract_explicit(events)
    liking = next(f for f in facts if f.predicate == "likes")
    assert liking.subject == "Nadia"
    assert liking.text == "Caroline's sister Nadia loves horror films."
    assert liking.sources == [events[1].id]
    assert [(e.name, e.entity_type, e.aliases) for e in entities] == [("Nadia", "person", ["Caroline's sister"])]


def test_relationship_entities() -> None:
    event = _event("My dog Biscuit ate half a sock today.")
    facts, entities = extract_explicit([event])
    assert [(f.subject, f.predicate, f.object, f.fact_kind, f.text) for f in facts] == [
        (C, "dog", "Biscuit", "relationship", "Biscuit is Caroline's dog.")]
    assert [(e.name, e.entity_type, e.aliases, e.sources) for e in entities] == [
        ("Biscuit", "pet", ["Caroline's dog"], [event.id])]


def test_places_and_organisations_are_entities() -> None:
    _, entities = extract_explicit([_event("I live in Bristol and I work at Tidewater Games.")])
    assert {(e.name, e.entity_type) for e in entities} == {("Bristol", "place"), ("Tidewater Games", "organization")}


def test_relative_dates_are_resolved() -> None:
    moved = _facts("I moved to Lisbon last month")[0]
    assert moved.text == "Caroline moved to Lisbon in April 2023."
    assert moved.valid_from == datetime(2023, 4, 1, tzinfo=UTC)
    trip = _facts("I'm flying to Tokyo next March")[0]
    assert trip.text == "Caroline is flying to Tokyo in March 2024."
    assert trip.fact_kind == "plan"
    assert trip.valid_from == T0  # the plan holds from when it was made
    birthday = _facts("I turned 30 yesterday!")[0]
    assert birthday.text == "Caroline turned 30 on 7 May 2023."


def test_instruction_text_and_kind() -> None:
    (fact,) = _facts("Don't use emojis.")
    assert fact.fact_kind == "instruction"
    assert fact.text == "Caroline asked the assistant not to use emojis."


def test_multi_sentence_messages_and_clause_boundaries() -> None:
    text = "Hi! I'm a nurse. I love cooking, but I hate washing up. Do you like jazz? I live in Leeds because it's cheap."
    assert _triples(text) == {
        (C, "occupation", "nurse"), (C, "likes", "cooking"), (C, "dislikes", "washing up"), (C, "lives_in", "Leeds"),
    }


def test_duplicates_merge_sources() -> None:
    events = [_event("I'm vegan"), _event("As I said, I'm vegan!", minutes=5)]
    facts, _ = extract_explicit(events)
    assert len(facts) == 1
    assert facts[0].sources == sorted(e.id for e in events)


def test_speaker_name_is_the_subject() -> None:
    facts, _ = extract_explicit([_event("I love jazz", speaker="Sam")])
    assert [(f.subject, f.text) for f in facts] == [("Sam", "Sam loves jazz.")]


def test_precision_on_the_shipped_sample() -> None:
    events = [Event(**json.loads(line)) for line in SAMPLE.read_text().splitlines() if line.strip()]
    facts, entities = extract_explicit(events)
    assistant_ids = {e.id for e in events if e.role == "assistant"}
    triples = {(f.subject, f.predicate, f.object) for f in facts}
    assert triples == {
        ("Sam", "allergic_to", "peanuts"),
        ("Sam", "verbosity", "keep answers short"),
        ("Sam", "prefers", "bullet points"),
        ("Sam", "dog", "Biscuit"),
        ("Sam", "works_as", "UX designer"),
        ("Sam", "works_at", "Tidewater Games"),
        ("Sam", "sister", "Nadia"),
        ("Sam", "lives_in", "Leeds"),
        ("Sam", "lives_in", "Bristol"),
    }
    assert all(set(f.sources).isdisjoint(assistant_ids) for f in facts)
    assert {(e.name, e.entity_type) for e in entities} == {
        ("Biscuit", "pet"), ("Nadia", "person"), ("Tidewater Games", "organization"), ("Leeds", "place"), ("Bristol", "place")}


def test_extractor_is_fast() -> None:
    import time

    events = [_event(text, minutes=i) for i, (text, _) in enumerate(POSITIVE)] + [
        _event(text, minutes=100 + i) for i, text in enumerate(NOTHING)]
    start = time.perf_counter()
    extract_explicit(events)
    assert (time.perf_counter() - start) / len(events) < 0.002


def test_a_one_off_writing_task_is_not_a_standing_instruction() -> None:
    """Found in chat: "write a short message to my friend" became a verbosity preference."""
    task = Event(speaker="Sam", text="Write a short message to my friend about my weekend", time=datetime(2024, 1, 1, tzinfo=UTC))
    standing = Event(speaker="Sam", text="Write shorter messages please", time=datetime(2024, 1, 2, tzinfo=UTC))
    assert extract_explicit([task])[0] == []
    assert [f.text for f in extract_explicit([standing])[0]] == ["Sam asked the assistant to write shorter messages please."]
