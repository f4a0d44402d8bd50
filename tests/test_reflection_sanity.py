"""Repairs of model output measured on SmolLM2: misnumbered sources, junk triples, copied summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from personagraph.graphs.reflection.extract import EXAMPLE_SUMMARY
from personagraph.graphs.reflection.sanity import (
    best_source,
    grounded_summary,
    named_in,
    plausible_triple,
    without_bad_triple,
)
from personagraph.graphs.reflection.schema import CandidateEntity, CandidateFact
from personagraph.memory import Event

T0 = datetime(2025, 3, 4, 9, tzinfo=UTC)
BATCH = [
    Event(speaker="Sam", text="My dog Biscuit ate half a sock today. He's a two-year-old beagle.", time=T0),
    Event(speaker="assistant", role="assistant", text="Watch for vomiting or tiredness and call the vet.", time=T0 + timedelta(seconds=30)),
    Event(speaker="Sam", text="Random question: what's a good film for a quiet Friday night?", time=T0 + timedelta(minutes=5)),
]


def model_fact(text: str, source: int, **triple: str) -> CandidateFact:
    return CandidateFact(text=text, sources=[BATCH[source].id], origin="llm", **triple)


def test_a_right_fact_with_the_wrong_message_number_moves_to_the_message_that_says_it() -> None:
    fixed, verdict = best_source(model_fact("Biscuit ate half a sock", source=1), BATCH)
    assert verdict.supported and fixed.sources == [BATCH[0].id]


def test_a_fact_no_message_supports_stays_rejected() -> None:
    fixed, verdict = best_source(model_fact("Sam is allergic to shellfish", source=2), BATCH)
    assert not verdict.supported and fixed.sources == [BATCH[2].id]


def test_the_assistant_words_never_ground_a_model_fact() -> None:
    _, verdict = best_source(model_fact("Sam should call the vet", source=1), BATCH)
    assert not verdict.supported


def test_looping_text_is_rejected() -> None:
    _, verdict = best_source(model_fact("Biscuit ate half a sock, ate half a sock, ate half a sock", source=0), BATCH)
    assert not verdict.supported and "repeats" in verdict.reason
    assert grounded_summary("Biscuit ate a sock. Biscuit ate a sock. Biscuit ate a sock.", BATCH, EXAMPLE_SUMMARY) == ""


def test_rule_based_facts_are_never_moved() -> None:
    explicit = CandidateFact(text="Biscuit ate half a sock", sources=[BATCH[2].id], origin="explicit")
    fixed, verdict = best_source(explicit, BATCH)
    assert fixed.sources == [BATCH[2].id] and not verdict.supported


def test_triples_need_their_ends_in_the_source_and_a_short_predicate() -> None:
    good = model_fact("Sam has a beagle called Biscuit", 0, subject="Sam", predicate="has_dog", object="Biscuit")
    assert plausible_triple(good, [BATCH[0]])
    long_predicate = good.model_copy(update={"predicate": "eating_half_a_sock"})
    invented_object = good.model_copy(update={"object": "a cat"})
    same_ends = good.model_copy(update={"object": "Sam"})
    for bad in (long_predicate, invented_object, same_ends):
        assert not plausible_triple(bad, [BATCH[0]])
        stripped = without_bad_triple(bad, [BATCH[0]])
        assert (stripped.subject, stripped.predicate, stripped.object, stripped.text) == (None, None, None, bad.text)


def test_summaries_copied_from_the_example_or_unsupported_are_dropped() -> None:
    assert grounded_summary(EXAMPLE_SUMMARY, BATCH, EXAMPLE_SUMMARY) == ""
    assert grounded_summary("Santra is a beautiful place in Lisbon.", BATCH, EXAMPLE_SUMMARY) == ""
    kept = "Sam's beagle Biscuit ate half a sock; Sam asked for a film for Friday night."
    assert grounded_summary(kept, BATCH, EXAMPLE_SUMMARY) == kept


def test_entities_the_messages_never_name_are_dropped() -> None:
    entities = [CandidateEntity(name="Biscuit", entity_type="pet"), CandidateEntity(name="Dana", entity_type="person"),
                CandidateEntity(name="the dog", aliases=["beagle"])]
    assert [e.name for e in named_in(entities, BATCH)] == ["Biscuit", "the dog"]


def test_a_fact_about_one_speaker_cannot_rest_on_the_other_speakers_words() -> None:
    chat = [
        Event(speaker="Melanie", role="other", text="I love pottery, the creative process is amazing.", time=T0),
        Event(speaker="Caroline", role="other", text="That sounds lovely! I went to a support group yesterday.", time=T0 + timedelta(minutes=1)),
    ]
    wrong = CandidateFact(text="Caroline is a big fan of pottery", subject="Caroline", sources=[chat[0].id], origin="llm")
    fixed, verdict = best_source(wrong, chat)
    assert not verdict.supported and "about Caroline but said by Melanie" in verdict.reason
    right = CandidateFact(text="Melanie loves pottery", sources=[chat[1].id], origin="llm")  # misnumbered
    fixed, verdict = best_source(right, chat)
    assert verdict.supported and fixed.sources == [chat[0].id]
