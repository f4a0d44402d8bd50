"""What every surface's rules share: the fresh world of one example, the auditor, and drawing
a user's own ids or another user's.

Each surface is a mixin with one rule (`isolation_memory.py`, `_store`, `_tools`, `_chat`).
Hypothesis draws the user, the operation and a seed; the arguments come from a `Random` with
that seed, because many are picked among the ids a user holds now, and uuid ids and clocks in
the product make that state differ between runs: hypothesis refuses draws whose shape depends
on it (FlakyStrategyDefinition). Every call goes through `call`, which hands it to the auditor.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from random import Random
from typing import Any, ClassVar

from hypothesis.stateful import RuleBasedStateMachine
from personagraph.memory import Embedder, Fact

from .isolation_audit import Auditor, Expect, Outcome
from .isolation_world import FACTS, SAYINGS, USERS, User, World


def weighted(**weights: int) -> tuple[str, ...]:
    """Operation names repeated by weight, for `sampled_from` (the first is what an all-zero
    example repeats, so it should be a cheap one)."""
    return tuple(name for name, n in weights.items() for _ in range(n))


class MachineBase(RuleBasedStateMachine):
    """One example: a fresh world, checked by the shared auditor after every call."""

    embedder: ClassVar[Embedder]
    audit: ClassVar[Auditor]
    examples: ClassVar[itertools.count]
    workdir: ClassVar[Path]

    def __init__(self) -> None:
        super().__init__()
        self.world = World(self.embedder, self.workdir)
        self.audit.start(self.world, f"example {next(self.examples)}")
        self.serial = itertools.count()

    def teardown(self) -> None:
        try:
            self.audit.finish()
        finally:
            self.world.close()

    def call(self, surface: str, op: str, user: User, fn: Any, *inputs: Any, expect: Expect = "ok") -> Outcome:
        """Run one surface call for `user`; `inputs` are what the caller sent (it may see them back)."""
        return self.audit.call(surface, op, user, fn, inputs=inputs, expect=expect)

    # ------------------------------------------------------------------ ids
    def ids(self, user: User, kind: str, **where: Any) -> list[str]:
        """The ids of one kind the user holds now (optionally with these field values)."""
        records = self.audit.state.get(user.scope, {})
        return sorted(rid for (k, rid), value in records.items()
                      if k == kind and all(value.get(f) == v for f, v in where.items()))

    def draw_own(self, rnd: Random, user: User, kind: str, **where: Any) -> str | None:
        found = self.ids(user, kind, **where)
        return rnd.choice(found) if found else None

    def draw_foreign(self, rnd: Random, user: User, kind: str) -> tuple[User, str]:
        """Another user and one of their ids that `user` does not hold; a made-up id of theirs
        only while nobody else holds a record of that kind."""
        mine = set(self.ids(user, kind))
        held = {u: [i for i in self.ids(u, kind) if i not in mine] for u in USERS if u != user}
        holders = [u for u, ids in held.items() if ids]
        if holders:
            other = rnd.choice(holders)
            self.audit.figures["foreign_ids_named"] += 1
            return other, rnd.choice(held[other])
        other = rnd.choice([u for u in USERS if u != user])
        self.audit.figures["made_up_ids_named"] += 1
        return other, f"{kind[:3]}_{other.canary}_404"

    def fresh(self, prefix: str, user: User) -> str:
        return f"{prefix}_{user.canary}_{next(self.serial)}"

    # ------------------------------------------------------------------ content
    @staticmethod
    def said(rnd: Random, user: User, pool: tuple[str, ...] = SAYINGS) -> str:
        return rnd.choice(pool).format(c=user.canary)

    def fact(self, rnd: Random, user: User, **extra: Any) -> Fact:
        """One of the user's facts, resting on up to two of their events."""
        text, kind, predicate, obj = rnd.choice(FACTS)
        events = self.ids(user, "event")
        sources = rnd.sample(events, rnd.randint(0, min(2, len(events))))
        return Fact(
            id=self.fresh("fct", user), text=text.format(c=user.canary), fact_kind=kind,
            subject=user.label if predicate else None, predicate=predicate,
            object=obj.format(c=user.canary) if obj else None, sources=sources, **extra,
        )
