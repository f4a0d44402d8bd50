"""The chit-chat gate: pure small talk is skipped, anything that might hold a fact is not."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from personagraph.graphs.reflection.gate import gate_batch, is_chit_chat
from personagraph.memory.models import Event

T0 = datetime(2023, 5, 8, 14, 0, tzinfo=UTC)

CHIT_CHAT = [
    "hi!", "Hello", "hey there", "Hiiii", "Good morning!", "Morning :)", "yo", "¡Hola!",
    "thanks", "Thank you so much!", "thx", "Thanks a lot, that's really helpful", "Cheers!", "Many thanks 🙏",
    "Merci beaucoup", "ok", "OK.", "okay", "k", "Sure!", "Sure thing", "cool", "Nice", "great!", "Perfect.",
    "Got it, thanks", "Yes", "yes please", "no", "Nope", "yep", "Alright then", "Sounds good!",
    "Makes sense.", "Fair enough", "haha", "hahaha", "lol", "LOL", "lmao", "hehe", "😂😂😂", "👍", "❤️",
    ":)", ":D", "xD", "...", "?!", "How are you?", "how are you doing?", "How's it going?", "What's up?",
    "I'm good, and you?", "Not bad, you?", "Pretty good thanks!", "Nice to meet you!",
    "Pleased to meet you too", "Hope you're well", "That's awesome!", "Wow, that sounds great",
    "Oh no, sorry to hear that", "Good luck!", "Congrats!!", "No worries", "You're welcome",
    "Me too!", "Same here", "bye", "Goodbye!", "See you later!", "Talk soon", "Take care!",
    "Good night", "Have a good weekend!", "Have a nice day :)", "gotta go, bye", "Yesss", "coool",
    "Ok thanks, bye!", "Haha yes, exactly", "Aww that's so sweet", "Hmm, interesting", "Oh wow", "ok cool 👍",
]
MEMORABLE = [
    "I'm allergic to peanuts.", "I'm vegetarian", "I don't eat pork", "I love hiking",
    "My sister Nadia is visiting next week", "We moved to Bristol last month", "I work at Google",
    "Just started a new job!", "My dog Biscuit ate a sock today", "I hate horror movies",
    "Please keep your answers short", "Don't use emojis", "Reply in Spanish",
    "I'm flying to Tokyo next March", "I'm 34", "Call me Caz", "My favourite band is Radiohead",
    "Radiohead", "Tokyo!", "Sushi please", "Arrival it is, I've been meaning to watch it for ages.",
    "Big news: I handed in my notice today", "Excited and terrified.", "Made it! First night in the new flat.",
    "He sulked in the car the whole way down the M5", "Two days at Tidewater done.",
    "Yes please, remind me in September.", "Have a good weekend! Remind me about the dentist on Friday.",
    "ok, 3pm works", "Thanks! I'll be in Paris on 12 June", "haha my cat does the same thing",
    "lol I used to live there", "How are you? I just got back from Lisbon", "Nice to meet you, I'm Sam",
    "Good morning! Rainy again here in Leeds.", "Congrats on the promotion at Acme!",
    "我对花生过敏", "Я живу в Москве", "私は猫が好きです", "나는 서울에 살아요", "أنا أحب القهوة",
    "Ich wohne in Berlin", "Je suis végétarien", "Me encanta el fútbol",
    "42", "2019", "Happy birthday to me!", "I'm feeling stressed about exams", "no nuts please",
]


@pytest.mark.parametrize("text", CHIT_CHAT)
def test_chit_chat_is_recognised(text: str) -> None:
    assert is_chit_chat(text)


@pytest.mark.parametrize("text", MEMORABLE)
def test_content_is_never_chit_chat(text: str) -> None:
    assert not is_chit_chat(text)


def _batch(*messages: tuple[str, str]) -> list[Event]:
    return [
        Event(speaker=role if role != "user" else "Sam", role=role, text=text, time=T0 + timedelta(minutes=i))  # type: ignore[arg-type]
        for i, (role, text) in enumerate(messages)
    ]


def test_pure_chit_chat_batch_is_skipped_with_its_kinds() -> None:
    decision = gate_batch(_batch(("user", "hi!"), ("assistant", "Hello! How can I help?"), ("user", "thanks, bye")))
    assert not decision.memorable
    assert decision.memorable_event_ids == []
    assert decision.reason == "chit-chat only: greeting, thanks, farewell"


def test_assistant_messages_alone_never_make_a_batch_memorable() -> None:
    events = _batch(("assistant", "Your flight to Tokyo is on 3 March and you are allergic to peanuts."),
                    ("user", "ok thanks!"))
    decision = gate_batch(events)
    assert not decision.memorable


def test_batch_of_only_assistant_messages() -> None:
    decision = gate_batch(_batch(("assistant", "I moved the meeting to Friday.")))
    assert not decision.memorable
    assert "no user" in decision.reason


def test_empty_batch() -> None:
    assert not gate_batch([]).memorable


def test_memorable_ids_and_count() -> None:
    events = _batch(
        ("user", "hey"), ("user", "I'm allergic to peanuts"), ("assistant", "Noted."), ("user", "lol"),
        ("user", "and I moved to Leeds in May"), ("user", "thanks!"),
    )
    decision = gate_batch(events)
    assert decision.memorable
    assert decision.memorable_event_ids == [events[1].id, events[4].id]
    assert decision.reason == "2 of 5 messages carry content"


def test_other_speakers_count() -> None:
    events = _batch(("other", "My brother lives in Oslo"), ("user", "haha"))
    decision = gate_batch(events)
    assert decision.memorable
    assert decision.memorable_event_ids == [events[0].id]


def test_gate_is_fast() -> None:
    events = _batch(*[("user", text) for text in CHIT_CHAT + MEMORABLE])
    start = time.perf_counter()
    gate_batch(events)
    per_message = (time.perf_counter() - start) / len(events)
    assert per_message < 0.001
