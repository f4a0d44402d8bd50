"""Part 3, concurrency: threads and asyncio tasks writing, reflecting and forgetting at once,
on the real embedded stack (SQLite records + Qdrant Edge on disk, opened by the factory as
an application would), then a second process opening the same data dir.

Scenarios, each once on threads (sync API) and once on asyncio tasks (async API), with
`profile.concurrency_workers` workers doing `profile.concurrency_ops` operations each:
  writers_one_user / writers_many_users  (concurrency_writers.py)
  reflection / forget                    (concurrency_races.py)
  cross_process                          (concurrency_xprocess.py)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from personagraph.memory import Embedder, MiniLMEmbedder

from personagraph.factory import open_memory

from .concurrency_races import forget_scenario, reflection_scenario
from .concurrency_writers import writers_scenario
from .concurrency_xprocess import cross_process, embedded_settings
from .part import PartResult
from .profile import Profile

MUST_BE_ZERO = (
    "lost_updates", "duplicates", "untyped_errors", "index_mismatches", "events_reflected_twice",
    "events_unreflected", "forget_survivors", "forget_residue", "cross_process_unclear", "cross_process_corruptions",
)
SUMMED = ("operations", *MUST_BE_ZERO[:-2])


def run(profile: Profile, workdir: Path, embedder: Embedder | None = None) -> PartResult:
    started = time.perf_counter()
    data_dir = Path(workdir) / "data"
    memory = open_memory(embedded_settings(data_dir), embedder or MiniLMEmbedder())
    workers, ops = profile.concurrency_workers, profile.concurrency_ops
    scenarios: dict[str, dict[str, Any]] = {}
    try:
        for mode, use_async in (("threads", False), ("async", True)):
            scenarios[f"writers_one_user/{mode}"] = writers_scenario(memory, f"one_{mode}_", 1, workers, ops, use_async)
            scenarios[f"writers_many_users/{mode}"] = writers_scenario(memory, f"many_{mode}_", max(2, workers // 2), workers, ops, use_async)
            scenarios[f"reflection/{mode}"] = reflection_scenario(memory, workers, ops, use_async)
            scenarios[f"forget/{mode}"] = forget_scenario(memory, workers, ops, use_async)
    except BaseException:
        memory.close()
        raise
    # Second processes try the data dir while `memory` holds it; the check then closes it.
    xp = cross_process(memory, data_dir, attempts=max(2, workers // 2))
    figures: dict[str, int | float] = {name: sum(int(s.get(name, 0)) for s in scenarios.values()) for name in SUMMED}
    figures |= {
        "workers": workers, "ops_per_worker": ops, "scenarios": len(scenarios),
        "reflection_runs": sum(int(s.get("reflection_runs", 0)) for s in scenarios.values()),
        "cross_process_attempts": xp["cross_process_attempts"],
        "cross_process_refusals_clear": xp["cross_process_refusals_clear"],
        "cross_process_unclear": xp["cross_process_attempts"] - xp["cross_process_refusals_clear"],
        "cross_process_corruptions": xp["cross_process_corruptions"],
    }
    return PartResult(
        part="concurrency", figures=figures, must_be_zero=MUST_BE_ZERO, seconds=time.perf_counter() - started,
        details={"profile": profile.as_dict(), "scenarios": scenarios, "cross_process": xp},
    )
