"""Background reflection: debounced per conversation thread, off the caller's path.

`submit` stores the messages at once (so a crash loses nothing that was acknowledged) and
schedules a reflection of the thread `after_seconds` later; a newer submit for the same thread
replaces the pending run, which then covers both batches. Runs reflect whatever events of the
thread are still unreflected, so replaying messages already reflected creates nothing.
Runs hold the user's reflection lock (runner.user_lock), so an executor and a `reflect`
command on the same Memory never reflect the same events twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from personagraph.memory.api import Memory
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import Event
from personagraph.memory.scope import Scope

from .runner import reflect_batch

log = logging.getLogger(__name__)
Key = tuple[str, str, str]  # tenant, user, thread


@dataclass
class ExecutorStats:
    submitted: int = 0
    runs: int = 0
    cancelled: int = 0  # pending runs replaced by a newer submit for the same thread
    errors: int = 0
    reports: list[dict[str, Any]] = field(default_factory=list)


class ReflectionExecutor:
    """One worker thread that runs the reflection graph for threads whose debounce expired."""

    def __init__(self, memory: Memory, graph: CompiledStateGraph, *, keep_reports: int = 1000) -> None:
        self.memory = memory
        self.graph = graph
        self.stats = ExecutorStats()
        self._keep = keep_reports
        self._due: dict[Key, float] = {}
        self._running: set[Key] = set()
        self._cond = threading.Condition()
        self._stopped = False
        self._worker = threading.Thread(target=self._loop, name="personagraph-reflection", daemon=True)
        self._worker.start()

    def submit(
        self, scope: Scope, thread_id: str, messages: Iterable[Event | dict[str, Any]] = (), after_seconds: float = 0.0,
    ) -> list[Event]:
        """Store the messages now; reflect the thread once it has been quiet `after_seconds`."""
        given = [m if isinstance(m, Event) else {"thread_id": thread_id, **m} for m in messages]
        threads = {m.thread_id if isinstance(m, Event) else m["thread_id"] for m in given}
        if threads - {thread_id}:
            raise InvalidRecordError(f"messages of threads {sorted(threads - {thread_id})} submitted to thread {thread_id!r}")
        stored = self.memory.add_events(scope, given) if given else []  # validates: a bad message raises, nothing stored
        key = (scope.tenant, scope.user_id, thread_id)
        with self._cond:
            if self._stopped:
                raise RuntimeError("the reflection executor is shut down")
            if key in self._due:
                self.stats.cancelled += 1
            self._due[key] = time.monotonic() + max(0.0, after_seconds)
            self.stats.submitted += 1
            self._cond.notify_all()
        return stored

    async def asubmit(self, scope: Scope, thread_id: str, messages: Iterable[Event | dict[str, Any]] = (), after_seconds: float = 0.0) -> list[Event]:
        return await asyncio.to_thread(self.submit, scope, thread_id, list(messages), after_seconds)

    def pending(self) -> int:
        with self._cond:
            return len(self._due) + len(self._running)

    def flush(self, timeout: float | None = None) -> bool:
        """Run every pending reflection now and wait for them; False if `timeout` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._due = {key: 0.0 for key in self._due}
            self._cond.notify_all()
            while self._due or self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    async def aflush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.flush, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; with `wait`, finish what is pending first."""
        if wait:
            self.flush()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._worker.join(timeout=None if wait else 5.0)

    # ------------------------------------------------------------------ worker
    def _next_due(self) -> Key | None:
        """The thread whose debounce expired first (waits until one does); None once stopped."""
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                ready = [k for k, t in self._due.items() if t <= now and k not in self._running]
                if ready:
                    key = min(ready, key=self._due.__getitem__)
                    del self._due[key]
                    self._running.add(key)
                    return key
                waits = [t - now for k, t in self._due.items() if k not in self._running]
                self._cond.wait(min(waits) if waits else None)
        return None

    def _loop(self) -> None:
        while (key := self._next_due()) is not None:
            tenant, user_id, thread_id = key
            try:
                report = reflect_batch(self.memory, self.graph, Scope(tenant=tenant, user_id=user_id), thread_id)
                with self._cond:
                    self.stats.runs += 1
                    if report:
                        self.stats.reports = [*self.stats.reports, report][-self._keep:]
            except Exception as exc:  # noqa: BLE001 - the events stay unreflected, so the next run retries them
                # The user by a hash and the error by its type: a log must hold nothing a forget cannot reach.
                log.error("reflection of %s failed: %s", Scope(tenant=tenant, user_id=user_id).log_name, type(exc).__name__)
                with self._cond:
                    self.stats.errors += 1
            finally:
                with self._cond:
                    self._running.discard(key)
                    self._cond.notify_all()
