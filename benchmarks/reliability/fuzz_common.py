"""What every fuzzed surface shares: the tally of outcomes, snapshots of a user's stored data,
and the seeded memories (a bystander's and the fuzzed user's) whose loss the fuzzers look for."""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from personagraph.memory import Memory, Scope
from personagraph.memory.models import RECORD_KINDS, StoreItem

from .fuzz_inputs import short

BYSTANDER = Scope(user_id="bystander")  # never named by a fuzz case: must end exactly as seeded
FUZZED = Scope(user_id="fuzzed")  # the user every case acts for
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MAX_CRASHES_KEPT = 50  # repros kept per surface; the count is always complete

Snapshot = dict[tuple[str, str], str]  # (kind, id) -> the record as JSON, plus ("index", kind:id) -> ""


@dataclass
class Tally:
    """One surface's outcomes. A case ends `typed` (refused with an expected error), `accepted`
    (it was valid after all, or the surface ignores it), or `crash` (anything else)."""

    surface: str
    cases: int = 0
    typed: int = 0
    accepted: int = 0
    crashes: list[dict[str, Any]] = field(default_factory=list)
    crash_count: int = 0
    half_written: int = 0  # a refused case that still changed stored data
    errors_seen: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # set by whoever ran the surface

    def typed_error(self, exc: BaseException) -> None:
        self.refused(type(exc).__name__)

    def refused(self, how: str) -> None:
        """The case was refused the expected way (`how`: the error's type, an exit code...)."""
        self.cases += 1
        self.typed += 1
        self.errors_seen[how] = self.errors_seen.get(how, 0) + 1

    def ok(self) -> None:
        self.cases += 1
        self.accepted += 1

    def crash(self, case: int, what: str, repro: Any, exc: BaseException | str) -> None:
        """An untyped failure: kept with the case number, the call and the error, to replay it."""
        self.cases += 1
        self.crash_count += 1
        if len(self.crashes) < MAX_CRASHES_KEPT:
            error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {str(exc)[:300]}"
            where = "" if isinstance(exc, str) else "".join(traceback.format_tb(exc.__traceback__)[-2:])[-600:]
            self.crashes.append({"case": case, "call": what, "repro": short(repro, 600), "error": error, "where": where})

    def details(self) -> dict[str, Any]:
        return {
            "cases": self.cases, "typed_errors": self.typed, "accepted": self.accepted,
            "untyped_crashes": self.crash_count, "half_written": self.half_written,
            "errors_seen": dict(sorted(self.errors_seen.items())), "crashes": self.crashes,
            "seconds": round(self.seconds, 1),
        }


def snapshot(memory: Memory, scope: Scope) -> Snapshot:
    """Every record of `scope` and every index key, comparable across calls."""
    out: Snapshot = {}
    for kind in RECORD_KINDS:
        for record in memory.records.list(scope, kind):
            out[(kind, record.id)] = record.model_dump_json()
    for kind, rid in memory.index.keys(scope):
        out[("index", f"{kind}:{rid}")] = ""
    return out


def lost(before: Snapshot, after: Snapshot, keep: set[tuple[str, str]] | None = None) -> list[str]:
    """Records of `before` (only those in `keep`, when given) that are gone or changed in `after`."""
    wanted = before.keys() if keep is None else keep & before.keys()
    return sorted(f"{k[0]}:{k[1]}" for k in wanted if after.get(k) != before[k])


def seed(memory: Memory, scope: Scope, rng: random.Random, n: int = 6) -> dict[str, list[str]]:
    """A small, real memory: messages, facts resting on them (with graph edges), store items.
    Returns the ids by role: `protected` records no valid fuzz call may touch, `targets` facts
    the fuzzers may legitimately update, supersede or retract."""
    cities = ["Lisbon", "Porto", "Oslo", "Quito", "Hanoi", "Dakar", "Perth", "Riga"]
    events = memory.add_events(scope, [
        {"speaker": scope.user_id, "text": f"I spent a week in {rng.choice(cities)} and loved the food ({n_})",
         "time": T0 + timedelta(hours=n_), "thread_id": "seeded"}
        for n_ in range(n)
    ])
    facts = [
        memory.add_fact(scope, {
            "text": f"{scope.user_id} visited {city}", "subject": scope.user_id, "predicate": "visited", "object": city,
            "sources": [event.id], "valid_from": event.time,
        })
        for event, city in zip(events, cities, strict=False)
    ]
    targets = [memory.add_fact(scope, {"text": f"{scope.user_id} target fact {i}", "fact_kind": "preference"}) for i in range(3)]
    items = [StoreItem(namespace=[scope.user_id, "notes"], key=f"note{i}", value={"text": f"note {i} of {scope.user_id}"},
                       text=f"note {i} of {scope.user_id}") for i in range(2)]
    memory.put_items(scope, items)
    stored_items = memory.items(scope)
    protected = [("event", e.id) for e in events] + [("fact", f.id) for f in facts] + [("item", i.id) for i in stored_items]
    return {"protected": [f"{k}:{i}" for k, i in protected], "targets": [f.id for f in targets]}


def protected_keys(seeded: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {tuple(key.split(":", 1)) for key in seeded["protected"]}  # type: ignore[misc]
