"""Reflect a user's backlog: unreflected events, thread by thread, in batches of N messages."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from personagraph.memory.api import Memory
from personagraph.memory.errors import ConfigurationError
from personagraph.memory.models import Event
from personagraph.memory.scope import Scope


def pending_batches(memory: Memory, scope: Scope, batch_size: int, thread_id: str | None = None) -> list[list[Event]]:
    """Unreflected events cut into batches that never mix threads; batches in time order, so
    what was said first is reflected first."""
    if batch_size < 1:
        raise ConfigurationError("batch_size must be at least 1")
    events = sorted(memory.unreflected_events(scope, thread_id), key=lambda e: (e.thread_id, e.time, e.id))
    batches: list[list[Event]] = []
    for _, in_thread in groupby(events, key=lambda e: e.thread_id):
        thread = list(in_thread)
        batches += [thread[i:i + batch_size] for i in range(0, len(thread), batch_size)]
    return sorted(batches, key=lambda batch: (batch[0].time, batch[0].id))


def iter_reflect(
    memory: Memory, graph: CompiledStateGraph, scope: Scope, batch_size: int, thread_id: str | None = None,
) -> Iterator[tuple[list[Event], dict[str, Any]]]:
    """Run the graph on each pending batch, yielding the batch and the run's report."""
    for batch in pending_batches(memory, scope, batch_size, thread_id):
        state = graph.invoke(
            {"tenant": scope.tenant, "user_id": scope.user_id, "thread_id": batch[0].thread_id, "event_ids": [e.id for e in batch]},
            {"configurable": {"thread_id": f"reflect/{scope.key}/{batch[0].thread_id}"}},
        )
        yield batch, state.get("report", {})

