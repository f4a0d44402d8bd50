"""Reflect a user's backlog: unreflected events, thread by thread, in batches of N messages.

Reflection of one user is serialized per Memory (`user_lock`): two runs over the same events
would each reflect them (twice the model calls, and the later run would reconcile against a
half-written state). The graph's `load` re-reads what is still unreflected under the lock, so a
batch another run already reflected ends there. Runs of different users stay concurrent.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from itertools import groupby
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from personagraph.memory.api import Memory
from personagraph.memory.errors import ConfigurationError
from personagraph.memory.models import Event
from personagraph.memory.scope import Scope

_locks: weakref.WeakKeyDictionary[Memory, dict[str, threading.Lock]] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def user_lock(memory: Memory, scope: Scope) -> threading.Lock:
    """The lock every reflection run of `scope` on `memory` holds (the runner's and the executor's)."""
    with _locks_guard:
        return _locks.setdefault(memory, {}).setdefault(scope.key, threading.Lock())


def reflect_batch(memory: Memory, graph: CompiledStateGraph, scope: Scope, thread_id: str, event_ids: list[str] | None = None) -> dict[str, Any]:
    """One graph run for one thread of one user, under the user's reflection lock; its report
    (empty when every event it names was reflected meanwhile)."""
    with user_lock(memory, scope):
        state = graph.invoke(
            {"tenant": scope.tenant, "user_id": scope.user_id, "thread_id": thread_id, "event_ids": event_ids or []},
            {"configurable": {"thread_id": f"reflect/{scope.key}/{thread_id}"}},
        )
    return state.get("report", {})


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
        report = reflect_batch(memory, graph, scope, batch[0].thread_id, [e.id for e in batch])
        yield batch, report or {"status": "reflected meanwhile", "events": 0}

