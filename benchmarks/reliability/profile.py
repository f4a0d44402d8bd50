"""How hard each part of the reliability suite pushes: a fast profile for CI, a long one by flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Profile:
    name: str
    isolation_ops: int  # stateful operations over memory API, store, tools and chat service
    crash_trials: int  # SIGKILLed writer processes (ingest and reflection)
    concurrency_workers: int  # threads or async tasks per scenario
    concurrency_ops: int  # operations per worker
    fuzz_cases: int  # malformed inputs per fuzzed surface
    model_attacks: bool = False  # also run the memory-injection attacks through the real SmolLM2
    deletion_users: int = 2  # users given a full footprint, then forgotten and scanned for
    train_adapter: bool = False  # the first of them also trains a real adapter (minutes on CPU)
    seed: int = 20261128

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FAST = Profile("fast", isolation_ops=10_000, crash_trials=100, concurrency_workers=8, concurrency_ops=25, fuzz_cases=300, model_attacks=True,
               deletion_users=5, train_adapter=True)
LONG = Profile("long", isolation_ops=50_000, crash_trials=500, concurrency_workers=16, concurrency_ops=100, fuzz_cases=3_000, model_attacks=True,
               deletion_users=20, train_adapter=True)
# What the default `make test` run uses: the same code, sized to keep the suite quick.
SMOKE = Profile("smoke", isolation_ops=600, crash_trials=6, concurrency_workers=4, concurrency_ops=6, fuzz_cases=40)
PROFILES = {p.name: p for p in (FAST, LONG, SMOKE)}
