"""LLM extraction: one structured call per batch → candidate facts, entities and a summary.

The output schema is bounded (short strings, at most three facts and three entities) so a
small local model under constrained decoding always finishes inside its token budget.
Messages are numbered 1..n and the model names a number, never an event id it could invent.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import Annotated, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from personagraph.memory.models import Event, FactKind
from pydantic import BaseModel, Field

from .dates import resolve_relative_dates
from .schema import CandidateEntity, CandidateFact

EntityType = Literal["person", "pet", "place", "organization", "thing", "event"]


class ExtractedFact(BaseModel):
    message: Annotated[int, Field(ge=1, le=40, description="number of the message that says it")]
    text: Annotated[str, Field(min_length=3, max_length=120, description="the fact, in third person")]
    kind: FactKind
    subject: Annotated[str, Field(max_length=40)] = ""
    predicate: Annotated[str, Field(max_length=30)] = ""
    object: Annotated[str, Field(max_length=60)] = ""
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7


class ExtractedEntity(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=40)]
    type: EntityType = "thing"


class Extraction(BaseModel):
    """What the model returns for one batch of messages."""

    facts: Annotated[list[ExtractedFact], Field(max_length=3)]
    entities: Annotated[list[ExtractedEntity], Field(max_length=3)] = []
    summary: Annotated[str, Field(max_length=160)] = ""


SYSTEM_PROMPT = (
    "You read a conversation and write down lasting facts about the people in it: "
    "preferences, attributes, relationships, plans and instructions they give. Only write what "
    "a message states; never guess. Greetings and small talk have no facts: give an empty list. "
    "Name the number of the message each fact comes from. Reply with JSON only."
)

_EXAMPLE_IN = "[1] Dana (3 May 2023): hey! how was your weekend?\n[2] Dana (3 May 2023): I'm allergic to shellfish, so no paella for me."
_EXAMPLE_OUT = Extraction(
    facts=[ExtractedFact(message=2, text="Dana is allergic to shellfish", kind="attribute", subject="Dana",
                         predicate="allergic_to", object="shellfish", confidence=0.9)],
    entities=[ExtractedEntity(name="Dana", type="person")],
    summary="Dana said she is allergic to shellfish.",
)

EXAMPLE_SUMMARY = _EXAMPLE_OUT.summary


def render_batch(events: Sequence[Event]) -> str:
    return "\n".join(f"[{i}] {e.speaker} ({e.time:%d %B %Y}): {e.text}" for i, e in enumerate(events, 1))


def extraction_schema(events: Sequence[Event]) -> dict:
    """The `Extraction` schema narrowed to this batch: a fact may only name a message a user
    (not the assistant) said, and its text must start with that batch's speaker names. On the
    local model this stopped the prompt's example person ("Dana") turning up in facts."""
    schema = copy.deepcopy(Extraction.model_json_schema())
    fact = schema["$defs"]["ExtractedFact"]["properties"]
    said = [i for i, e in enumerate(events, 1) if e.role != "assistant"] or list(range(1, len(events) + 1))
    fact["message"] = {"type": "integer", "enum": said, "description": fact["message"].get("description", "")}
    names = sorted({events[i - 1].speaker for i in said}, key=len, reverse=True)
    fact["text"]["pattern"] = "^(" + "|".join(re.escape(n) for n in names) + r")('s)? \S.*$"
    return schema


def extraction_messages(events: Sequence[Event]) -> list[BaseMessage]:
    example = json.dumps(_EXAMPLE_OUT.model_dump(), ensure_ascii=False)
    return [
        SystemMessage(SYSTEM_PROMPT),
        HumanMessage(_EXAMPLE_IN),
        AIMessage(example),
        HumanMessage(render_batch(events)),
    ]


def retry_messages(previous: list[BaseMessage], raw: str, error: str) -> list[BaseMessage]:
    """Show the model its own output and the error, and ask again."""
    return [*previous, AIMessage(raw or "(no output)"), HumanMessage(f"That reply was invalid: {error[:500]}\nReply again with valid JSON only.")]


class ExtractionError(ValueError):
    """The model's output parsed but names things that do not exist (e.g. message 7 of 5)."""


def to_candidates(extraction: Extraction, events: Sequence[Event]) -> tuple[list[CandidateFact], list[CandidateEntity]]:
    """Map message numbers to event ids and resolve relative dates against each message's time."""
    facts = []
    for item in extraction.facts:
        if not 1 <= item.message <= len(events):
            raise ExtractionError(f"fact {item.text!r} names message {item.message}, but there are {len(events)}")
        event = events[item.message - 1]
        dated = resolve_relative_dates(item.text, event.time)
        spo = (item.subject.strip(), item.predicate.strip(), item.object.strip())
        facts.append(CandidateFact(
            text=dated.text, fact_kind=item.kind, confidence=item.confidence, sources=[event.id],
            subject=spo[0] or None, predicate=spo[1] or None, object=spo[2] or None,
            valid_from=dated.start or event.time, origin="llm",
        ))
    sources = [e.id for e in events]
    entities = [CandidateEntity(name=e.name.strip(), entity_type=e.type, sources=sources) for e in extraction.entities if e.name.strip()]
    return facts, entities
