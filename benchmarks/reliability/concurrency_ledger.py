"""What concurrent workers were told succeeded, and the checks of the final state against it.

Workers record every acknowledged write here (thread-safe); once they are all done, `audit`
reads the quiescent stores back and counts what is missing (lost updates), what exists twice
(duplicates) and where the index and the records disagree (index mismatches).
"""

from __future__ import annotations

import threading
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from personagraph.memory import Memory, PersonagraphError, Scope
from personagraph.memory.index.base import IndexQuery
from personagraph.memory.models import INDEXED_KINDS, Fact, StoreItem


@dataclass
class Ledger:
    """Acknowledged writes per scope key, and every error the workers met."""

    events: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    facts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    entity_sources: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    shared_texts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    successors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    items: dict[tuple[str, tuple[str, ...], str], dict[str, Any]] = field(default_factory=dict)
    shared_values: dict[tuple[str, tuple[str, ...], str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    feedback: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    operations: int = 0
    typed_errors: Counter[str] = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self, n: int = 1) -> None:
        with self.lock:
            self.operations += n

    def failed(self, exc: BaseException, what: str) -> None:
        """A typed (documented) error is an allowed outcome of a race; anything else is counted."""
        with self.lock:
            self.operations += 1
            if isinstance(exc, PersonagraphError):
                self.typed_errors[type(exc).__name__] += 1
            else:
                tail = "".join(traceback.format_exception(exc)[-3:])
                self.untyped.append(f"{what}: {type(exc).__name__}: {exc}\n{tail}"[:1500])


@dataclass
class Audit:
    lost_updates: int = 0
    duplicates: int = 0
    index_mismatches: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, figure: str, n: int, what: str) -> None:
        if n:
            setattr(self, figure, getattr(self, figure) + n)
            self.problems.append(f"{figure} +{n}: {what}"[:600])


def index_mismatches(memory: Memory, scope: Scope) -> tuple[int, str]:
    """Records that search should see vs the scope's index points, and active facts in the
    records vs those the index still serves as active (a status left behind is a mismatch)."""
    expected = {
        (r.kind, r.id) for kind in INDEXED_KINDS for r in memory.records.list(scope, kind)
        if not (isinstance(r, StoreItem) and not r.text)
    }
    present = memory.index.keys(scope)
    active = {f.id for f in memory.facts(scope)}
    probe = memory.embedder.embed_query("fact")
    served = {h.record_id for h in memory.index.search_dense(IndexQuery(scope, limit=1000, kinds=("fact",)), probe)}
    n = len(expected ^ present) + len(active ^ served)
    what = f"{scope.key}: records-only {sorted(expected - present)[:3]} index-only {sorted(present - expected)[:3]} active-status {sorted(active ^ served)[:3]}"
    return n, what


def duplicate_facts(facts: list[Fact]) -> int:
    """Active facts stated twice (same text): each extra copy counts once."""
    return sum(n - 1 for n in Counter(f.text for f in facts if f.status == "active").values() if n > 1)


def audit_writes(memory: Memory, scopes: list[Scope], ledger: Ledger, slot_predicate: str) -> Audit:
    """Check every scope's final state against what the workers were told succeeded."""
    out = Audit()
    for scope in scopes:
        key = scope.key
        events = memory.events(scope)
        ids = [e.id for e in events]
        out.add("duplicates", len(ids) - len(set(ids)), f"{key}: event ids listed twice")
        out.add("lost_updates", len(ledger.events[key] - set(ids)), f"{key}: acknowledged events missing {sorted(ledger.events[key] - set(ids))[:3]}")
        facts = memory.facts(scope, status=None)
        by_id = {f.id: f for f in facts}
        out.add("duplicates", len(facts) - len(by_id), f"{key}: fact ids listed twice")
        out.add("duplicates", duplicate_facts(facts), f"{key}: the same fact active twice")
        missing = ledger.facts[key] - by_id.keys()
        out.add("lost_updates", len(missing), f"{key}: acknowledged facts missing {sorted(missing)[:3]}")
        # A contended slot superseded concurrently must end with one active fact, not a fork.
        slot = [f for f in facts if f.predicate == slot_predicate and f.status == "active"]
        out.add("duplicates", max(0, len(slot) - 1), f"{key}: {len(slot)} active facts in the superseded slot {[f.text for f in slot]}")
        lost_succ = [s for s in ledger.successors[key] if s not in by_id]
        out.add("lost_updates", len(lost_succ), f"{key}: acknowledged successor facts missing {lost_succ[:3]}")
        shared = by_id.get("fct_shared")
        if ledger.shared_texts[key] and (shared is None or shared.text not in ledger.shared_texts[key]):
            out.add("lost_updates", 1, f"{key}: the shared fact reads {shared.text if shared else None!r}, which no acknowledged update wrote")
        for (skey, entity_id), sources in ledger.entity_sources.items():
            if skey != key:
                continue
            entity = memory.records.get(scope, "entity", entity_id)
            have = set(entity.sources) if entity else set()  # type: ignore[attr-defined]
            out.add("lost_updates", len(sources - have), f"{key}: entity {entity_id} lost the provenance {sorted(sources - have)[:3]} of acknowledged facts")
        feedback = {f.id for f in memory.feedback(scope)}
        out.add("lost_updates", len(ledger.feedback[key] - feedback), f"{key}: acknowledged feedback missing")
        items = memory.items(scope)
        by_key = Counter((tuple(i.namespace), i.key) for i in items)
        out.add("duplicates", sum(n - 1 for n in by_key.values() if n > 1), f"{key}: one store key held by several items")
        values = {(tuple(i.namespace), i.key): i.value for i in items}
        for (skey, ns, k), value in ledger.items.items():
            if skey == key and values.get((ns, k)) != value:
                out.add("lost_updates", 1, f"{key}: acknowledged store put {ns}/{k} reads {values.get((ns, k))!r}")
        for (skey, ns, k), acked in ledger.shared_values.items():
            if skey == key and values.get((ns, k)) not in acked:
                out.add("lost_updates", 1, f"{key}: shared store key {ns}/{k} reads {values.get((ns, k))!r}, no acknowledged put")
        n, what = index_mismatches(memory, scope)
        out.add("index_mismatches", n, what)
    return out
