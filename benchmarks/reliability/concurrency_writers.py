"""Scenarios (a) and (b): many writers on one user, and on many users at once.

Each operation is a list of steps (API name, arguments, what to record once acknowledged),
so the same operations run on threads (the sync API) and on asyncio tasks (the async API:
`Memory.a*`, `PersonaStore.abatch`). Operation kinds rotate so that pairs of workers hit
the same shared record at the same moment: the shared fact (update), the slot fact
(concurrent supersede: one winner, the others a typed error), the shared store key (last
write wins), the shared entity (provenance merged from every fact).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import PutOp
from personagraph.memory import Event, Fact, Feedback, Memory, PersonaStore, Scope
from personagraph.memory.models import entity_key

from .concurrency_ledger import Ledger, audit_writes

SLOT = "lives_in"
SHARED_ENTITY = "Shared Co"


@dataclass
class Step:
    api: str  # a key of sync_api / async_api
    args: tuple[Any, ...]
    ack: Callable[[Any], None] = lambda result: None


def seed(memory: Memory, scope: Scope) -> None:
    """The records every worker contends for: a fact to edit and a slot fact to supersede."""
    memory.add_fact(scope, Fact(id="fct_shared", text="The shared note has not been edited yet"))
    memory.add_fact(scope, Fact(id="fct_city_seed", text="I live in Lisbon", subject="user", predicate=SLOT, object="Lisbon"))


def operation(memory: Memory, ledger: Ledger, scope: Scope, w: int, j: int) -> list[Step]:
    """Operation j of worker w; workers 2k and 2k+1 run the same kind at the same time."""
    key, tag = scope.key, f"w{w}_{j}"
    kind = (j + w // 2) % 7
    if kind == 0:  # concurrent supersede of the slot's current fact
        head = next((f for f in memory.facts(scope) if f.predicate == SLOT), None)
        if head is None:
            return []
        new = Fact(id=f"fct_city_{tag}", text=f"I live in City {tag}", subject="user", predicate=SLOT, object=f"City {tag}")
        return [Step("supersede_fact", (scope, head.id, new), lambda r: ledger.successors[key].append(r.id))]
    if kind == 1:  # concurrent edit of one fact: last write wins, and it is one of the acknowledged
        text = f"The shared note was edited by worker {w} in operation {j}"
        return [Step("update_fact", (scope, "fct_shared", {"text": text}), lambda r: ledger.shared_texts[key].append(text))]
    if kind == 2:  # one store key written by everyone, plus a key of the worker's own
        user = scope.user_id
        shared, own = ((user, "prefs"), "theme"), ((user, "notes"), f"note_{tag}")
        shared_value, own_value = {"theme": f"theme {tag}"}, {"text": f"a note written by worker {w}, op {j}"}

        def ack(_: Any) -> None:
            ledger.shared_values[(key, *shared)].append(shared_value)  # type: ignore[index]
            ledger.items[(key, *own)] = own_value  # type: ignore[index]
        return [Step("store_batch", ([PutOp(shared[0], shared[1], shared_value), PutOp(own[0], own[1], own_value)],), ack)]
    if kind == 3:
        event = Event(id=f"evt_{tag}", thread_id=f"th{w % 2}", speaker="user", text=f"Worker {w} says hello in message {j}")
        return [Step("add_event", (scope, event), lambda r: ledger.events[key].add(r.id))]
    if kind == 4:
        batch = [Event(id=f"evt_{tag}_{n}", thread_id=f"th{w % 2}", speaker="user", text=f"Worker {w} batch {j} line {n}") for n in range(2)]
        return [Step("add_events", (scope, batch), lambda r: ledger.events[key].update(e.id for e in r))]
    if kind == 5:  # facts naming one shared entity: its provenance must hold every fact's source
        fact = Fact(id=f"fct_{tag}", text=f"Worker {w} visited {SHARED_ENTITY} on day {j}", subject=f"worker {w}",
                    predicate="visited", object=SHARED_ENTITY, sources=[f"evt_src_{tag}"])

        def ack_fact(r: Fact) -> None:
            ledger.facts[key].add(r.id)
            ledger.entity_sources[(key, entity_key(SHARED_ENTITY))].update(r.sources)
        return [Step("add_fact", (scope, fact), ack_fact)]
    request = Event(id=f"evt_fb_{tag}", thread_id="fb", speaker="user", text=f"Question {j} from worker {w}")
    feedback = Feedback(feedback_kind="thumbs", query=request.text, response="an answer", rating="up", sources=[request.id])
    return [
        Step("add_event", (scope, request), lambda r: ledger.events[key].add(r.id)),
        Step("add_feedback", (scope, feedback), lambda r: ledger.feedback[key].add(r.id)),
    ]


def sync_api(memory: Memory, store: PersonaStore) -> dict[str, Callable[..., Any]]:
    return {
        "supersede_fact": memory.supersede_fact, "update_fact": lambda s, i, ch: memory.update_fact(s, i, **ch),
        "store_batch": store.batch, "add_event": memory.add_event, "add_events": memory.add_events,
        "add_fact": memory.add_fact, "add_feedback": memory.add_feedback,
    }


def async_api(memory: Memory, store: PersonaStore) -> dict[str, Callable[..., Any]]:
    return {
        "supersede_fact": memory.asupersede_fact, "update_fact": lambda s, i, ch: memory.aupdate_fact(s, i, **ch),
        "store_batch": store.abatch, "add_event": memory.aadd_event, "add_events": memory.aadd_events,
        "add_fact": memory.aadd_fact, "add_feedback": lambda s, f: asyncio.to_thread(memory.add_feedback, s, f),
    }


def scope_of(scopes: list[Scope], w: int, j: int) -> Scope:
    """One user: everyone on it. Many users: each worker moves across them, several per user."""
    return scopes[(w + j) % len(scopes)]


def run_threads(memory: Memory, store: PersonaStore, scopes: list[Scope], workers: int, ops: int, ledger: Ledger) -> None:
    api = sync_api(memory, store)
    start = threading.Barrier(workers)

    def worker(w: int) -> None:
        start.wait()
        for j in range(ops):
            steps = operation(memory, ledger, scope_of(scopes, w, j), w, j)
            try:
                for step in steps:
                    step.ack(api[step.api](*step.args))
                ledger.done()
            except Exception as exc:  # noqa: BLE001  every outcome is classified by the ledger
                ledger.failed(exc, f"worker {w} op {j} {[s.api for s in steps]}")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(worker, range(workers)))


async def run_tasks(memory: Memory, store: PersonaStore, scopes: list[Scope], workers: int, ops: int, ledger: Ledger) -> None:
    api = async_api(memory, store)

    async def worker(w: int) -> None:
        for j in range(ops):
            steps = operation(memory, ledger, scope_of(scopes, w, j), w, j)
            try:
                for step in steps:
                    step.ack(await api[step.api](*step.args))
                ledger.done()
            except Exception as exc:  # noqa: BLE001
                ledger.failed(exc, f"task {w} op {j} {[s.api for s in steps]}")

    await asyncio.gather(*(worker(w) for w in range(workers)))


def writers_scenario(memory: Memory, prefix: str, users: int, workers: int, ops: int, use_async: bool) -> dict[str, Any]:
    """Run the writers on `users` users and audit the result; the figures of one scenario."""
    scopes = [Scope(tenant="default", user_id=f"{prefix}{u}") for u in range(users)]
    for scope in scopes:
        seed(memory, scope)
    store = PersonaStore(memory)
    ledger = Ledger()
    if use_async:
        asyncio.run(run_tasks(memory, store, scopes, workers, ops, ledger))
    else:
        run_threads(memory, store, scopes, workers, ops, ledger)
    audit = audit_writes(memory, scopes, ledger, SLOT)
    return {
        "operations": ledger.operations, "lost_updates": audit.lost_updates, "duplicates": audit.duplicates,
        "index_mismatches": audit.index_mismatches, "untyped_errors": len(ledger.untyped),
        "typed_errors": dict(ledger.typed_errors), "supersede_winners": sum(len(v) for v in ledger.successors.values()),
        "problems": audit.problems, "untyped": ledger.untyped,
    }
