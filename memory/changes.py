"""A set of memory changes that lands as one logical write (what one reflection run decided)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Entity, Episode, Fact, Record, RecordKind


@dataclass
class ChangeSet:
    """Facts to add, supersede, retract or rewrite, plus entities, episodes and bookkeeping
    records; `Memory.apply` writes all of it in one transaction with one journal entry."""

    add: list[Fact] = field(default_factory=list)
    supersede: list[tuple[str, Fact]] = field(default_factory=list)  # (old fact id, new fact)
    retract: list[str] = field(default_factory=list)
    update: list[Fact] = field(default_factory=list)  # full new versions of existing facts
    entities: list[Entity] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    extra: list[Record] = field(default_factory=list)
    delete: list[tuple[RecordKind, str]] = field(default_factory=list)  # reflection runs only

    def fact_ids(self) -> list[str]:
        """Ids of the facts this change set creates or rewrites."""
        return [f.id for f in self.add] + [f.id for _, f in self.supersede] + [f.id for f in self.update]
