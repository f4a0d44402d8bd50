"""Crash safety (issue 8, item 2): SIGKILLed writers on the real embedded stack.

The smoke run kills forked writers during ingest and reflection and checks every promise;
the focused tests kill at exact points (inside the SQLite transaction, between the records'
commit and the index) and show that each detector of the harness does fire on real damage,
so its zeros mean something.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import PutOp
from personagraph.graphs.reflection import ReflectionConfig, build_reflection_graph
from personagraph.graphs.reflection.runner import iter_reflect
from personagraph.memory import Memory, MiniLMEmbedder
from personagraph.memory.index.base import IndexPoint
from personagraph.memory.ingest import read_jsonl_messages
from personagraph.memory.models import Fact

from benchmarks.common import fresh_memory
from benchmarks.reliability.crash import CHUNK, REFLECT_BATCH, run
from benchmarks.reliability.crash_check import check_after_crash
from benchmarks.reliability.crash_corpus import UserLog, write_corpus
from benchmarks.reliability.crash_writer import AckLog, read_acks
from benchmarks.reliability.profile import SMOKE


def test_smoke_run_kills_every_trial_and_keeps_every_promise(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    result = run(SMOKE, tmp_path, embedder)
    f = result.figures
    assert result.ok, (result.failures, result.details["failures"][:3])
    assert f["trials"] == SMOKE.crash_trials
    # Every writer died by SIGKILL: in the middle of its work, or (rarely) once it had done it all.
    assert f["kills_during_ingest"] + f["kills_during_reflection"] + f["kills_in_done"] == SMOKE.crash_trials
    assert f["kills_during_ingest"] >= 1 and f["kills_during_reflection"] >= 1
    assert f["journal_replays"] == f["journal_found"]  # opening replays every unfinished write it finds
    assert f["reruns_to_completion"] >= 1


def test_a_torn_acknowledgement_is_not_one_and_does_not_swallow_the_next(tmp_path: Path) -> None:
    path = tmp_path / "acks.jsonl"
    path.write_text('{"trial": 0, "op": "events", "ids": ["a"]}\n{"trial": 0, "op": "ev')  # killed mid-line
    assert [a["ids"] for a in read_acks(path)] == [["a"]]
    AckLog(path, trial=1).write({"op": "events", "ids": ["b"]})
    assert [a["ids"] for a in read_acks(path)] == [["a"], ["b"]]


# ---------------------------------------------------------------- exact kill points
def _killed_writer(data: Path, log: UserLog, embedder: MiniLMEmbedder, rig: Callable[[Memory], None]) -> int:
    """Fork a writer that adds the first batch of `log` with `rig` applied; return its exit code."""

    def body() -> None:
        memory = fresh_memory(data, embedder)
        rig(memory)
        memory.add_events(log.scope, read_jsonl_messages(log.path)[:log.batch_size])
        os._exit(0)  # not reached when the rig kills

    proc = mp.get_context("fork").Process(target=body)
    proc.start()
    proc.join(60)
    return proc.exitcode


def _die_after(obj: Any, name: str, when: Callable[[list[Any]], bool] = lambda args: True) -> None:
    """Replace obj.name by a call that completes and then, if `when(args)`, SIGKILLs its own process."""
    original = getattr(obj, name)

    def then_die(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(list(args)):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(obj, name, then_die)


def _writes(args: list[Any]) -> bool:
    return any(isinstance(op, PutOp) for op in args[0])


@pytest.fixture
def corpus(tmp_path: Path, embedder: MiniLMEmbedder) -> list[UserLog]:
    embedder.embed_documents(["load before fork"])
    return write_corpus(tmp_path / "corpus", CHUNK, seed=7)


def test_kill_inside_the_sqlite_transaction_lands_nothing(tmp_path: Path, corpus: list[UserLog], embedder: MiniLMEmbedder) -> None:
    data, log = tmp_path / "data", corpus[0]
    # The batch's statements (records and journal entry) ran in the open transaction; COMMIT did not.
    code = _killed_writer(data, log, embedder, lambda m: _die_after(m.records.store, "batch", _writes))
    assert code == -signal.SIGKILL
    check = check_after_crash(data, corpus, log.batch_size, [], embedder, REFLECT_BATCH)
    assert not check.problems, check.problems
    assert check.stored_events == set() and check.counts["journal_found"] == 0


def test_kill_between_records_and_index_is_replayed_on_open(tmp_path: Path, corpus: list[UserLog], embedder: MiniLMEmbedder) -> None:
    data, log = tmp_path / "data", corpus[0]
    code = _killed_writer(data, log, embedder, lambda m: _die_after(m.records, "write"))  # committed, index untouched
    assert code == -signal.SIGKILL
    check = check_after_crash(data, corpus, log.batch_size, [], embedder, REFLECT_BATCH)
    assert not check.problems, check.problems
    assert len(check.stored_events) == log.batch_size  # the whole batch, never part of it
    assert check.counts["journal_found"] == check.counts["journal_replays"] == 1
    assert check.counts["unindexed_before_repair"] == log.batch_size
    assert check.counts["unindexed_before_reconcile"] == check.counts["unindexed_after"] == 0


# ---------------------------------------------------------------- the detectors fire
def _ingested_and_reflected(data: Path, logs: list[UserLog], embedder: MiniLMEmbedder) -> Memory:
    memory = fresh_memory(data, embedder)
    graph = build_reflection_graph(memory, None, config=ReflectionConfig(use_model=False, model_name="none"))
    for log in logs:
        memory.add_events(log.scope, read_jsonl_messages(log.path))
        list(iter_reflect(memory, graph, log.scope, REFLECT_BATCH))
    return memory


def test_an_uncrashed_run_reads_all_zero(tmp_path: Path, corpus: list[UserLog], embedder: MiniLMEmbedder) -> None:
    _ingested_and_reflected(tmp_path / "data", corpus, embedder).close()
    check = check_after_crash(tmp_path / "data", corpus, CHUNK, [], embedder, REFLECT_BATCH, finished=True)
    assert not check.problems, check.problems
    assert check.pending_runs == 0 and len(check.stored_events) == CHUNK * len(corpus)


def test_the_checks_catch_damage_a_crash_could_do(tmp_path: Path, corpus: list[UserLog], embedder: MiniLMEmbedder) -> None:
    memory = _ingested_and_reflected(tmp_path / "data", corpus, embedder)
    scope = corpus[0].scope
    facts = memory.facts(scope)
    assert len(facts) >= 2, "the corpus must give the deterministic extractor facts to find"
    # Half a ChangeSet: a fact gone from the records while its run and index point remain.
    memory.records.write(scope, delete=[("fact", facts[0].id)])
    # Half an add_events batch.
    memory.records.write(scope, delete=[("event", corpus[0].event_ids()[1])])
    # A fact written twice (a rerun of a reflection that had landed).
    memory.add_fact(scope, Fact(text=facts[1].text, sources=facts[1].sources))
    # An index point whose record never landed.
    memory.index.upsert([IndexPoint(scope, "fact", "fct_never_written", embedder.embed_query("x"), memory.sparse.embed_document("x"))])
    memory.close()
    acks = tmp_path / "acks.jsonl"
    acks.write_text(json.dumps({"trial": 0, "op": "events", "scope": scope.key, "ids": ["acme-ana-9999"]}) + "\n{\"cut sho")
    check = check_after_crash(tmp_path / "data", corpus, CHUNK, read_acks(acks), embedder, REFLECT_BATCH)
    c = check.counts
    assert c["half_written"] >= 3  # run lacks its fact, relation lacks its fact, batch in part, fact without run
    assert c["duplicates"] == 1 and c["acknowledged_lost"] == 1  # the torn second ack line is not an ack
    # Three index points without records: the deleted fact's, the deleted event's, the unwritten one.
    assert c["orphans_before_repair"] == 3 and c["reconcile_orphans_removed"] == 3 and c["orphans_after"] == 0
