"""LLM call budgets: per batch and per user per hour, with counters a caller can read.

Runaway cost is what users of LLM memory layers complain about most; a budget that is hit
defers the batch (its events stay due) rather than dropping it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from personagraph.memory.scope import Scope


@dataclass
class LLMBudget:
    """Thread-safe counters of model calls; `try_spend` says whether one more call may run."""

    per_batch: int = 2  # one extraction and one reconciliation call
    per_user_per_hour: int = 120
    clock: Callable[[], float] = time.monotonic
    _calls: dict[str, deque[float]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    total_calls: int = field(default=0, init=False)
    refused: int = field(default=0, init=False)

    def try_spend(self, scope: Scope, spent_in_batch: int) -> bool:
        with self._lock:
            recent = self._recent(scope)
            if spent_in_batch >= self.per_batch or len(recent) >= self.per_user_per_hour:
                self.refused += 1
                return False
            recent.append(self.clock())
            self.total_calls += 1
            return True

    def used_this_hour(self, scope: Scope) -> int:
        with self._lock:
            return len(self._recent(scope))

    def _recent(self, scope: Scope) -> deque[float]:
        calls = self._calls.setdefault(scope.key, deque())
        horizon = self.clock() - 3600.0
        while calls and calls[0] <= horizon:
            calls.popleft()
        return calls
