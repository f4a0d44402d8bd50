"""What the parent checks after each kill: reopen, count what was repaired, prove nothing broke.

Order matters: the raw stores are read first (journal entries left, index points without
records, records without index points) because opening `Memory` replays the journal; then
`Memory` is built on those same stores (as `fresh_memory` does), then `reconcile` runs per
scope, and the index is diffed again. Every failure is a line in `problems`.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personagraph.graphs.reflection.runner import pending_batches
from personagraph.memory import Embedder, Memory, RecordStore, Scope
from personagraph.memory.api import (
    _indexable,  # the product's own rule for what must be indexed
)
from personagraph.memory.index.edge import EdgeIndex
from personagraph.memory.models import INDEXED_KINDS, RECORD_KINDS, RECORD_TYPES, Record
from personagraph.memory.records import namespace

from .crash_corpus import UserLog

COUNTS = (
    "journal_found", "journal_replays", "journal_left", "orphans_before_repair", "unindexed_before_repair",
    "orphans_before_reconcile", "unindexed_before_reconcile", "reconcile_indexed", "reconcile_orphans_removed",
    "orphans_after", "unindexed_after", "half_written", "acknowledged_lost", "duplicates",
    "reopen_failures", "integrity_failures", "left_undone",
)


@dataclass
class Check:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    stored_events: set[str] = field(default_factory=set)  # what the next writer finds done...
    pending_runs: int = 0  # ...and what reflection still owes (lets the parent aim its next kill)

    def flag(self, figure: str, problem: str) -> None:
        self.counts[figure] += 1
        self.problems.append(f"{figure}: {problem}")


def _index_diff(records: RecordStore, index: EdgeIndex, scopes: list[Scope]) -> tuple[int, int]:
    """(index points without a record, records without an index point) over these scopes and any other."""
    orphans = unindexed = 0
    for scope in scopes:
        keys = {(r.kind, r.id) for kind in INDEXED_KINDS for r in records.list(scope, kind) if _indexable(r)}
        points = index.keys(scope)
        orphans += len(points - keys)
        unindexed += len(keys - points)
    stray = index.count() - sum(index.count(s) for s in scopes)  # points of a scope nobody wrote
    return orphans + stray, unindexed


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def _valid_records(records: RecordStore, scope: Scope, check: Check) -> dict[str, dict[str, Record]]:
    """Every stored item of the scope, validated one by one (a torn write would fail here)."""
    out: dict[str, dict[str, Record]] = {}
    for kind in RECORD_KINDS:
        out[kind] = {}
        for item in records.store.search(namespace(scope, kind), limit=1_000_000):
            try:
                out[kind][item.key] = RECORD_TYPES[kind].model_validate(item.value)
            except ValueError as exc:
                check.flag("half_written", f"{scope.key} {kind} {item.key} does not validate: {exc}")
    return out


def _check_batches(log: UserLog, upto: int, events: dict[str, Record], check: Check) -> None:
    """An `add_events` batch is all-or-nothing."""
    for batch in log.batches(upto):
        present = [eid for eid in batch if eid in events]
        if 0 < len(present) < len(batch):
            check.flag("half_written", f"{log.scope.key} batch {batch} landed in part: {present}")


def _check_changesets(scope: Scope, recs: dict[str, dict[str, Record]], check: Check) -> None:
    """Each reflection's ChangeSet is whole: its run, facts, relations, entities and sources."""
    events, facts, runs = recs["event"], recs["fact"], recs["reflection"]
    entities, relations = recs["entity"], recs["relation"]
    claimed = {fid for run in runs.values() for fid in run.fact_ids}  # type: ignore[attr-defined]
    for run in runs.values():
        if missing := [e for e in run.sources if e not in events]:  # type: ignore[attr-defined]
            check.flag("half_written", f"{scope.key} run {run.id} names missing events {missing}")
        if missing := [f for f in run.fact_ids if f not in facts]:  # type: ignore[attr-defined]
            check.flag("half_written", f"{scope.key} run {run.id} lacks its facts {missing}")
    for fact in facts.values():
        if fact.id not in claimed:
            check.flag("half_written", f"{scope.key} fact {fact.id} landed without its reflection run")
        if missing := [e for e in fact.sources if e not in events]:  # type: ignore[attr-defined]
            check.flag("half_written", f"{scope.key} fact {fact.id} names missing sources {missing}")
        if fact.subject and fact.predicate and fact.object and f"rel_{fact.id}" not in relations:  # type: ignore[attr-defined]
            check.flag("half_written", f"{scope.key} fact {fact.id} lacks its relation")
    for rel in relations.values():
        ends = [rel.subject_id, rel.object_id]  # type: ignore[attr-defined]
        if missing := [e for e in ends if e not in entities]:
            check.flag("half_written", f"{scope.key} relation {rel.id} lacks entities {missing}")
        if rel.fact_id and rel.fact_id not in facts:  # type: ignore[attr-defined]
            check.flag("half_written", f"{scope.key} relation {rel.id} lacks its fact {rel.fact_id}")  # type: ignore[attr-defined]
    for entity in entities.values():
        if missing := [e for e in entity.sources if e not in events]:  # type: ignore[attr-defined]
            check.flag("half_written", f"{scope.key} entity {entity.id} names missing sources {missing}")


def _check_duplicates(scope: Scope, recs: dict[str, dict[str, Record]], check: Check) -> None:
    """No event reflected by two finished runs; no fact written twice."""
    covered = Counter(e for run in recs["reflection"].values() if run.reflected for e in run.sources)  # type: ignore[attr-defined]
    for event_id, n in covered.items():
        for _ in range(n - 1):
            check.flag("duplicates", f"{scope.key} event {event_id} reflected {n} times")
    texts = Counter(f.text.casefold() for f in recs["fact"].values() if f.status == "active")  # type: ignore[attr-defined]
    for text, n in texts.items():
        for _ in range(n - 1):
            check.flag("duplicates", f"{scope.key} active fact {text!r} stored {n} times")


def _check_acks(scope: Scope, recs: dict[str, dict[str, Record]], acks: list[dict[str, Any]], check: Check) -> None:
    for ack in (a for a in acks if a["scope"] == scope.key):
        if ack["op"] == "events":
            for eid in ack["ids"]:
                if eid not in recs["event"]:
                    check.flag("acknowledged_lost", f"{scope.key} event {eid} (trial {ack['trial']})")
            continue
        run = recs["reflection"].get(ack["run_id"])
        if run is None or run.status != ack["status"]:  # type: ignore[attr-defined]
            check.flag("acknowledged_lost", f"{scope.key} reflection run {ack['run_id']} (trial {ack['trial']})")
        for fid in ack["facts"] or []:
            if fid not in recs["fact"]:
                check.flag("acknowledged_lost", f"{scope.key} fact {fid} of run {ack['run_id']}")


def check_after_crash(
    data_dir: Path, logs: list[UserLog], upto: int, acks: list[dict[str, Any]], embedder: Embedder,
    reflect_batch: int, finished: bool = False,
) -> Check:
    """Reopen the data dir the writer died in, repair it, and check every promise.
    `finished`: an uncrashed run of everything came last, so nothing may be left to do."""
    check = Check()
    scopes = [log.scope for log in logs]
    if (verdict := _integrity(data_dir / "records.sqlite")) != "ok":
        check.flag("integrity_failures", f"sqlite integrity_check: {verdict}")
    try:
        records = RecordStore.sqlite(data_dir / "records.sqlite")
    except Exception as exc:  # noqa: BLE001  any failure to reopen is the figure
        check.flag("reopen_failures", f"records: {type(exc).__name__}: {exc}")
        return check
    try:
        index = EdgeIndex(data_dir / "index")
    except Exception as exc:  # noqa: BLE001
        check.flag("reopen_failures", f"index: {type(exc).__name__}: {exc}")
        records.close()
        return check
    check.counts["journal_found"] += len(records.journal())
    orphans, unindexed = _index_diff(records, index, scopes)
    check.counts["orphans_before_repair"] += orphans
    check.counts["unindexed_before_repair"] += unindexed
    try:
        memory = Memory(records, index, embedder)
    except Exception as exc:  # noqa: BLE001
        check.flag("reopen_failures", f"Memory() on the reopened stores: {type(exc).__name__}: {exc}")
        index.close()
        records.close()
        return check
    try:
        check.counts["journal_replays"] += memory.replayed_on_open
        if left := len(records.journal()):
            check.flag("journal_left", f"{left} journal entries still there after open")
        orphans, unindexed = _index_diff(records, index, scopes)
        check.counts["orphans_before_reconcile"] += orphans
        check.counts["unindexed_before_reconcile"] += unindexed
        for scope in scopes:
            repaired = memory.reconcile(scope)
            check.counts["reconcile_indexed"] += repaired["indexed"]
            check.counts["reconcile_orphans_removed"] += repaired["orphans_removed"]
        orphans, unindexed = _index_diff(records, index, scopes)
        for figure, n in (("orphans_after", orphans), ("unindexed_after", unindexed)):
            if n:
                check.counts[figure] += n
                check.problems.append(f"{figure}: {n} after reconcile")
        for log in logs:
            recs = _valid_records(records, log.scope, check)
            _check_batches(log, upto, recs["event"], check)
            _check_changesets(log.scope, recs, check)
            _check_duplicates(log.scope, recs, check)
            _check_acks(log.scope, recs, acks, check)
            check.stored_events |= set(recs["event"])
            check.pending_runs += len(pending_batches(memory, log.scope, reflect_batch))
            if finished:
                missing = len(set(log.event_ids()[:upto]) - set(recs["event"]))
                due = len(memory.unreflected_events(log.scope))
                if missing or due:
                    check.flag("left_undone", f"{log.scope.key}: {missing} events not stored, {due} unreflected")
    finally:
        memory.close()
    return check
