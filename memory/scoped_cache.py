"""A lazily built, per-scope in-process view (graph, timeline) that the facade keeps current."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from .scope import Scope

T = TypeVar("T")


class ScopedCache(Generic[T]):
    """Builds a scope's view on first use; `drop` makes the next use rebuild it from records."""

    def __init__(self, build: Callable[[Scope], T], lock: threading.RLock | None = None) -> None:
        self._build = build
        self._views: dict[Scope, T] = {}
        # Share the writer's lock: a build reading records while a write lands between its
        # reads, and finds the view not yet loaded, would otherwise miss that write for good.
        self._lock = lock or threading.RLock()

    def get(self, scope: Scope) -> T:
        with self._lock:
            if scope not in self._views:
                self._views[scope] = self._build(scope)
            return self._views[scope]

    def drop(self, scope: Scope) -> None:
        with self._lock:
            self._views.pop(scope, None)

    def loaded(self, scope: Scope) -> bool:
        return scope in self._views
