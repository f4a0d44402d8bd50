"""Per-thread order of a user's events, for the two retrieval features that need neighbours.

A chat turn often only makes sense with the turn before it ("Good idea! How about this
series?"), so its BM25 text includes that turn; and the turns next to a strong hit are often
part of the same answer, so retrieval gives them a small share of the hit's score.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from datetime import datetime

from .models import Event
from .scope import Scope
from .scoped_cache import ScopedCache

Entry = tuple[datetime, str]


class ScopeTimeline:
    def __init__(self, events: list[Event]) -> None:
        self._threads: dict[str, list[Entry]] = {}
        self._where: dict[str, tuple[str, datetime]] = {}
        self.add(events)

    def add(self, events: list[Event]) -> None:
        for event in events:
            if event.id in self._where:
                continue
            bisect.insort(self._threads.setdefault(event.thread_id, []), (event.time, event.id))
            self._where[event.id] = (event.thread_id, event.time)

    def remove(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            if found := self._where.pop(event_id, None):
                thread, when = found
                self._threads[thread].remove((when, event_id))

    def _neighbour(self, event_id: str, step: int) -> str | None:
        if event_id not in self._where:
            return None
        thread, when = self._where[event_id]
        entries = self._threads[thread]
        pos = bisect.bisect_left(entries, (when, event_id)) + step
        return entries[pos][1] if 0 <= pos < len(entries) else None

    def previous(self, event_id: str) -> str | None:
        return self._neighbour(event_id, -1)

    def next(self, event_id: str) -> str | None:
        return self._neighbour(event_id, 1)


class TimelineCache(ScopedCache[ScopeTimeline]):
    """Per-scope timelines built lazily from event records."""

    def __init__(self, loader: Callable[[Scope], list[Event]], lock: threading.RLock | None = None) -> None:
        super().__init__(lambda scope: ScopeTimeline(loader(scope)), lock)
