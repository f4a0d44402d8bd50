"""Reconciliation: decide what each new candidate does to the facts the user already has.

Rules settle what they can without a model, cheapest first: an identical normalised text or a
near-duplicate embedding is a no-op (the old fact gains the new source); the same subject and
a single-valued predicate with a new object supersedes; the same subject and object with the
opposite predicate retracts; nothing related means add. Only candidates close to an existing
fact yet none of these go to the model, all in one call, with existing facts numbered 1..n so
the model cannot invent an id. A model's supersede is accepted only between facts of the same
subject and predicate; anything the model gets wrong falls back to add.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from personagraph.memory.changes import ChangeSet
from personagraph.memory.models import Fact, stable_id
from pydantic import BaseModel, ConfigDict, Field

from .schema import CandidateFact

Action = Literal["add", "update", "supersede", "retract", "noop"]

# Predicates that hold one value at a time: a new object replaces the old one.
FUNCTIONAL_PREDICATES = frozenset({
    "lives_in", "location", "works_at", "works_as", "employer", "occupation", "job", "name", "age",
    "relationship_status", "marital_status", "diet", "studies_at", "school", "partner",
    "spouse", "wife", "husband", "boyfriend", "girlfriend", "favourite", "favorite",
})
OPPOSITE_PREDICATES = {
    "likes": "dislikes", "dislikes": "likes", "loves": "hates", "hates": "loves",
    "enjoys": "dislikes", "prefers": "dislikes",
}


class Decision(BaseModel):
    """What one candidate does, against which existing fact, decided by whom and why."""

    model_config = ConfigDict(extra="forbid")

    candidate: CandidateFact
    action: Action
    target_id: str | None = None
    reason: str
    by: Literal["rule", "model", "fallback"] = "rule"
    closed_by: str | None = None  # an add of older news: written already superseded by this fact


@dataclass(frozen=True)
class ReconcileConfig:
    duplicate_similarity: float = 0.92  # MiniLM cosine at which two fact texts say the same thing
    # Below this nothing existing is about the same matter. Hand-checked on LoCoMo: MiniLM pairs at
    # 0.70-0.75 state the same fact about 2 times in 8, at 0.75-0.80 about 5 in 8.
    related_similarity: float = 0.75
    neighbours: int = 5


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def _norm(value: str | None) -> str:
    return normalise_text(value or "").replace(" ", "_")


def text_key(text: str) -> str:
    return hashlib.sha256(normalise_text(text).encode()).hexdigest()


def claim_key(fact: CandidateFact | Fact) -> tuple[str, str, str]:
    """Text plus triple: one sentence may carry two claims ("starting as a designer at Acme")."""
    return text_key(fact.text), _norm(fact.predicate), _norm(fact.object)


def fact_id_for(candidate: CandidateFact) -> str:
    """Same claim from the same messages → same id, so a replay cannot create a second fact."""
    return stable_id("fct", *claim_key(candidate), *sorted(candidate.sources))


def dedupe_batch(candidates: Sequence[CandidateFact]) -> list[CandidateFact]:
    """Merge candidates of one batch making the same claim (union of sources)."""
    merged: dict[tuple[str, str, str], CandidateFact] = {}
    for cand in candidates:
        key = claim_key(cand)
        if (seen := merged.get(key)) is None:
            merged[key] = cand
        else:
            merged[key] = seen.model_copy(update={
                "sources": sorted(set(seen.sources) | set(cand.sources)),
                "confidence": max(seen.confidence, cand.confidence),
                "said_at": max((t for t in (seen.said_at, cand.said_at) if t), default=None),
            })
    return list(merged.values())


def same_slot(candidate: CandidateFact, fact: Fact) -> bool:
    """Same subject and predicate: the only pairs one may supersede the other."""
    return bool(candidate.subject and candidate.predicate) and (
        (_norm(candidate.subject), _norm(candidate.predicate)) == (_norm(fact.subject), _norm(fact.predicate))
    )


def rule_decision(candidate: CandidateFact, neighbours: Sequence[tuple[Fact, float]], config: ReconcileConfig) -> Decision | None:
    """A decision the rules can make alone, or None when the candidate needs the model."""
    key = claim_key(candidate)
    for fact, similarity in neighbours:
        if claim_key(fact) == key:
            return Decision(candidate=candidate, action="noop", target_id=fact.id, reason="same claim")
        same_object = not (fact.object and candidate.object) or _norm(fact.object) == _norm(candidate.object)
        if similarity >= config.duplicate_similarity and same_object:
            return Decision(candidate=candidate, action="noop", target_id=fact.id, reason=f"near-duplicate ({similarity:.2f})")
    for fact, _ in neighbours:
        if same_slot(candidate, fact) and _norm(fact.object) != _norm(candidate.object) \
                and _norm(candidate.predicate) in FUNCTIONAL_PREDICATES:
            return Decision(candidate=candidate, action="supersede", target_id=fact.id, reason="single-valued predicate changed")
        opposite = OPPOSITE_PREDICATES.get(_norm(candidate.predicate))
        if opposite and _norm(fact.predicate) == opposite and _norm(fact.subject) == _norm(candidate.subject) \
                and _norm(fact.object) == _norm(candidate.object):
            return Decision(candidate=candidate, action="retract", target_id=fact.id, reason="opposite predicate, same object")
    if not any(similarity >= config.related_similarity for _, similarity in neighbours):
        return Decision(candidate=candidate, action="add", reason="nothing related known")
    return None


# ------------------------------------------------------------------ the model's part
class ModelDecision(BaseModel):
    candidate: Annotated[int, Field(ge=1, le=9)]
    action: Action
    target: Annotated[int, Field(ge=0, le=9)] = 0  # 0 = no existing fact


class ModelDecisions(BaseModel):
    decisions: Annotated[list[ModelDecision], Field(max_length=3)]


DECIDE_PROMPT = (
    "You keep a user's memory up to date. For each NEW fact choose one action against the "
    "numbered EXISTING facts: add (new information), update (same fact, better wording: give "
    "its number), supersede (the existing fact stopped being true: give its number), retract "
    "(the existing fact was wrong: give its number), noop (already known: give its number). "
    "Use target 0 for add. Reply with JSON only."
)


def decision_prompt(pending: Sequence[CandidateFact], existing: Sequence[Fact]) -> str:
    lines = ["EXISTING:"] + [f"{i}. {f.text}" for i, f in enumerate(existing, 1)]
    lines += ["NEW:"] + [f"{i}. {c.text}" for i, c in enumerate(pending, 1)]
    return "\n".join(lines)


def apply_model_decisions(
    pending: Sequence[CandidateFact], existing: Sequence[Fact], answer: ModelDecisions | None,
) -> list[Decision]:
    """Map numbered answers back to ids, refusing what the rules forbid (falls back to add)."""
    chosen = {d.candidate: d for d in (answer.decisions if answer else []) if 1 <= d.candidate <= len(pending)}
    out = []
    for number, candidate in enumerate(pending, 1):
        made = chosen.get(number)
        target = existing[made.target - 1] if made and 1 <= made.target <= len(existing) else None
        if made is None:
            out.append(Decision(candidate=candidate, action="add", reason="the model gave no decision", by="fallback"))
        elif made.action == "add":
            out.append(Decision(candidate=candidate, action="add", reason="the model chose add", by="model"))
        elif target is None:
            out.append(Decision(candidate=candidate, action="add", reason=f"{made.action} without a valid target", by="fallback"))
        elif made.action == "supersede" and not same_slot(candidate, target):
            out.append(Decision(candidate=candidate, action="add", reason="supersede across subjects or predicates refused", by="fallback"))
        else:
            out.append(Decision(candidate=candidate, action=made.action, target_id=target.id, reason=f"the model chose {made.action}", by="model"))
    return out


Decider = Callable[[Sequence[CandidateFact], Sequence[Fact]], ModelDecisions | None]


def reconcile(
    candidates: Sequence[CandidateFact],
    neighbours: Sequence[Sequence[tuple[Fact, float]]],
    decide: Decider | None,
    config: ReconcileConfig = ReconcileConfig(),
) -> list[Decision]:
    """Decide every candidate: rules first, then at most one model call for the rest."""
    decisions: list[Decision | None] = [rule_decision(c, n, config) for c, n in zip(candidates, neighbours, strict=True)]
    pending = [i for i, d in enumerate(decisions) if d is None]
    if pending:
        existing: dict[str, Fact] = {}
        for i in pending:
            for fact, _ in neighbours[i]:
                existing.setdefault(fact.id, fact)
        facts = list(existing.values())[:9]
        cands = [candidates[i] for i in pending][:3]
        answer = decide(cands, facts) if decide else None
        made = apply_model_decisions(cands, facts, answer) if decide else []
        for slot, i in enumerate(pending):
            if slot < len(made):
                decisions[i] = made[slot]
            else:
                reason = "no model to ask: kept as new" if decide is None else "over the decisions one call may make"
                decisions[i] = Decision(candidate=candidates[i], action="add", reason=reason, by="fallback")
    known = {fact.id: fact for hits in neighbours for fact, _ in hits}
    return _one_change_per_target([_respect_time(d, known) for d in decisions if d is not None])


def _respect_time(decision: Decision, known: dict[str, Fact]) -> Decision:
    """Older news never replaces newer: a candidate said before the fact it would supersede
    became true is history, added already closed by that fact (messages can arrive late)."""
    target = known.get(decision.target_id or "")
    if decision.action != "supersede" or target is None:
        return decision
    said = decision.candidate.said_at or decision.candidate.valid_from
    if said and target.valid_from and said < target.valid_from:
        return decision.model_copy(update={
            "action": "add", "target_id": None, "closed_by": target.id,
            "reason": f"{decision.reason}, but it predates the fact it would replace: kept as history",
        })
    return decision


def _one_change_per_target(decisions: list[Decision]) -> list[Decision]:
    """Two candidates may not both close or rewrite one fact: the later ones become adds."""
    claimed: set[str] = set()
    out = []
    for decision in decisions:
        if decision.action in ("update", "supersede", "retract") and decision.target_id in claimed:
            decision = decision.model_copy(update={"action": "add", "target_id": None, "reason": "target already changed in this batch", "by": "fallback"})
        if decision.action in ("update", "supersede", "retract"):
            claimed.add(decision.target_id)  # type: ignore[arg-type]
        out.append(decision)
    return out


def to_fact(candidate: CandidateFact, fact_id: str | None = None) -> Fact:
    return Fact(
        id=fact_id or fact_id_for(candidate), text=candidate.text, fact_kind=candidate.fact_kind,
        subject=candidate.subject, predicate=candidate.predicate, object=candidate.object,
        confidence=candidate.confidence, valid_from=candidate.valid_from, sources=sorted(set(candidate.sources)),
    )


def changes_for(decisions: Sequence[Decision], existing: dict[str, Fact]) -> ChangeSet:
    """Turn decisions into one change set; a no-op still records the new source on the old fact."""
    changes = ChangeSet()
    for d in decisions:
        target = existing.get(d.target_id) if d.target_id else None
        if d.closed_by and (newer := existing.get(d.closed_by)) is not None:
            changes.add.append(to_fact(d.candidate).model_copy(update={
                "status": "superseded", "superseded_by": newer.id, "valid_to": newer.valid_from,
            }))
        elif d.action == "add" or target is None:
            changes.add.append(to_fact(d.candidate))
        elif d.action == "noop":
            if not set(d.candidate.sources) <= set(target.sources):  # type: ignore[union-attr]
                changes.update.append(target.model_copy(update={"sources": sorted(set(target.sources) | set(d.candidate.sources))}))  # type: ignore[union-attr]
        elif d.action == "update":
            fresh = to_fact(d.candidate, fact_id=target.id)  # type: ignore[union-attr]
            changes.update.append(fresh.model_copy(update={
                "sources": sorted(set(target.sources) | set(d.candidate.sources)),  # type: ignore[union-attr]
                "valid_from": target.valid_from or fresh.valid_from,  # type: ignore[union-attr]
                "created_at": target.created_at,  # type: ignore[union-attr]
            }))
        elif d.action == "supersede":
            changes.supersede.append((target.id, to_fact(d.candidate)))  # type: ignore[union-attr]
        elif d.action == "retract":
            changes.retract.append(target.id)  # type: ignore[union-attr]
            changes.add.append(to_fact(d.candidate))
    return changes
