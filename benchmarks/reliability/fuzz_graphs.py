"""Fuzzing what chat models send back into the graphs: a garbage model drives the reflection
graph and the respond graph on the real memory.

Reflection must end with a report (never an exception), as failed, deferred or skipped when the
model said nothing usable, with nothing half-written: no event lost, every fact resting on
events that exist, every relation between entities that exist, and nothing the index lacks or
holds in excess (`reconcile` repairs nothing). Respond must return an answer or raise a
`PersonagraphError`, losing no event."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from personagraph.graphs.reflection import build_reflection_graph
from personagraph.graphs.respond.graph import build_respond_graph
from personagraph.memory import Memory, Scope
from personagraph.memory.errors import PersonagraphError

from .fuzz_common import FUZZED, T0, Tally
from .fuzz_models import GarbageModel

MEMORABLE = (
    "My sister Jo moved to Leeds and I live in Lisbon now.",
    "I'm allergic to peanuts and I work as a nurse at the city hospital.",
    "I started learning the cello; my teacher is called Marta.",
)
USABLE_STATUSES = {"failed", "deferred", "skipped"}  # what a run on garbage may end as


def integrity_problems(memory: Memory, scope: Scope, events_before: set[str]) -> list[str]:
    """What a half-finished write would leave: lost events, dangling sources and edges, index drift."""
    events = {r.id for r in memory.records.list(scope, "event")}
    entities = {r.id for r in memory.records.list(scope, "entity")}
    problems = [f"event {e} lost" for e in sorted(events_before - events)]
    for fact in memory.facts(scope, status=None):
        problems += [f"fact {fact.id} rests on missing event {s}" for s in fact.sources if s not in events]
    for rel in memory.records.list(scope, "relation"):
        problems += [f"relation {rel.id} names a missing entity" for end in (rel.subject_id, rel.object_id) if end not in entities]  # type: ignore[attr-defined]
    repaired = memory.reconcile(scope)
    problems += [f"reconcile {name}: {n}" for name, n in repaired.items() if n]
    return problems


def fuzz_reflection(memory: Memory, cases: int, rng: random.Random) -> tuple[Tally, dict[str, int]]:
    """`cases` reflection runs, each over fresh messages, each with its own garbage model."""
    tally = Tally("reflection")
    statuses: dict[str, int] = {}
    for n in range(cases):
        thread = f"reflect{n}"
        said = [{"speaker": "fuzzed", "text": f"{rng.choice(MEMORABLE)} ({n}.{i})", "time": T0 + timedelta(days=n, minutes=i),
                 "thread_id": thread} for i in range(rng.randint(1, 3))]
        events = memory.add_events(FUZZED, said)
        before = {r.id for r in memory.records.list(FUZZED, "event")}
        model = GarbageModel(seed=rng.randrange(2**31))
        state = {"tenant": FUZZED.tenant, "user_id": FUZZED.user_id, "thread_id": thread, "event_ids": [e.id for e in events]}
        try:
            report: dict[str, Any] = build_reflection_graph(memory, model).invoke(state)["report"]
        except Exception as exc:  # noqa: BLE001 - a reflection run never raises on what its model says
            tally.crash(n, "reflection graph", {"model_said": model.replies}, exc)
            continue
        status = str(report.get("status"))
        statuses[status] = statuses.get(status, 0) + 1
        problems = integrity_problems(memory, FUZZED, before)
        if problems:
            tally.half_written += 1
            tally.crash(n, "reflection graph", {"model_said": model.replies, "status": status}, "; ".join(problems[:5]))
        elif status in USABLE_STATUSES:
            tally.refused(f"reflection {status}")
        else:
            tally.ok()  # "done": the run used what it could (the rule-based extractor, or a partly valid reply)
    return tally, statuses


def fuzz_respond(memory: Memory, cases: int, rng: random.Random) -> Tally:
    """`cases` questions answered by a garbage model: an answer or a typed error, no event lost."""
    tally = Tally("respond")
    for n in range(cases):
        model = GarbageModel(seed=rng.randrange(2**31))
        before = {r.id for r in memory.records.list(FUZZED, "event")}
        query = rng.choice(("Where do I live?", "What is my sister's name?", "Write me a haiku about my cello teacher."))
        try:
            out = build_respond_graph(memory, model).invoke(
                {"tenant": FUZZED.tenant, "user_id": FUZZED.user_id, "query": query, "thread_id": f"respond{n}"})
        except PersonagraphError as exc:
            tally.typed_error(exc)
        except Exception as exc:  # noqa: BLE001 - anything untyped is a finding
            tally.crash(n, "respond graph", {"query": query, "model_said": model.replies}, exc)
            continue
        else:
            if not isinstance(out.get("answer"), str):
                tally.crash(n, "respond graph", {"query": query, "model_said": model.replies}, f"no answer: {type(out.get('answer')).__name__}")
                continue
            tally.ok()
        lost_events = before - {r.id for r in memory.records.list(FUZZED, "event")}
        if lost_events:
            tally.half_written += 1
            tally.crashes.append({"case": n, "call": "respond graph", "repro": str(model.replies)[:600], "error": f"events lost: {sorted(lost_events)[:5]}"})
    return tally
