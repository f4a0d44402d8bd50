"""The scale-out configuration runs the same code path: PostgreSQL records + a Qdrant server.

qdrant-client's local mode stands in for the server; PostgreSQL is a real server the tests start.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from personagraph.memory import MiniLMEmbedder
from postgres_server import create_database, postgres_url  # noqa: F401  (fixture)

from personagraph import Event, Fact, Scope, Settings, open_memory

SAM = Scope(tenant="acme", user_id="sam")
ROB = Scope(tenant="acme", user_id="rob")


@pytest.fixture
def scaled_memory(postgres_url: str, embedder: MiniLMEmbedder):  # noqa: F811
    database = f"backends_{uuid.uuid4().hex[:8]}"
    settings = Settings(postgres_url=create_database(postgres_url, database), qdrant_url=":memory:")
    memory = open_memory(settings, embedder=embedder)
    yield memory
    memory.close()


def test_settings_pick_postgres_and_a_qdrant_server(scaled_memory) -> None:
    from langgraph.store.postgres import PostgresStore
    from personagraph.memory.index.server import QdrantServerIndex

    assert isinstance(scaled_memory.records.store, PostgresStore)
    assert isinstance(scaled_memory.index, QdrantServerIndex)


def test_remember_search_and_forget_on_the_scaled_stack(scaled_memory) -> None:
    said = scaled_memory.add_events(SAM, [
        Event(speaker="Sam", text="My cat Pixel hates the vacuum cleaner.", time=datetime(2025, 3, 1, tzinfo=UTC)),
        Event(speaker="Sam", text="I'm flying to Lisbon in October.", time=datetime(2025, 3, 2, tzinfo=UTC)),
    ])
    scaled_memory.add_events(ROB, [Event(speaker="Rob", text="My cat Pixel loves Lisbon.")])
    old = scaled_memory.add_fact(SAM, Fact(text="Sam lives in Leeds", subject="Sam", predicate="lives_in", object="Leeds",
                                          valid_from=datetime(2020, 1, 1, tzinfo=UTC), sources=[said[0].id]))
    scaled_memory.supersede_fact(SAM, old.id, Fact(text="Sam lives in York", subject="Sam", predicate="lives_in",
                                                  object="York", valid_from=datetime(2025, 1, 1, tzinfo=UTC)))

    trip = scaled_memory.search(SAM, "where is Sam flying in October?", k=3)
    assert said[1].id in [item.id for item in trip.items[:2]]  # beside it: Sam's home, from the graph
    assert all(item.kind != "event" or item.id in {e.id for e in said} for item in trip.items)
    past = scaled_memory.search(SAM, "where does Sam live?", kinds=["fact"], as_of=datetime(2022, 1, 1, tzinfo=UTC))
    assert [item.text for item in past.items] == ["Sam lives in Leeds"]
    assert scaled_memory.profile(SAM).location.value == "York"

    receipt = scaled_memory.forget_user(SAM)
    assert receipt.complete
    assert receipt.records_deleted["event"] == 2 and receipt.index_points_deleted == 4
    assert scaled_memory.index.count(SAM) == 0 and scaled_memory.records.count(SAM) == 0
    assert [i.text for i in scaled_memory.search(ROB, "Pixel", k=2).items] == ["Rob (" + scaled_memory.events(ROB)[0].time.strftime("%d %B %Y") + "): My cat Pixel loves Lisbon."]
