"""Scenarios (c) and (d): reflection racing itself and the writers; forget_user racing writes.

(c) Writers keep adding a user's messages while two or more reflection runs (the real graph,
deterministic extractor, no chat model: what `personagraph reflect --model none` runs) work on
the same user, on threads via `iter_reflect`, on asyncio tasks via `ReflectionExecutor.asubmit`
racing `iter_reflect`. Every event must be reflected by exactly one run, none lost, no fact twice.
(d) Writers add messages and facts for a user while `forget_user` runs: what was acknowledged
before forget began must be gone from records and index, and the receipt's residue zero.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from personagraph.graphs.reflection import (
    ReflectionConfig,
    ReflectionExecutor,
    build_reflection_graph,
)
from personagraph.graphs.reflection.runner import iter_reflect
from personagraph.memory import Event, Fact, Memory, Scope

from .concurrency_ledger import Ledger, duplicate_facts, index_mismatches

# Sentences the deterministic extractor turns into facts, so reflection has real work to race on.
SAYINGS = (
    "My sister's name is {name}.", "I work at {name} Labs.", "I moved to {name} last year.",
    "My favourite band is {name}.", "I have a dog called {name}.",
)
NAMES = ("Anna", "Bruno", "Chloe", "Dario", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca")


def _message(w: int, j: int) -> Event:
    text = SAYINGS[(w + j) % len(SAYINGS)].format(name=f"{NAMES[(w * 7 + j) % len(NAMES)]}{w}x{j}")
    return Event(id=f"evt_r{w}_{j}", thread_id=f"th{w % 2}", speaker="user", text=text)


def _reflected_by(memory: Memory, scope: Scope, reports: list[dict[str, Any]]) -> Counter[str]:
    """How many finished runs covered each event (a run's id is stable over its sources)."""
    covered: Counter[str] = Counter()
    for report in reports:
        if report.get("status") in ("done", "skipped"):
            run = memory.records.get(scope, "reflection", report["run_id"])
            covered.update(run.sources if run else [f"<run {report['run_id']} missing>"])  # type: ignore[attr-defined]
    return covered


def reflection_scenario(memory: Memory, workers: int, ops: int, use_async: bool) -> dict[str, Any]:
    scope = Scope(tenant="default", user_id=f"reflector_{'async' if use_async else 'threads'}")
    graph = build_reflection_graph(memory, None, config=ReflectionConfig(use_model=False, model_name="none"))
    writers, reflectors = max(1, workers // 2), max(2, workers // 2)
    ledger, reports, lock = Ledger(), [], threading.Lock()
    writing = threading.Event()
    writing.set()

    def reflect_all() -> int:
        """One pass over the backlog; how many batches it ran the graph on."""
        batches = 0
        for _, report in iter_reflect(memory, graph, scope, batch_size=4):
            batches += 1
            with lock:
                reports.append(report)
        return batches

    def reflector(_: int) -> None:
        while writing.is_set():
            try:
                batches = reflect_all()
                ledger.done(batches)  # an operation is one graph run
                if not batches:
                    time.sleep(0.01)  # nothing due yet: let the writers write
            except Exception as exc:  # noqa: BLE001
                ledger.failed(exc, "iter_reflect")

    if use_async:
        executor = ReflectionExecutor(memory, graph)

        async def writer(w: int) -> None:
            for j in range(ops):
                try:
                    acked = await executor.asubmit(scope, f"th{w % 2}", [_message(w, j)])
                    ledger.events[scope.key].update(e.id for e in acked)
                    ledger.done()
                except Exception as exc:  # noqa: BLE001
                    ledger.failed(exc, f"asubmit {w}/{j}")

        async def main() -> None:
            racing = [asyncio.to_thread(reflector, r) for r in range(reflectors)]
            write = asyncio.gather(*(writer(w) for w in range(writers)))
            together = asyncio.gather(*racing)
            await write
            writing.clear()
            await together
            await executor.aflush()

        asyncio.run(main())
        executor.shutdown()
        reports.extend(executor.stats.reports)
        ledger.done(executor.stats.runs)
        ledger.untyped += [f"executor run failed ({executor.stats.errors})"] if executor.stats.errors else []
    else:
        def writer(w: int) -> None:
            for j in range(ops):
                try:
                    ledger.events[scope.key].add(memory.add_event(scope, _message(w, j)).id)
                    ledger.done()
                except Exception as exc:  # noqa: BLE001
                    ledger.failed(exc, f"add_event {w}/{j}")

        with ThreadPoolExecutor(writers + reflectors) as pool:
            racing = [pool.submit(reflector, r) for r in range(reflectors)]
            for done in [pool.submit(writer, w) for w in range(writers)]:
                done.result()
            writing.clear()
            for done in racing:
                done.result()
    ledger.done(reflect_all())  # the backlog the racing runs left behind (messages added after their last pass)
    stored = {e.id for e in memory.events(scope)}
    covered = _reflected_by(memory, scope, reports)
    facts = memory.facts(scope, status=None)
    mismatched, what = index_mismatches(memory, scope)
    return {
        "operations": ledger.operations, "reflection_runs": len(reports),
        "lost_updates": len(ledger.events[scope.key] - stored),
        "events_reflected_twice": sum(1 for n in covered.values() if n > 1),
        "events_unreflected": len(stored - covered.keys()), "due_after": len(memory.unreflected_events(scope)),
        "duplicates": duplicate_facts(facts) + len(facts) - len({f.id for f in facts}),
        "index_mismatches": mismatched, "untyped_errors": len(ledger.untyped),
        "typed_errors": dict(ledger.typed_errors), "facts": len(facts),
        "problems": [f"index_mismatches +{mismatched}: {what}"] * bool(mismatched), "untyped": ledger.untyped,
    }


def _held(memory: Memory, scope: Scope) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    return {(r.kind, r.id) for kind in ("event", "fact") for r in memory.records.list(scope, kind)}, memory.index.keys(scope)


def forget_scenario(memory: Memory, workers: int, ops: int, use_async: bool) -> dict[str, Any]:
    """Writers on one user; forget_user starts once about half their writes are acknowledged.
    A reader searches another user (a bystander) all along: forgetting one user must neither
    break nor change anyone else's memory."""
    mode = "async" if use_async else "threads"
    scope, bystander = Scope(tenant="default", user_id=f"forgotten_{mode}"), Scope(tenant="default", user_id=f"bystander_{mode}")
    memory.add_events(bystander, [Event(id=f"evt_b{i}", thread_id="t", speaker="user", text=f"I grow tomatoes, note {i}") for i in range(3)])
    kept = _held(memory, bystander)
    ledger, acked, lock, writing = Ledger(), [], threading.Lock(), threading.Event()
    writing.set()

    def write(w: int, j: int) -> tuple[str, str]:
        if j % 3 == 2:
            return "fact", memory.add_fact(scope, Fact(id=f"fct_f{w}_{j}", text=f"Worker {w} likes colour {j}")).id
        return "event", memory.add_event(scope, Event(id=f"evt_f{w}_{j}", thread_id="t", speaker="user", text=f"Worker {w} line {j}")).id

    def note(key: tuple[str, str]) -> None:
        with lock:
            acked.append((time.perf_counter(), key))
        ledger.done()

    half = workers * ops // 2
    if use_async:
        async def writer(w: int) -> None:
            for j in range(ops):
                try:
                    note(await asyncio.to_thread(write, w, j))
                except Exception as exc:  # noqa: BLE001
                    ledger.failed(exc, f"write {w}/{j}")

        async def reader() -> None:
            while writing.is_set():
                try:
                    await memory.asearch(bystander, "tomatoes", k=3)
                    ledger.done()
                except Exception as exc:  # noqa: BLE001
                    ledger.failed(exc, "bystander search")
                await asyncio.sleep(0.01)

        async def main() -> tuple[float, Any]:
            reading = asyncio.create_task(reader())
            tasks = [asyncio.create_task(writer(w)) for w in range(workers)]
            while len(acked) < half:
                await asyncio.sleep(0.005)
            began = time.perf_counter()
            receipt = await memory.aforget_user(scope)
            await asyncio.gather(*tasks)
            writing.clear()
            await reading
            return began, receipt

        began, receipt = asyncio.run(main())
    else:
        def writer(w: int) -> None:
            for j in range(ops):
                try:
                    note(write(w, j))
                except Exception as exc:  # noqa: BLE001
                    ledger.failed(exc, f"write {w}/{j}")

        def reader() -> None:
            while writing.is_set():
                try:
                    memory.search(bystander, "tomatoes", k=3)
                    ledger.done()
                except Exception as exc:  # noqa: BLE001
                    ledger.failed(exc, "bystander search")
                time.sleep(0.01)

        with ThreadPoolExecutor(workers + 1) as pool:
            reading = pool.submit(reader)
            running = [pool.submit(writer, w) for w in range(workers)]
            while len(acked) < half:
                time.sleep(0.005)
            began = time.perf_counter()
            receipt = memory.forget_user(scope)
            for done in running:
                done.result()
            writing.clear()
            reading.result()
    before = {key for stamp, key in acked if stamp < began}
    index_keys = memory.index.keys(scope)
    survivors = [k for k in before if memory.records.get(scope, *k) is not None or k in index_keys]  # type: ignore[arg-type]
    now_held = _held(memory, bystander)
    bystander_lost = len(kept[0] - now_held[0]) + len(kept[1] - now_held[1])
    mismatched, what = index_mismatches(memory, scope)
    return {
        "operations": ledger.operations + 1, "acknowledged_before_forget": len(before),
        "forget_survivors": len(survivors), "forget_residue": sum(receipt.residue.values()),
        "residue": receipt.residue, "lost_updates": bystander_lost, "index_mismatches": mismatched,
        "untyped_errors": len(ledger.untyped), "typed_errors": dict(ledger.typed_errors),
        "problems": [f"forget_survivors +{len(survivors)}: {sorted(survivors)[:3]}"] * bool(survivors)
        + [f"lost_updates +{bystander_lost}: the bystander lost records or index points"] * bool(bystander_lost)
        + [f"index_mismatches +{mismatched}: {what}"] * bool(mismatched),
        "untyped": ledger.untyped,
    }
