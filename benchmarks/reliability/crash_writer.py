"""The writer the crash trials kill: a forked child that ingests or reflects on the real stack.

It runs what `personagraph ingest` and `personagraph reflect U --model none` run (JSON Lines
read by `read_jsonl_messages`, `add_events` in batches; `pending_batches`/`iter_reflect` over
the reflection graph with the deterministic extractor) and, after each call returns, appends
what it acknowledged to a log (write, flush, fsync), so the parent knows what must survive.

Phase marks in shared memory say where the writer is (embedding, inside the SQLite
transaction, records committed but index not yet updated, clearing the journal entry), so
the parent can aim kills at every phase and report where each one landed. The marks wrap the
stores' methods in the child only; they change no behaviour.
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import RawArray
from pathlib import Path
from typing import Any

from personagraph.graphs.reflection import ReflectionConfig, build_reflection_graph
from personagraph.graphs.reflection.runner import iter_reflect
from personagraph.memory import Embedder, Memory
from personagraph.memory.ingest import iter_batches, read_jsonl_messages

from benchmarks.common import fresh_memory

from .crash_corpus import UserLog

PHASES = ("starting", "working", "embedding", "records", "index", "journal_clear", "done")
STARTING, WORKING, EMBEDDING, RECORDS, INDEX, JOURNAL_CLEAR, DONE = range(len(PHASES))


class Marks:
    """Shared ints: [0] the writer's current phase, [1 + p] how often it entered phase p."""

    def __init__(self) -> None:
        self._a = RawArray("i", 1 + len(PHASES))

    def enter(self, phase: int) -> None:
        self._a[1 + phase] += 1
        self._a[0] = phase

    @property
    def phase(self) -> int:
        return self._a[0]

    def entered(self, phase: int) -> int:
        return self._a[1 + phase]


@dataclass
class WriterJob:
    data_dir: Path
    mode: str  # "ingest", "reflect", or "all" (ingest then reflect, as after-crash recovery runs)
    logs: list[UserLog]
    upto: int  # ingest the first `upto` messages of each user's file
    reflect_batch: int
    ack_path: Path
    error_path: Path
    trial: int
    linger: bool = True  # once done, wait to be killed (a kill then lands after the work)


class AckLog:
    """Append-only JSON lines, each durable (fsync) before the writer moves on."""

    def __init__(self, path: Path, trial: int) -> None:
        torn = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  lives as long as the writer
        if torn:  # a line the last writer died writing: end it, so it stays apart from ours
            self._file.write("\n")
        self._trial = trial

    def write(self, entry: dict[str, Any]) -> None:
        self._file.write(json.dumps({"trial": self._trial, **entry}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def read_acks(path: Path) -> list[dict[str, Any]]:
    """Whole lines only: a line cut short by a kill was never acknowledged."""
    if not path.exists():
        return []
    acks = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        try:
            acks.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the torn line, ended by the next writer
    return acks


def _mark(obj: Any, name: str, marks: Marks, before: int, after: int) -> None:
    original: Callable[..., Any] = getattr(obj, name)

    def marked(*args: Any, **kwargs: Any) -> Any:
        marks.enter(before)
        result = original(*args, **kwargs)
        marks.enter(after)
        return result

    setattr(obj, name, marked)


def instrument(memory: Memory, marks: Marks) -> None:
    """Mark the write path of memory/api.py: embed → records + journal → index → clear journal."""
    _mark(memory.embedder, "embed_documents", marks, EMBEDDING, WORKING)
    _mark(memory.records, "write", marks, RECORDS, INDEX)  # after the commit: index next
    _mark(memory.records, "clear_journal", marks, JOURNAL_CLEAR, WORKING)


def ingest(memory: Memory, job: WriterJob, acks: AckLog) -> None:
    for log in job.logs:
        events = read_jsonl_messages(log.path)[:job.upto]
        for batch in iter_batches(events, log.batch_size):
            stored = memory.add_events(log.scope, batch)
            acks.write({"op": "events", "scope": log.scope.key, "ids": [e.id for e in stored]})


def reflect(memory: Memory, job: WriterJob, acks: AckLog) -> None:
    graph = build_reflection_graph(memory, None, config=ReflectionConfig(use_model=False, model_name="none"))
    for log in job.logs:
        for batch, report in iter_reflect(memory, graph, log.scope, job.reflect_batch):
            if "run_id" not in report:  # nothing was left to reflect in this batch: nothing written
                continue
            run = memory.records.get(log.scope, "reflection", report["run_id"])
            acks.write({
                "op": "reflection", "scope": log.scope.key, "run_id": report["run_id"], "status": report["status"],
                "events": [e.id for e in batch], "facts": list(run.fact_ids) if run else None,
            })


def writer_main(job: WriterJob, embedder: Embedder, marks: Marks) -> None:
    """The child's body: open, write, acknowledge; any error is written down for the parent."""
    try:
        marks.enter(STARTING)
        acks = AckLog(job.ack_path, job.trial)
        memory = fresh_memory(job.data_dir, embedder)
        instrument(memory, marks)
        marks.enter(WORKING)
        if job.mode in ("ingest", "all"):
            ingest(memory, job, acks)
        if job.mode in ("reflect", "all"):
            reflect(memory, job, acks)
        memory.close()
        marks.enter(DONE)
    except BaseException:  # noqa: BLE001  whatever it was, the parent must read it
        job.error_path.write_text(traceback.format_exc(), encoding="utf-8")
        os._exit(3)
    while job.linger:
        signal.pause()
    os._exit(0)
