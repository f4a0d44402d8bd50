"""Crash safety (issue 8, item 2): SIGKILL a writer during ingest and reflection, then prove
that reopening and reconciling leaves no half-written record, no index point without its
record, nothing acknowledged lost and nothing reflected twice.

Trials run in chains of `CHAIN` on one data dir (ingest, reflect, ingest, reflect: crash after
crash, each reopen repairing the last one's damage), a fresh data dir per chain. A chain starts
with an uncrashed seed ingest and ends with an uncrashed run of everything, which must finish
what the killed writers left (nothing left undone, still nothing twice).

Writers are forked from this process after the embedder is loaded, so a trial costs a fork,
not a torch import. Each kill aims at a phase (embedding, the SQLite transaction, records
committed but index not yet updated, clearing the journal entry, reflection's own work) at a
random occurrence of it, or at a plain random delay; where it landed is reported.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personagraph.memory import Embedder, MiniLMEmbedder

from .crash_check import COUNTS, Check, check_after_crash
from .crash_corpus import UserLog, write_corpus
from .crash_writer import (
    DONE,
    EMBEDDING,
    INDEX,
    JOURNAL_CLEAR,
    PHASES,
    RECORDS,
    WORKING,
    Marks,
    WriterJob,
    read_acks,
    writer_main,
)
from .part import PartResult
from .profile import Profile

CHAIN = 10  # trials per data dir
CHUNK = 8  # messages per user that one ingest trial adds (a multiple of every user's batch size)
REFLECT_BATCH = 6  # messages per reflection run
# How often the parent looks at the writer's phase: coarse until the aim is one write away, then
# fine. Sleeping, not spinning: on a busy box a spinning parent is descheduled for whole
# time slices, while a sleeper wakes within ~0.1 ms (a SQLite commit here lasts ~1 ms).
POLL_S, FINE_POLL_S = 0.001, 0.00005
DEADLINE_S = 30.0  # a writer still short of its kill point by then is stuck: killed, and a writer error
FINISH_DEADLINE_S = 300.0  # the same for the uncrashed seed and finishing writers
# Where kills aim; None is a plain random delay (up to RANDOM_DELAY_S) wherever it lands.
TARGETS = {
    "ingest": (EMBEDDING, RECORDS, INDEX, JOURNAL_CLEAR, None),
    "reflect": (WORKING, EMBEDDING, RECORDS, INDEX, JOURNAL_CLEAR, None),
}
RANDOM_DELAY_S = {"ingest": 0.5, "reflect": 1.5}
MUST_BE_ZERO = (
    "orphans_after", "unindexed_after", "journal_left", "half_written", "acknowledged_lost", "duplicates",
    "reopen_failures", "integrity_failures", "left_undone", "writer_errors",
)


@dataclass
class Aim:
    target: int | None  # phase to kill in, None: after `delay`
    nth: int  # kill at the nth entry into the target phase (or later, if that one was missed)
    delay: float

    def describe(self) -> str:
        return f"{PHASES[self.target]} #{self.nth}" if self.target is not None else f"after {self.delay:.3f} s"


@dataclass
class Outcome:
    killed: bool
    landed: str  # the writer's phase when it died
    exitcode: int | None
    seconds: float
    error: str = ""


def _start(job: WriterJob, embedder: Embedder, marks: Marks) -> mp.Process:
    proc = mp.get_context("fork").Process(target=writer_main, args=(job, embedder, marks), daemon=True)
    proc.start()
    return proc


def _kill_when(proc: mp.Process, marks: Marks, aim: Aim) -> tuple[bool, float, str]:
    """Poll the writer's phase; SIGKILL it at the aim, or once it is done, or (reported) at the deadline."""
    started = time.monotonic()
    late = ""
    while proc.is_alive():
        elapsed = time.monotonic() - started
        if aim.target is None:
            hit, wait = elapsed >= aim.delay, min(POLL_S, aim.delay - elapsed)
        else:
            hit = marks.phase == aim.target and marks.entered(aim.target) >= aim.nth
            wait = FINE_POLL_S if marks.entered(aim.target) >= aim.nth - 1 else POLL_S
        if elapsed > DEADLINE_S:
            late = f"the writer was stuck in {PHASES[marks.phase]} for {DEADLINE_S:.0f} s"
        if hit or late or marks.phase == DONE:
            os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
            break
        time.sleep(max(0.0, wait))
    proc.join()
    return proc.exitcode == -signal.SIGKILL, time.monotonic() - started, late


def _write(job: WriterJob, embedder: Embedder, aim: Aim | None) -> Outcome:
    """Run one writer: killed at `aim`, or (None) left to finish on its own."""
    marks = Marks()
    proc = _start(job, embedder, marks)
    started = time.monotonic()
    if aim is None:
        proc.join(FINISH_DEADLINE_S)
        late = "" if proc.exitcode is not None else f"the writer did not finish in {FINISH_DEADLINE_S:.0f} s"
        if late:
            os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
            proc.join()
        killed, seconds = False, time.monotonic() - started
    else:
        killed, seconds, late = _kill_when(proc, marks, aim)
    error = job.error_path.read_text(encoding="utf-8") if job.error_path.exists() else ""
    return Outcome(killed, PHASES[marks.phase], proc.exitcode, seconds, late or error)


@dataclass
class Chain:
    """One data dir and its corpus, written crash after crash."""

    folder: Path
    logs: list[UserLog]
    upto: int = 0  # messages per user the writers have been asked to ingest so far
    stored: set[str] = field(default_factory=set)  # events found after the last writer died
    pending_runs: int = 0  # reflection batches still due then

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def acks(self) -> Path:
        return self.folder / "acks.jsonl"

    def job(self, mode: str, trial: int, linger: bool) -> WriterJob:
        return WriterJob(
            self.data, mode, self.logs, self.upto, REFLECT_BATCH, self.acks,
            self.folder / f"writer-error-{trial}.txt", trial, linger,
        )


class Tally:
    def __init__(self) -> None:
        self.figures: Counter[str] = Counter()
        self.trials: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def kill(self, kind: str, aim: Aim, outcome: Outcome) -> None:
        self.figures["trials"] += 1
        self.figures[f"kills_in_{outcome.landed}"] += outcome.killed
        # A writer that got to the end of its work before its kill point did not die "during" it.
        during = outcome.killed and outcome.landed != PHASES[DONE]
        self.figures[f"kills_during_{'ingest' if kind == 'ingest' else 'reflection'}"] += during
        if aim.target is not None:
            self.figures["kills_aimed_at_a_phase"] += 1
            self.figures["kills_on_aim"] += outcome.killed and outcome.landed == PHASES[aim.target]

    def add(self, chain: Chain, label: dict[str, Any], outcome: Outcome, check: Check) -> None:
        self.figures.update(check.counts)
        if outcome.error or (not outcome.killed and outcome.exitcode != 0):
            self.figures["writer_errors"] += 1
            check.problems.append(f"writer_errors: exit {outcome.exitcode}: {outcome.error[-2000:]}")
        row = {
            **label, "killed": outcome.killed, "landed": outcome.landed, "seconds": round(outcome.seconds, 3),
            **{k: v for k, v in check.counts.items() if v},
        }
        self.trials.append(row)
        if check.problems:
            self.failures.append({**row, "data_dir": str(chain.data), "problems": check.problems[:50]})


def _aim(kind: str, chain: Chain, rng: random.Random, turn: int) -> Aim:
    """The next phase in turn, at an occurrence the writer will reach (from what is left to do)."""
    target = TARGETS[kind][turn % len(TARGETS[kind])]
    if kind == "ingest":
        calls = [batch for log in chain.logs for batch in log.batches(chain.upto)]  # one add_events each
        entries = sum(not set(b) <= chain.stored for b in calls) if target == EMBEDDING else len(calls)
    else:  # one write per run; a run embeds (and so works between embeddings) more than once
        entries = chain.pending_runs * (2 if target in (EMBEDDING, WORKING) else 1)
    return Aim(target, rng.randint(1, max(1, entries)), rng.uniform(0.0, RANDOM_DELAY_S[kind]))


def _step(chain: Chain, mode: str, trial: int, aim: Aim | None, embedder: Embedder) -> tuple[Outcome, Check]:
    """One writer (killed at `aim`, or left to finish), then the reopen and every check."""
    outcome = _write(chain.job(mode, trial, linger=aim is not None), embedder, aim)
    check = check_after_crash(
        chain.data, chain.logs, chain.upto, read_acks(chain.acks), embedder, REFLECT_BATCH, finished=mode == "all",
    )
    chain.stored, chain.pending_runs = check.stored_events, check.pending_runs
    return outcome, check


def _run_chain(
    chain: Chain, kinds: list[str], first: int, rng: random.Random, turns: Counter[str], embedder: Embedder, tally: Tally,
) -> None:
    """Seed ingest, the chain's killed trials crash after crash, then one uncrashed run of everything."""
    chain.upto = CHUNK
    seed = _step(chain, "ingest", -1, None, embedder)
    tally.add(chain, {"trial": None, "chain": chain.folder.name, "kind": "seed", "aim": "none"}, *seed)
    for trial, kind in enumerate(kinds, start=first):
        if kind == "ingest":
            chain.upto += CHUNK
        aim = _aim(kind, chain, rng, turns[kind])
        turns[kind] += 1
        outcome, check = _step(chain, kind, trial, aim, embedder)
        tally.kill(kind, aim, outcome)
        tally.add(chain, {"trial": trial, "chain": chain.folder.name, "kind": kind, "aim": aim.describe()}, outcome, check)
    finish = _step(chain, "all", first + len(kinds), None, embedder)
    tally.figures["reruns_to_completion"] += 1
    tally.add(chain, {"trial": None, "chain": chain.folder.name, "kind": "finish", "aim": "none"}, *finish)


def run(profile: Profile, workdir: Path, embedder: Embedder | None = None) -> PartResult:
    """`profile.crash_trials` killed writers, alternately ingesting and reflecting, in chains."""
    started = time.perf_counter()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the tokenizer's own pool would not survive fork
    embedder = embedder or MiniLMEmbedder()
    embedder.embed_documents(["load the model once, before any writer is forked"])
    rng = random.Random(profile.seed)
    tally = Tally()
    turns: Counter[str] = Counter()
    for first in range(0, profile.crash_trials, CHAIN):
        kinds = ["ingest" if t % 2 == 0 else "reflect" for t in range(first, min(first + CHAIN, profile.crash_trials))]
        folder = Path(workdir) / f"chain-{first // CHAIN:03d}"
        logs = write_corpus(folder / "corpus", CHUNK * (1 + kinds.count("ingest")), rng.randrange(2**31))
        _run_chain(Chain(folder, logs), kinds, first, rng, turns, embedder, tally)
    figures: dict[str, int | float] = {
        "trials": 0, "kills_during_ingest": 0, "kills_during_reflection": 0, "kills_aimed_at_a_phase": 0, "kills_on_aim": 0,
        **{f"kills_in_{p}": 0 for p in PHASES}, **dict.fromkeys(COUNTS, 0), "writer_errors": 0, "reruns_to_completion": 0,
        **tally.figures,
    }
    return PartResult(
        part="crash", figures=figures, must_be_zero=MUST_BE_ZERO, seconds=time.perf_counter() - started,
        details={
            "data_dirs": f"a fresh one per chain of {CHAIN} trials (ingest, reflect, ...), reused crash after crash within it",
            "profile": profile.as_dict(), "trials": tally.trials, "failures": tally.failures,
            "repro": "run(Profile(..., crash_trials=N, seed=S)); kill points are aimed by phase, so timing varies",
        },
    )
