"""The isolation invariant, checked after every operation, and the figures it produces.

After each call for user X: nothing the call returned (value, tool answer, reply, error
message) holds another user's canary or a record id only another user has, unless X's own
input named it (an error may quote the id it refuses, and a user may say anything); no other
scope changed (records, compared whole, and index points), and a refused call changed X's
scope neither; every index point of every scope belongs to a record of that scope. Every `full_every` operations (and at teardown) each
user's export is compared with the last one taken for users no call acted on since, and the
stored records of every user are scanned for canaries the user never wrote.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langchain_core.tools import ToolException
from langgraph.store.base import InvalidNamespaceError
from personagraph.memory import PersonagraphError, Scope
from personagraph.memory.models import INDEXED_KINDS
from pydantic import ValidationError

from .isolation_world import (
    USERS,
    ScopeState,
    User,
    World,
    canaries_in,
    id_tokens,
    render,
    tokens,
)

# The errors a refusal may take: personagraph's own, LangGraph's namespace error, a tool's
# answer marked as an error, and pydantic's error for tool arguments a schema forbids.
TYPED_ERRORS = (PersonagraphError, InvalidNamespaceError, ToolException, ValidationError)
Expect = Literal["ok", "refuse", "nothing"]  # nothing: the call may succeed but must return and change nothing
OWNER_OF_CANARY = {u.canary: u.scope for u in USERS}
MAX_FAILURES = 20  # details kept per kind of failure; the figures count them all


@dataclass
class Outcome:
    """What one call gave back: a value, or the error it raised."""

    value: Any = None
    error: BaseException | None = None

    @property
    def refused(self) -> bool:
        if isinstance(self.error, TYPED_ERRORS):
            return True
        return isinstance(self.value, ToolMessage) and self.value.status == "error"


@dataclass
class Auditor:
    """Runs each call, checks the invariant around it, and counts; one per run, reset per example."""

    full_every: int = 50
    figures: Counter[str] = field(default_factory=Counter)
    by_surface: Counter[str] = field(default_factory=Counter)
    by_op: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)  # time in the calls and in the checks
    op_seconds: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    trace: deque[str] = field(default_factory=lambda: deque(maxlen=60))  # the example's last calls, for a failure's repro
    example: str = ""
    owners: dict[str, set[Scope]] = field(default_factory=dict)  # record id -> scopes that ever held it
    planted: dict[Scope, set[str]] = field(default_factory=dict)  # foreign tokens a user's own input carried

    # ------------------------------------------------------------------ per example
    def start(self, world: World, example: str) -> None:
        self.world, self.example = world, example
        self.trace.clear()
        self.owners.clear()
        self.planted = {u.scope: set() for u in USERS}
        self.state = world.snapshot()
        self.index_state = self._index_keys()
        self.exports = {u.scope: self._export(u.scope) for u in USERS}
        self.touched: set[Scope] = set()
        self.since_full = 0

    def finish(self) -> None:
        self._full_check()

    # ------------------------------------------------------------------ one operation
    def call(self, surface: str, op: str, user: User, fn: Any, *, inputs: tuple[Any, ...] = (), expect: Expect = "ok") -> Outcome:
        """Run one surface call for `user` and check the invariant around it."""
        self.trace.append(f"{surface}.{op}({user.handle}; {render(inputs)[:300]})")
        outcome = Outcome()
        started = time.perf_counter()
        try:
            outcome.value = fn()
        except TYPED_ERRORS as exc:
            outcome.error = exc
        except Exception as exc:  # noqa: BLE001  # counted: every untyped error is a failure of the suite
            outcome.error = exc
            self.fail("untyped_errors", user, {"error": "".join(traceback.format_exception(exc))[-3000:]})
        checked = time.perf_counter()
        self.seconds["calls"] += checked - started
        self.op_seconds[f"{surface}.{op}"] += checked - started
        self.figures["operations"] += 1
        self.by_surface[surface] += 1
        self.by_op[f"{surface}.{op}"] += 1
        if outcome.refused:
            self.figures["typed_errors"] += 1
        self._after(user, outcome, inputs, expect)
        self.seconds["checks"] += time.perf_counter() - checked
        return outcome

    def _after(self, user: User, outcome: Outcome, inputs: tuple[Any, ...], expect: Expect) -> None:
        before, self.state = self.state, self.world.snapshot()
        index_before, self.index_state = self.index_state, self._index_keys()
        for scope, records in self.state.items():
            for _, rid in records:
                self.owners.setdefault(rid, set()).add(scope)
        self._check_output(user, outcome, inputs, expect)
        self.touched.add(user.scope)
        untouchable = [s for s in self.state if s != user.scope] + ([user.scope] if expect != "ok" else [])
        for scope in untouchable:
            if before.get(scope, {}) != self.state.get(scope, {}):
                self.fail("foreign_writes", user, {"changed_scope": scope.key, "diff": _diff(before.get(scope, {}), self.state[scope])})
            if index_before.get(scope, set()) != self.index_state.get(scope, set()):
                self.fail("foreign_writes", user, {"changed_index_of": scope.key})
        self._check_index()
        self.since_full += 1
        if self.since_full >= self.full_every:
            self._full_check()

    def _check_output(self, user: User, outcome: Outcome, inputs: tuple[Any, ...], expect: Expect) -> None:
        """What came back holds nothing of anyone else's; a hostile call was refused or found nothing."""
        given = tokens(inputs)
        self.planted[user.scope] |= {t for t in given if self._foreign(user.scope, t)}
        shown = render(outcome.error if outcome.value is None and outcome.error is not None else outcome.value)
        leaked = sorted(t for t in canaries_in(shown) | id_tokens(shown) if self._foreign(user.scope, t) and t not in given)
        if leaked:
            self.fail("leaks", user, {"leaked": leaked[:20], "returned": shown[:2000]})
        came_back = outcome.value not in (None, [], {})
        if not outcome.refused and (expect == "refuse" or (expect == "nothing" and came_back)):
            self.fail("unrefused_foreign_calls", user, {"returned": shown[:2000]})

    def _foreign(self, scope: Scope, token: str) -> bool:
        """Does `token` belong to someone else: another user's canary, or an id only others held?"""
        if token in OWNER_OF_CANARY:
            return OWNER_OF_CANARY[token] != scope and token not in self.planted[scope]
        holders = self.owners.get(token)
        return bool(holders) and scope not in holders and token not in self.planted[scope]

    # ------------------------------------------------------------------ index and exports
    def _index_keys(self) -> dict[Scope, set[tuple[str, str]]]:
        return {scope: self.world.memory.index.keys(scope) for scope in self.state}

    def _check_index(self) -> None:
        """Every point of a scope is a record of that scope; no point lies outside the known scopes."""
        for scope, keys in self.index_state.items():
            records = self.state.get(scope, {})
            strays = sorted(k for k in keys if k[0] not in INDEXED_KINDS or k not in records)
            if strays:
                self.fail("index_strays", None, {"scope": scope.key, "points": strays[:20]})
        outside = self.world.memory.index.count() - sum(len(keys) for keys in self.index_state.values())
        if outside:
            self.fail("index_strays", None, {"points_outside_known_scopes": outside})

    def _export(self, scope: Scope) -> dict[str, Any]:
        exported = self.world.memory.export(scope)
        exported.pop("exported_at")
        return exported

    def _full_check(self) -> None:
        """Exports of users no call acted on are unchanged; stored records hold no stranger's canary."""
        self.figures["full_checks"] += 1
        for user in USERS:
            exported = self._export(user.scope)
            if user.scope not in self.touched and exported != self.exports[user.scope]:
                self.fail("foreign_writes", None, {"changed_scope": user.scope.key, "seen_by": "export"})
            self.exports[user.scope] = exported
            strangers = sorted(c for c in canaries_in(render(exported["records"])) if self._foreign(user.scope, c))
            if strangers:
                self.fail("stored_foreign", user, {"canaries": strangers})
        self.touched.clear()
        self.since_full = 0

    # ------------------------------------------------------------------ failures
    def fail(self, figure: str, user: User | None, detail: dict[str, Any]) -> None:
        self.figures[figure] += 1
        kept = self.failures.setdefault(figure, [])
        if len(kept) < MAX_FAILURES:
            kept.append({"example": self.example, "user": user.handle if user else None, **detail, "steps": list(self.trace)})


def _diff(before: ScopeState, after: ScopeState) -> dict[str, list[str]]:
    changed = [f"{k}:{i}" for (k, i) in before.keys() & after.keys() if before[(k, i)] != after[(k, i)]]
    return {
        "added": [f"{k}:{i}" for k, i in after.keys() - before.keys()][:20],
        "removed": [f"{k}:{i}" for k, i in before.keys() - after.keys()][:20],
        "changed": changed[:20],
    }
