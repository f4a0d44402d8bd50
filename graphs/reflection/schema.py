"""What flows between the reflection graph's nodes: candidates proposed by extractors.

Candidates are not memory yet. They become `Fact`, `Entity` and `Relation` records only after
grounding, entity resolution and reconciliation; until then they are plain data that a
checkpointer can serialise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from personagraph.memory.models import FactKind, Timestamp
from pydantic import BaseModel, ConfigDict, Field

CandidateOrigin = Literal["explicit", "llm", "oracle"]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class CandidateFact(BaseModel):
    """A fact an extractor proposes, with the event ids it claims to rest on."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=500)]
    fact_kind: FactKind = "attribute"
    subject: ShortText | None = None
    predicate: ShortText | None = None
    object: ShortText | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    sources: Annotated[list[str], Field(min_length=1)]
    valid_from: Timestamp | None = None
    said_at: Timestamp | None = None  # when its latest source message was said (set by the graph)
    origin: CandidateOrigin = "llm"


class CandidateEntity(BaseModel):
    """An entity an extractor saw, before it is matched against the user's known entities."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    entity_type: Annotated[str, Field(min_length=1, max_length=50)] = "thing"
    aliases: list[ShortText] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


class GateDecision(BaseModel):
    """Whether a batch is worth an extraction, and why (no LLM is called to decide)."""

    memorable: bool
    reason: str
    memorable_event_ids: list[str] = Field(default_factory=list)


class GroundingResult(BaseModel):
    """Whether a candidate's content is supported by the words of its source messages."""

    supported: bool
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    reason: str


class DateResolution(BaseModel):
    """A text with its relative dates made absolute against the time it was said."""

    text: str
    start: datetime | None = None  # start of the earliest resolved interval, if any
    phrases: list[str] = Field(default_factory=list)  # the relative phrases that were resolved
