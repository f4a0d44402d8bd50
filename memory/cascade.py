"""What forgetting one event does to the records that rest on it (pure planning, no I/O).

A record whose only sources are forgotten events goes; a record with other sources stays
with the forgotten ids removed from its sources. Relations go with their fact; entities go
when nothing that remains names them. A fact superseded by a fact that goes is reopened, with
its edge: it is again the latest thing known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .models import (
    AdapterRecord,
    Entity,
    Episode,
    Fact,
    Feedback,
    Record,
    RecordKind,
    ReflectionRun,
    Relation,
)


@dataclass
class CascadePlan:
    delete: list[tuple[RecordKind, str]] = field(default_factory=list)
    update: list[Record] = field(default_factory=list)


def _trim(record: Record, gone: set[str], plan: CascadePlan) -> bool:
    """Apply the sources rule; return True when the record is deleted."""
    sources = record.sources  # type: ignore[attr-defined]
    if not gone.intersection(sources):
        return False
    kept = [s for s in sources if s not in gone]
    if kept:
        plan.update.append(record.model_copy(update={"sources": kept}))
        return False
    plan.delete.append((record.kind, record.id))
    return True


def plan_event_cascade(
    event_ids: set[str],
    facts: list[Fact],
    relations: list[Relation],
    entities: list[Entity],
    episodes: list[Episode],
    reflections: Sequence[ReflectionRun] = (),
    adapters: Sequence[AdapterRecord] = (),
    feedback: Sequence[Feedback] = (),
) -> CascadePlan:
    plan = CascadePlan(delete=[("event", eid) for eid in sorted(event_ids)])
    deleted_facts = {f.id for f in facts if _trim(f, event_ids, plan)}
    # Feedback quotes its exchange and the prompt quoted memories: it goes with any of them.
    gone = event_ids | deleted_facts
    gone_feedback = {f.id for f in feedback if gone.intersection(f.sources) or gone.intersection(f.memory_ids)}
    plan.delete.extend(("feedback", fid) for fid in sorted(gone_feedback))
    # A model cannot unlearn one message: an adapter trained on a forgotten event, or on
    # forgotten feedback, goes whole.
    plan.delete.extend(
        ("adapter", a.id) for a in adapters
        if event_ids.intersection(a.sources) or gone_feedback.intersection(a.feedback_ids)
    )
    for record in [*episodes, *reflections]:
        _trim(record, event_ids, plan)
    # A fact replaced by one that is now forgotten is again the latest word on the matter.
    reopened: set[str] = set()
    for fact in facts:
        if fact.superseded_by in deleted_facts and fact.id not in deleted_facts:
            reopened.add(fact.id)
            _replace(plan, _latest(plan, fact).model_copy(update={"status": "active", "valid_to": None, "superseded_by": None}))

    remaining_relations: list[Relation] = []
    for relation in relations:
        if relation.fact_id in deleted_facts:
            plan.delete.append(("relation", relation.id))
        elif not _trim(relation, event_ids, plan):
            remaining_relations.append(relation)
            if relation.fact_id in reopened:
                _replace(plan, _latest(plan, relation).model_copy(update={"valid_to": None}))

    still_named = {r.subject_id for r in remaining_relations} | {r.object_id for r in remaining_relations}
    for entity in entities:
        if not event_ids.intersection(entity.sources):
            continue
        kept = [s for s in entity.sources if s not in event_ids]
        if kept or entity.id in still_named:
            plan.update.append(entity.model_copy(update={"sources": kept}))
        else:
            plan.delete.append(("entity", entity.id))
    return plan


def _replace(plan: CascadePlan, record: Record) -> None:
    """Queue an update, merging with one already queued for the same record."""
    plan.update = [r for r in plan.update if (r.kind, r.id) != (record.kind, record.id)] + [record]


def _latest(plan: CascadePlan, record: Record) -> Record:
    """The version of a record already queued for update, else the record itself."""
    return next((r for r in plan.update if (r.kind, r.id) == (record.kind, record.id)), record)
