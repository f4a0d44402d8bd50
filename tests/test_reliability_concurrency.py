"""Part 3 of the reliability suite: concurrency. The SMOKE run of the harness, and focused,
deterministic reproductions of each race it measures (a barrier holds the racers at the
point where the interleaving matters, with a timeout, so a fixed product passes instead of
hanging)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from personagraph.graphs.reflection import ReflectionConfig, build_reflection_graph
from personagraph.graphs.reflection.runner import iter_reflect
from personagraph.memory import Event, Fact, Memory, MiniLMEmbedder, Scope
from personagraph.memory.errors import PersonagraphError, StoreInUseError

from benchmarks.reliability.concurrency import MUST_BE_ZERO, run
from benchmarks.reliability.concurrency_xprocess import MUST_SAY, embedded_settings
from benchmarks.reliability.profile import SMOKE
from personagraph.factory import open_memory

ALICE = Scope(user_id="alice")

def _wait(barrier: threading.Barrier) -> None:
    """Wait for the other racer; a fix that serializes the racers breaks the barrier after its
    timeout instead of hanging, and the test then checks the serialized outcome."""
    try:
        barrier.wait(timeout=2)
    except threading.BrokenBarrierError:
        pass


def _then_wait(barrier: threading.Barrier, call: Callable[..., Any]) -> Callable[..., Any]:
    """`call`, then wait for the other racer to have made it too (both read before either writes)."""
    def held(*args: Any, **kwargs: Any) -> Any:
        result = call(*args, **kwargs)
        _wait(barrier)
        return result
    return held


def _wait_then(barrier: threading.Barrier, call: Callable[..., Any]) -> Callable[..., Any]:
    """Wait for the other racer to get here too, then `call` (both prepared before either writes)."""
    def held(*args: Any, **kwargs: Any) -> Any:
        _wait(barrier)
        return call(*args, **kwargs)
    return held


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls on threads at once; each result or the exception it raised."""
    out: list[Any] = [None] * len(calls)

    def one(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001  returned for the test to classify
            out[i] = exc
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# ============================================================================ the harness
def test_smoke_run_does_its_work_and_keeps_its_promises(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    result = run(SMOKE, tmp_path, embedder)
    f = result.figures
    per_scenario = SMOKE.concurrency_workers * SMOKE.concurrency_ops
    assert f["scenarios"] == 8
    for name, scenario in result.details["scenarios"].items():
        assert scenario["operations"] >= per_scenario // 2, name  # reflection: half the workers write
    assert f["operations"] >= 6 * per_scenario
    assert f["reflection_runs"] >= 2
    assert f["cross_process_attempts"] == max(2, SMOKE.concurrency_workers // 2)
    assert f["cross_process_refusals_clear"] == f["cross_process_attempts"]
    assert result.details["cross_process"]["reopen_after_close"]["ok"]
    for name in MUST_BE_ZERO:
        assert f[name] == 0, (name, result.details)
    for name, scenario in result.details["scenarios"].items():
        assert not scenario["problems"] and not scenario["untyped"], (name, scenario)
        if name.startswith("forget/"):
            assert scenario["acknowledged_before_forget"] > 0 and scenario["forget_survivors"] == 0, scenario


# ============================================================================ cross-process
def _open_files_under(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def test_a_second_open_of_a_data_dir_is_refused_at_once_and_touches_nothing(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    settings = embedded_settings(tmp_path / "data")
    first = open_memory(settings, embedder)
    try:
        first.add_event(ALICE, Event(id="evt_1", thread_id="t", speaker="user", text="I keep bees"))
        held = sorted(_open_files_under(settings.data_dir))
        with pytest.raises(StoreInUseError) as caught:
            open_memory(settings, embedder)
        message = str(caught.value)
        assert isinstance(caught.value, PersonagraphError)
        assert str(settings.data_dir) in message and all(s in message for s in MUST_SAY)
        assert sorted(_open_files_under(settings.data_dir)) == held  # the failed open keeps nothing open
        assert [e.id for e in first.events(ALICE)] == ["evt_1"]
        assert first.search(ALICE, "bees").items
    finally:
        first.close()
    again = open_memory(settings, embedder)  # the lock left with the first owner
    try:
        assert [e.id for e in again.events(ALICE)] == ["evt_1"]
    finally:
        again.close()


# ============================================================================ reflection
def test_two_reflection_runs_at_once_reflect_each_event_once(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    memory = open_memory(embedded_settings(tmp_path / "data"), embedder)
    try:
        memory.add_events(ALICE, [
            Event(id=f"evt_{i}", thread_id="t", speaker="user", text=text)
            for i, text in enumerate(["My sister's name is Anna.", "I work at Acme Labs.", "I have a dog called Rex."])
        ])
        graph = build_reflection_graph(memory, None, config=ReflectionConfig(use_model=False))
        memory.apply = _wait_then(threading.Barrier(2), memory.apply)  # type: ignore[method-assign]
        reports = _race(*[lambda: [r for _, r in iter_reflect(memory, graph, ALICE, batch_size=10)]] * 2)
        done = [r for runs in reports for r in runs if r.get("status") == "done"]
        assert len(done) == 1, reports
        assert memory.unreflected_events(ALICE) == []
        texts = [f.text for f in memory.facts(ALICE)]
        assert len(texts) == len(set(texts))
    finally:
        memory.close()


# ============================================================================ races that were bugs (fixed)
def test_concurrent_supersedes_leave_one_active_successor(disk_memory: Memory) -> None:
    old = disk_memory.add_fact(ALICE, Fact(text="I live in Lisbon", subject="user", predicate="lives_in", object="Lisbon"))
    both_read = threading.Barrier(2)
    disk_memory.get_fact = _then_wait(both_read, disk_memory.get_fact)  # type: ignore[method-assign]
    outcomes = _race(*[
        (lambda city=city: disk_memory.supersede_fact(ALICE, old.id, Fact(text=f"I live in {city}", subject="user", predicate="lives_in", object=city)))
        for city in ("Porto", "Braga")
    ])
    assert all(isinstance(o, (Fact, PersonagraphError)) for o in outcomes), outcomes
    active = [f.text for f in disk_memory.facts(ALICE) if f.predicate == "lives_in"]
    assert len(active) == 1, active


def test_concurrent_facts_keep_the_shared_entity_provenance(disk_memory: Memory) -> None:
    both_read = threading.Barrier(2)
    disk_memory._fact_links = _then_wait(both_read, disk_memory._fact_links)  # type: ignore[method-assign]
    _race(*[
        (lambda i=i: disk_memory.add_fact(ALICE, Fact(text=f"I visited Acme on day {i}", subject="user", predicate="visited", object="Acme", sources=[f"evt_{i}"])))
        for i in (1, 2)
    ])
    acme = disk_memory.records.get(ALICE, "entity", disk_memory.entity_id("Acme"))
    assert acme is not None and set(acme.sources) == {"evt_1", "evt_2"}  # type: ignore[attr-defined]


def test_forget_user_is_atomic_with_a_racing_write(disk_memory: Memory) -> None:
    disk_memory.add_event(ALICE, Event(id="evt_old", thread_id="t", speaker="user", text="I keep bees"))
    racer: list[threading.Thread] = []
    delete_scope = disk_memory.index.delete_scope

    def write_then_delete(scope: Scope) -> None:  # forget has listed the records: a write lands now
        thread = threading.Thread(target=disk_memory.add_event, args=(ALICE, Event(id="evt_new", thread_id="t", speaker="user", text="I keep wasps")))
        racer.append(thread)
        thread.start()
        thread.join(timeout=2)  # a forget under the write lock makes the write wait instead
        delete_scope(scope)

    disk_memory.index.delete_scope = write_then_delete  # type: ignore[method-assign]
    receipt = disk_memory.forget_user(ALICE)
    racer[0].join()
    assert receipt.complete, receipt.residue
    assert disk_memory.records.get(ALICE, "event", "evt_old") is None
    events = {("event", e.id) for e in disk_memory.events(ALICE)}
    assert events == disk_memory.index.keys(ALICE)  # what survived (the later write) is searchable


def test_a_search_during_another_users_forget_still_works(disk_memory: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    from personagraph.memory.index import edge

    bob = Scope(user_id="bob")
    disk_memory.add_event(ALICE, Event(id="evt_a", thread_id="t", speaker="user", text="I keep bees"))
    disk_memory.add_event(bob, Event(id="evt_b", thread_id="t", speaker="user", text="I keep wasps"))
    swap, searches = edge.swap_in, []

    def swap_while_alice_searches(*args: Any) -> Any:
        searches.append(threading.Thread(target=lambda: searches.append(_race(lambda: disk_memory.search(ALICE, "bees"))[0])))
        searches[0].start()  # the old shard is closed now, and the index still holds it
        searches[0].join(timeout=2)  # a purge that excludes users of the shard makes the search wait
        return swap(*args)

    monkeypatch.setattr(edge, "swap_in", swap_while_alice_searches)
    disk_memory.forget_user(bob)
    searches[0].join()
    assert not isinstance(searches[1], Exception), searches[1]
    assert any("evt_a" in item.sources for item in searches[1].items)
