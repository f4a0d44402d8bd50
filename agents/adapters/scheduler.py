"""Retraining in the background: once enough new messages of a user arrived, train their
adapter again off the request path, one training at a time (it uses every core)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from personagraph.memory.models import AdapterKind
from personagraph.memory.scope import Scope

from .registry import AdapterRegistry, TrainOutcome
from .training import TrainConfig

log = logging.getLogger(__name__)
Key = tuple[str, str]


@dataclass
class SchedulerStats:
    scheduled: int = 0
    registered: int = 0
    rejected: int = 0
    errors: int = 0
    last: dict[Key, str] = field(default_factory=dict)  # per user: what the last training did


class RetrainScheduler:
    """Checks `retrain_due` when asked and trains due users on one worker thread."""

    def __init__(
        self,
        registry: AdapterRegistry,
        *,
        kind: AdapterKind = "lora",
        config: TrainConfig | None = None,
        on_trained: Callable[[Scope, TrainOutcome], None] | None = None,
        retry_after_s: float = 3600.0,
    ) -> None:
        self.registry = registry
        self.kind = kind
        self.config = config or TrainConfig(kind=kind)
        self.on_trained = on_trained
        self.retry_after_s = retry_after_s
        self._failed_at: dict[Key, float] = {}  # a failing training is not retried on every request
        self.stats = SchedulerStats()
        self._queue: list[Scope] = []
        self._busy: set[Key] = set()
        self._cond = threading.Condition()
        self._stopped = False
        self._worker = threading.Thread(target=self._loop, name="personagraph-retrain", daemon=True)
        self._worker.start()

    def maybe_schedule(self, scope: Scope) -> bool:
        """Queue the user's training if it is due and not queued or running already."""
        key = (scope.tenant, scope.user_id)
        with self._cond:
            if self._stopped or key in self._busy:
                return False
            if time.monotonic() - self._failed_at.get(key, -math.inf) < self.retry_after_s:
                return False
        try:
            due, _ = self.registry.retrain_due(scope, self.kind)
        except Exception as exc:  # noqa: BLE001 - a user with no messages of their own is simply not due
            log.debug("retrain check for %s skipped: %s", scope.log_name, type(exc).__name__)
            return False
        if not due:
            return False
        with self._cond:
            if self._stopped or key in self._busy:
                return False
            self._busy.add(key)
            self._queue.append(scope)
            self.stats.scheduled += 1
            self._cond.notify_all()
        log.info("adapter training scheduled for %s", scope.log_name)
        return True

    def forget(self, scope: Scope) -> None:
        """Drop what the scheduler keeps on a forgotten user (its last outcome and retry clock)."""
        key = (scope.tenant, scope.user_id)
        with self._cond:
            self.stats.last.pop(key, None)
            self._failed_at.pop(key, None)
            if scope in self._queue:  # queued, not started: it would only fail on the forgotten events
                self._queue.remove(scope)
                self._busy.discard(key)

    def pending(self) -> int:
        with self._cond:
            return len(self._busy)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or training; False if `timeout` ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; with `wait`, finish what is queued and running first."""
        if wait:
            self.wait()
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()
        self._worker.join(timeout=None if wait else 1.0)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopped)
                if self._stopped:
                    return
                scope = self._queue.pop(0)
            key = (scope.tenant, scope.user_id)
            try:
                outcome = self.registry.train(scope, kind=self.kind, config=self.config, progress=False)
                self._failed_at.pop(key, None)
                if outcome.registered:
                    self.stats.registered += 1
                else:
                    self.stats.rejected += 1
                self.stats.last[key] = outcome.record.reason
                if self.on_trained is not None:
                    self.on_trained(scope, outcome)
            except Exception as exc:  # noqa: BLE001 - the failure is counted and logged; the worker goes on
                self.stats.errors += 1
                self.stats.last[key] = f"failed: {exc}"
                self._failed_at[key] = time.monotonic()
                log.error("adapter training for %s failed: %s", scope.log_name, type(exc).__name__)
            finally:
                with self._cond:
                    self._busy.discard(key)
                    self._cond.notify_all()
