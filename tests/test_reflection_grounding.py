"""Grounding: a candidate fact survives only if the words of its source messages support it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from personagraph.graphs.reflection.explicit import extract_explicit
from personagraph.graphs.reflection.grounding import MIN_OVERLAP, check_grounding
from personagraph.graphs.reflection.schema import CandidateFact, GroundingResult
from personagraph.memory.models import Event

T0 = datetime(2023, 5, 8, 14, 0, tzinfo=UTC)
SAMPLE = Path(__file__).resolve().parents[1] / "personagraph" / "samples" / "demo_conversation.jsonl"


def _check(source: str, fact: str, subject: str | None = None) -> GroundingResult:
    """Grounds `fact` against one message said by its subject (Caroline unless it names another)."""
    speaker = subject if subject in ("Caroline", "Sam") else "Caroline"
    event = Event(speaker=speaker, text=source, time=T0)
    return check_grounding(CandidateFact(text=fact, subject=subject, sources=[event.id]), [event])


SUPPORTED = [
    ("I'm allergic to peanuts", "Caroline is allergic to peanuts", "Caroline"),
    ("I'm allergic to peanuts", "User has a peanut allergy", None),
    ("I can't stand horror movies", "Caroline can't stand horror movies", "Caroline"),
    ("I can't stand horror movies", "User dislikes horror films", None),
    ("I can't stand horror movies", "User dislikes scary films", None),  # half the words paraphrased
    ("I don't eat meat, I'm vegetarian", "User is vegetarian", None),
    ("I don't eat meat, I'm vegetarian", "User does not eat meat", None),
    ("I'm not allergic to anything but I hate cilantro", "User hates cilantro", None),
    ("My dog and I love the beach", "Caroline loves the beach", "Caroline"),
    ("My dog loves the beach", "Caroline's dog loves the beach", "Caroline's dog"),
    ("My dog loves the beach", "Caroline has a dog that loves the beach", "Caroline"),
    ("My sister Nadia hates spiders", "Nadia hates spiders", "Nadia"),
    ("I'm flying to Tokyo next March", "User is planning a trip to Tokyo in March 2024", None),
    ("We moved here two days ago", "Caroline moved on 6 May 2023", "Caroline"),
    ("Loving my new job at the bakery!", "User works at a bakery", None),
    ("I started running marathons last year", "Caroline started running marathons in 2022", "Caroline"),
    ("Please keep your answers short", "User wants short answers", None),
    ("Don't use emojis please", "User asked the assistant not to use emojis", None),
    ("I'm a nurse at St Mary's", "Caroline works as a nurse at St Mary's", "Caroline"),
    ("I have two kids, Leo and Mia", "Caroline has two children named Leo and Mia", "Caroline"),
    ("我对花生过敏", "用户对花生过敏", None),
    ("Can't wait for my trip to Rome!", "Caroline can't wait for a trip to Rome", "Caroline"),
    ("There's nothing like hiking at dawn", "Caroline loves hiking at dawn", "Caroline"),
    ("No, no pets right now.", "Caroline has no pets", "Caroline"),
]

UNSUPPORTED = [
    # the model's known failures (notes: local-models.md, "Structured output")
    ("hi!", "User is a musician who loves jazz", None, "content words"),
    ("hi!", "User is flying to Tokyo next March", None, "content words"),
    ("I can't stand horror movies", "User is a horror fan", None, "polarity"),
    ("I can't stand horror movies", "User loves horror movies", None, "polarity"),
    ("My dog loves the beach", "User loves the beach", None, "dog"),
    ("My dog loves the beach", "Caroline loves the beach", "Caroline", "dog"),
    ("I went to the gym today", "User is vegetarian and works at a bakery", None, "content words"),
    ("Thanks, that's helpful!", "User is allergic to peanuts", None, "content words"),
    # negation and polarity
    ("I'm not allergic to peanuts", "User is allergic to peanuts", None, "polarity"),
    ("I love horror movies", "User doesn't like horror movies", None, "polarity"),
    ("I love horror movies", "User dislikes horror movies", None, "polarity"),
    ("I never drink coffee", "Caroline drinks coffee every morning", "Caroline", "polarity"),
    ("I don't like jazz", "Caroline likes jazz", "Caroline", "polarity"),
    # someone else's words, likings and plans
    ("She loves jazz", "Caroline loves jazz", "Caroline", "she"),
    ("My sister is allergic to cats", "Caroline is allergic to cats", "Caroline", "sister"),
    ("My husband works at Oxfam", "User works at Oxfam", None, "husband"),
    ("Nadia wants to see the tile museum", "Sam wants to see the tile museum", "Sam", "nadia"),
    # embellishment: too little of the fact is in the message
    ("I love jazz", "Caroline loves jazz and plays the saxophone in a band", "Caroline", "content words"),
    ("I moved to Bristol", "Caroline moved to Bristol for a job at the university hospital", "Caroline", "content words"),
    ("Arrival it is", "User's favourite director is Denis Villeneuve", None, "content words"),
]


@pytest.mark.parametrize(("source", "fact", "subject"), SUPPORTED)
def test_supported(source: str, fact: str, subject: str | None) -> None:
    result = _check(source, fact, subject)
    assert result.supported, result.reason
    assert MIN_OVERLAP <= result.score <= 1.0


@pytest.mark.parametrize(("source", "fact", "subject", "why"), UNSUPPORTED)
def test_unsupported(source: str, fact: str, subject: str | None, why: str) -> None:
    result = _check(source, fact, subject)
    assert not result.supported
    assert why in result.reason
    assert 0.0 <= result.score < 1.0 or "polarity" in result.reason


def test_score_is_the_overlap() -> None:
    assert _check("I love jazz", "Caroline loves jazz", "Caroline").score == 1.0
    assert _check("I love jazz", "Caroline loves jazz and plays saxophone", "Caroline").score == pytest.approx(1 / 3, abs=1e-3)


def test_conflicts_score_zero() -> None:
    assert _check("I can't stand horror movies", "User is a horror fan").score == 0.0


def test_no_sources() -> None:
    fact = CandidateFact(text="User likes jazz", sources=["evt_missing"])
    result = check_grounding(fact, [])
    assert not result.supported
    assert result.score == 0.0


def test_only_the_facts_own_sources_count() -> None:
    said = Event(speaker="Caroline", text="I love jazz", time=T0)
    other = Event(speaker="Caroline", text="I'm allergic to peanuts", time=T0 + timedelta(minutes=1))
    fact = CandidateFact(text="Caroline is allergic to peanuts", subject="Caroline", sources=[said.id])
    assert not check_grounding(fact, [said, other]).supported
    fact = CandidateFact(text="Caroline is allergic to peanuts", subject="Caroline", sources=[said.id, other.id])
    assert check_grounding(fact, [said, other]).supported


def test_the_messages_own_date_counts_as_found() -> None:
    assert _check("I ran a marathon", "On 8 May 2023 Caroline ran a marathon", "Caroline").supported


def test_a_few_shot_example_leaking_into_an_unrelated_message_is_rejected() -> None:
    for leaked in ("User is flying to Tokyo next March", "User is vegetarian", "User started a new job at a bakery",
                   "User is a musician who loves jazz"):
        assert not _check("What's the weather like?", leaked).supported


EXPLICIT_MESSAGES = [
    "I'm allergic to peanuts", "I have a severe nut allergy.", "I'm vegetarian, so no meat for me.",
    "I don't eat pork.", "I never drink alcohol", "I prefer tea to coffee.", "I really love hiking in the mountains.",
    "My favourite band is Radiohead.", "Radiohead is my favourite band.", "I hate horror movies because they scare me.",
    "I don't like horror movies.", "I can't stand loud music.", "I'm not a fan of cilantro", "My name is Caroline.",
    "Please call me Caz.", "I'm 34 years old.", "I turned 30 yesterday.", "I live in Bristol.",
    "I moved to Lisbon last month.", "I'm from Toronto originally.", "I work as a nurse at St Mary's.",
    "I work at Google.", "I'm a software engineer.", "I just started a new job at Acme Corp.",
    "My sister Nadia is coming to visit.", "My dog is called Biscuit.", "I have a cat named Luna.",
    "Tom is my husband.", "I'm going to visit my parents next week.", "I'm flying to Tokyo next March.",
    "I'll be in Paris next week.", "Please keep your answers short.", "Don't use emojis.",
    "Reply in Spanish from now on.", "Can you always use bullet points?", "I have a Tesla.", "I own a boat.",
    "My sister loves horror films.", "My dog loves the beach.", "My husband works at Oxfam.",
    "Bullet points work best for me.", "i love jazz and i hate country music", "I'm a big fan of Taylor Swift.",
    "I'm planning to run a marathon in October.", "I'm moving to Berlin in June.", "I'm lactose intolerant.",
    "I follow a strict vegan diet.", "I avoid dairy products due to lactose intolerance.", "I prefer not to fly.",
    "I have a strong aversion to crowded beaches.", "I have a severe fear of heights.",
    "I dislike renting gas-powered vehicles as I prefer environmentally friendly options.",
    "I avoid eating spicy food as I have a sensitive stomach.", "I'm not interested in reality TV.",
]


def test_explicit_extractions_always_pass() -> None:
    events = [Event(speaker="Caroline", text=t, time=T0 + timedelta(minutes=i)) for i, t in enumerate(EXPLICIT_MESSAGES)]
    events += [Event(**json.loads(line)) for line in SAMPLE.read_text().splitlines() if line.strip()]
    by_id = {e.id: e for e in events}
    facts, _ = extract_explicit(events)
    assert len(facts) >= len(EXPLICIT_MESSAGES)
    for fact in facts:
        result = check_grounding(fact, [by_id[s] for s in fact.sources])
        assert result.supported, (fact.text, result.reason)


def test_grounding_is_fast() -> None:
    event = Event(speaker="Caroline", text="I'm allergic to peanuts, properly allergic, I carry an EpiPen. " * 3, time=T0)
    fact = CandidateFact(text="Caroline is allergic to peanuts and carries an EpiPen", subject="Caroline",
                         sources=[event.id])
    start = time.perf_counter()
    for _ in range(100):
        check_grounding(fact, [event])
    assert (time.perf_counter() - start) / 100 < 0.002
