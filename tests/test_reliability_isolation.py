"""Isolation (reliability suite, item 1): the stateful run over all four surfaces, and proof
that its checks fire: a leak, a write to another scope, a stray index point, a refusal that
did not come and an untyped error are each counted, and a store that drops the user from
its namespaces is caught by the run itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from personagraph.memory import Event, Memory, MiniLMEmbedder, RecordNotFoundError
from personagraph.memory.index.base import IndexPoint

from benchmarks.reliability import isolation
from benchmarks.reliability.isolation_audit import Auditor
from benchmarks.reliability.isolation_world import USERS, MemoEmbedder, User, World
from benchmarks.reliability.profile import SMOKE
from personagraph.assistant import Assistant
from personagraph.bridges import ChatService, Speaker
from personagraph.settings import Settings
from tests.scripted_model import ScriptedChatModel

BOB, BOB2 = USERS[0], USERS[1]


def test_smoke_run_touches_every_surface_and_finds_nothing(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    result = isolation.run(SMOKE, tmp_path, embedder)
    figures = result.figures
    assert result.ok, (result.failures, result.details["failures"])
    assert figures["operations"] >= SMOKE.isolation_ops
    surfaces = result.details["operations_by_surface"]
    assert sum(surfaces.values()) == figures["operations"]
    assert set(surfaces) == {"memory", "store", "tools", "chat"} and min(surfaces.values()) >= 30, surfaces
    foreign = sum(n for op, n in result.details["operations_by_op"].items() if "(foreign)" in op)
    assert foreign >= 100 and figures["typed_errors"] >= foreign // 2  # hostile calls ran and were refused
    assert figures["foreign_ids_named"] > 4 * figures["made_up_ids_named"]  # they named real records of others
    assert figures["full_checks"] >= figures["examples"]  # every example ended with a full export check


@pytest.fixture
def audited(embedder: MiniLMEmbedder) -> tuple[World, Auditor]:
    world = World(MemoEmbedder(embedder))
    audit = Auditor(full_every=1000)
    audit.start(world, "focused")
    yield world, audit
    world.close()


def said(user: User, text: str) -> Event:
    return Event(speaker=user.label, text=f"{text} {user.canary}")


def test_a_returned_canary_or_id_of_another_user_is_a_leak(audited: tuple[World, Auditor]) -> None:
    world, audit = audited
    theirs = world.memory.add_event(BOB2.scope, said(BOB2, "secret"))
    audit.call("memory", "seed", BOB2, lambda: None)  # the auditor learns who holds what
    audit.call("memory", "leaky", BOB, lambda: f"bob2 said: {theirs.text}")
    audit.call("memory", "leaky_id", BOB, lambda: {"ids": [theirs.id]})
    assert audit.figures["leaks"] == 2
    # Quoting back what the caller itself sent is no leak (an error message names the id it refuses).
    audit.call("memory", "echo", BOB, lambda: f"no event {theirs.id}", inputs=(theirs.id,))
    assert audit.figures["leaks"] == 2


def test_a_write_to_another_scope_or_by_a_refusal_is_counted(audited: tuple[World, Auditor]) -> None:
    world, audit = audited
    audit.call("memory", "writes_bob2", BOB, lambda: world.memory.add_event(BOB2.scope, said(BOB2, "planted")))
    changed = [f.get("changed_scope") or f.get("changed_index_of") for f in audit.failures["foreign_writes"]]
    assert changed == [BOB2.scope.key, BOB2.scope.key]  # bob2's records and bob2's index points
    audit.call("memory", "refused_but_wrote", BOB, lambda: world.memory.add_event(BOB.scope, said(BOB, "x")), expect="refuse")
    assert audit.figures["foreign_writes"] == 4 and audit.figures["unrefused_foreign_calls"] == 1


def test_refusals_and_untyped_errors_are_told_apart(audited: tuple[World, Auditor]) -> None:
    world, audit = audited
    audit.call("memory", "refused", BOB, lambda: world.memory.forget_event(BOB.scope, "evt_none"), expect="refuse")
    assert audit.figures["typed_errors"] == 1 and audit.figures["unrefused_foreign_calls"] == 0

    def crash() -> None:
        raise RuntimeError("boom")

    audit.call("memory", "crash", BOB, crash)
    assert audit.figures["untyped_errors"] == 1
    with pytest.raises(RecordNotFoundError):
        world.memory.forget_event(BOB.scope, "evt_none")  # the product refuses; the auditor only counted


def test_an_index_point_filed_under_the_wrong_scope_is_a_stray(audited: tuple[World, Auditor]) -> None:
    world, audit = audited
    theirs = world.memory.add_event(BOB2.scope, said(BOB2, "indexed"))
    vector = world.memory.embedder.embed_documents([theirs.text])[0]
    sparse = world.memory.sparse.embed_document(theirs.text)
    audit.call("memory", "misfile", BOB, lambda: world.memory.index.upsert([IndexPoint(BOB.scope, "event", theirs.id, vector, sparse)]))
    assert audit.figures["index_strays"] >= 1


def test_a_stranger_canary_stored_in_a_scope_is_found_by_the_full_check(audited: tuple[World, Auditor]) -> None:
    world, audit = audited
    world.memory.add_event(BOB.scope, Event(speaker="bob", text=f"copied from {BOB2.canary}"))
    audit.finish()
    assert audit.figures["stored_foreign"] == 1


def test_the_run_catches_a_store_that_drops_the_user_from_namespaces(
    tmp_path: Path, embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mutation check: with every user of a tenant sharing one namespace, the run must see it."""
    from personagraph.memory import records

    monkeypatch.setattr(records, "namespace", lambda scope, kind: (records.ROOT, scope.tenant, "shared", kind))
    result = isolation.run(dataclasses.replace(SMOKE, isolation_ops=150), tmp_path, embedder)
    assert result.figures["leaks"] > 0 and result.figures["foreign_writes"] > 0
    assert result.details["failures"]["leaks"][0]["steps"]  # each failure keeps the steps that led to it


def test_a_long_model_answer_keeps_the_exchange(memory: Memory, tmp_path: Path) -> None:
    """Found by the echo model (an echo of an echo doubles each turn): the user's message was lost.
    The answer is kept cut, with a marker; the person still gets all of it."""
    assistant = Assistant(memory, chat_model=ScriptedChatModel(script=["x" * 25_000]), reflection_model="none",
                          settings=Settings(data_dir=tmp_path, adapter_auto_train=False))
    service = ChatService(assistant)
    alice = Speaker("slack", ("T1", "U_ALICE"), "Alice")
    try:
        reply = service.answer(alice, "I live in Porto now", conversation=("C1", "1.0"))
        assert reply.text == "x" * 25_000
        events = memory.events(service.scope(alice))
        assert [e.text for e in events if e.role == "user"] == ["I live in Porto now"]
        kept = next(e.text for e in events if e.role == "assistant")
        assert len(kept) == 19_500 and kept.endswith("[... the rest of this answer was not kept]")
    finally:
        assistant.close()
