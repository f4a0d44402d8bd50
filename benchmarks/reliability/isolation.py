"""Isolation: random operations by eight users over the memory API, the LangGraph store, the
memory tools and the chat service, all on one embedded stack; nothing any call returns or
does may touch another user's scope (the invariant: `isolation_audit.py`).

A hypothesis `RuleBasedStateMachine` draws each step: a surface (one rule each:
`isolation_memory.py`, `_store`, `_tools`, `_chat`), an operation on it, a user and the
arguments (the user's own records, or, for hostile operations, another user's ids,
namespaces and names). Each example is a fresh stack: SQLite records and a Qdrant Edge index
on disk, real MiniLM embeddings behind a memo, an echo chat model. Examples run until the
executed operations reach `profile.isolation_ops`. Failures are counted, not raised (the
figures must hold every one), and each keeps the steps that led to it.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.stateful import run_state_machine_as_test
from personagraph.memory import Embedder, MiniLMEmbedder

from .isolation_audit import Auditor
from .isolation_chat import ChatRules
from .isolation_memory import MemoryRules
from .isolation_store import StoreRules
from .isolation_tools import ToolRules
from .isolation_world import USERS, MemoEmbedder
from .part import PartResult
from .profile import Profile

MUST_BE_ZERO = ("leaks", "foreign_writes", "untyped_errors", "unrefused_foreign_calls", "index_strays", "stored_foreign")


class IsolationMachine(MemoryRules, StoreRules, ToolRules, ChatRules):
    """Eight users, four surfaces, one shared stack; the auditor checks every step."""


def _settings(steps: int, examples: int) -> settings:
    return settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
        phases=[Phase.generate], print_blob=False, suppress_health_check=list(HealthCheck),
    )


def run(profile: Profile, workdir: Path, embedder: Embedder | None = None) -> PartResult:
    """Run examples of the machine until `profile.isolation_ops` operations have executed."""
    started = time.perf_counter()
    memo = MemoEmbedder(embedder or MiniLMEmbedder())
    audit = Auditor()
    IsolationMachine.embedder, IsolationMachine.audit, IsolationMachine.workdir = memo, audit, Path(workdir)
    IsolationMachine.examples = itertools.count()
    steps = max(75, min(500, profile.isolation_ops // 60))  # long examples grow state; many examples vary it
    rounds = 0
    while audit.figures["operations"] < profile.isolation_ops:  # hypothesis may stop an example early
        left = profile.isolation_ops - audit.figures["operations"]
        factory = seed(profile.seed + rounds)(lambda: IsolationMachine())
        run_state_machine_as_test(factory, settings=_settings(steps, math.ceil(left / steps)))
        rounds += 1
    figures = {
        "operations": audit.figures["operations"],
        **{f"operations_{surface}": n for surface, n in sorted(audit.by_surface.items())},
        **{name: audit.figures[name] for name in MUST_BE_ZERO},
        "typed_errors": audit.figures["typed_errors"],
        "foreign_ids_named": audit.figures["foreign_ids_named"],
        "made_up_ids_named": audit.figures["made_up_ids_named"],
        "full_checks": audit.figures["full_checks"],
        "examples": next(IsolationMachine.examples),
    }
    details = {
        "operations_by_surface": dict(audit.by_surface),
        "operations_by_op": dict(sorted(audit.by_op.items())),
        "stack": "SQLite RecordStore + Qdrant Edge EdgeIndex on disk per example, real MiniLM "
                 "(memoized per distinct text), echo chat model, PersonaStore(allow_unscoped=False)",
        "users": [{"handle": u.handle, "scope": u.scope.key, "canary": u.canary} for u in USERS],
        "seed": profile.seed, "rounds": rounds, "steps_per_example": steps,
        "texts_embedded": memo.computed,
        "seconds_in": {k: round(v, 1) for k, v in audit.seconds.items()},
        "seconds_by_op": {k: round(v, 1) for k, v in audit.op_seconds.most_common()},
        "failures": audit.failures,
    }
    return PartResult("isolation", figures, MUST_BE_ZERO, time.perf_counter() - started, details)
