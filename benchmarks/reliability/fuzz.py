"""Part 7 of the reliability suite, fuzzing: malformed inputs to the public API, the CLI, graph
specs, the bots and from chat models, on the real embedded stack. Typed errors only, nothing lost.

Each surface gets `profile.fuzz_cases` cases from one seeded generator (the seed and the case
number in a crash's details replay it). Before fuzzing, a bystander and the fuzzed user get a
real memory; afterwards the bystander's data must be exactly as it was and the fuzzed user's
seeded records still there and unchanged (`data_lost`), whatever valid inputs wrote besides."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from personagraph.memory import Embedder, MiniLMEmbedder

from benchmarks.common import fresh_memory

from .fuzz_api import fuzz_api
from .fuzz_bots import fuzz_service, fuzz_slack
from .fuzz_cli import fuzz_cli
from .fuzz_common import BYSTANDER, FUZZED, Tally, lost, protected_keys, seed, snapshot
from .fuzz_graphs import fuzz_reflection, fuzz_respond
from .fuzz_spec import fuzz_spec
from .part import PartResult
from .profile import Profile

T = TypeVar("T")


def timed(fuzz: Callable[..., T], *args: Any) -> T:
    """Run one surface's fuzzer and put its duration on its tally."""
    started = time.perf_counter()
    out = fuzz(*args)
    tally = out[0] if isinstance(out, tuple) else out
    tally.seconds = time.perf_counter() - started  # type: ignore[union-attr]
    return out


def run(profile: Profile, workdir: Path, embedder: Embedder | None = None) -> PartResult:
    started = time.perf_counter()
    embedder = embedder or MiniLMEmbedder()
    rng = random.Random(profile.seed)
    n = profile.fuzz_cases
    files = workdir / "files"
    files.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"

    memory = fresh_memory(data, embedder)
    seeded = seed(memory, FUZZED, rng)
    seed(memory, BYSTANDER, rng)
    before = {scope: snapshot(memory, scope) for scope in (BYSTANDER, FUZZED)}
    keep = protected_keys(seeded)
    tallies: list[Tally] = []
    spec_no_line = 0
    statuses: dict[str, int] = {}
    try:
        tallies.append(timed(fuzz_api, memory, seeded["targets"], n, rng))
        spec_tally, spec_no_line = timed(fuzz_spec, memory, files, n, rng)
        tallies.append(spec_tally)
        tallies.append(timed(fuzz_slack, memory, files, n, rng))
        tallies.append(timed(fuzz_service, memory, files, n, rng))
        reflection, statuses = timed(fuzz_reflection, memory, n, rng)
        tallies += [reflection, timed(fuzz_respond, memory, n, rng)]
    finally:
        memory.close()
    tallies.append(timed(fuzz_cli, data, files, n, rng, embedder))  # the CLI opens the data dir itself

    memory = fresh_memory(data, embedder)
    try:
        after = {scope: snapshot(memory, scope) for scope in (BYSTANDER, FUZZED)}
    finally:
        memory.close()
    lost_records = {
        "bystander": lost(before[BYSTANDER], after[BYSTANDER]),
        "fuzzed": lost(before[FUZZED], after[FUZZED], keep),
    }
    figures: dict[str, int | float] = {
        "fuzz_cases": sum(t.cases for t in tallies),
        "untyped_crashes": sum(t.crash_count for t in tallies),
        "half_written": sum(t.half_written for t in tallies),
        "data_lost": sum(len(v) for v in lost_records.values()),
        "spec_errors_without_line": spec_no_line,
    }
    for tally in tallies:
        key = tally.surface.replace(" ", "_")
        figures[f"cases_{key}"] = tally.cases
        figures[f"crashes_{key}"] = tally.crash_count
    return PartResult(
        part="fuzz",
        figures=figures,
        must_be_zero=("untyped_crashes", "half_written", "data_lost", "spec_errors_without_line"),
        seconds=time.perf_counter() - started,
        details={
            "profile": profile.name, "seed": profile.seed, "cases_per_surface": n,
            "surfaces": {t.surface: t.details() for t in tallies},
            "reflection_statuses": statuses,
            "lost_records": lost_records,
            "expected_errors": {
                "memory API": "PersonagraphError subclasses",
                "PersonaStore": "PersonagraphError subclasses, langgraph InvalidNamespaceError",
                "tools": "pydantic ValidationError (arguments), PersonagraphError (no valid user); fixable mistakes as error ToolMessages",
                "CLI": "exit code != 0, no traceback",
                "specs": "SpecError naming the file (and line where the text has lines), within 3 s",
                "slack": "HTTP 2xx/4xx, nothing stored for bad signatures or unusable payloads, no untyped error in listeners",
                "chat service": "PersonagraphError subclasses",
                "reflection": "a report (failed/deferred/skipped on garbage), integrity kept",
                "respond": "an answer or a PersonagraphError, no event lost",
            },
        },
    )
