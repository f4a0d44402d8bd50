"""What a model may pass to the memory tools: nothing that names a user, nothing undeclared.

Every schema forbids fields it does not declare, so a model that adds `user_id`, `tenant`,
`scope` or `namespace` gets a validation error back (as a tool error it can read), never
another user's memory. Record ids are checked against the record id format and are only
ever looked up inside the caller's own scope.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Literal, Self

from personagraph.memory.models import FactKind, RecordId
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)


def _moment(value: object) -> datetime:
    """An ISO date or date-time; a date alone means the end of that day, so "as of
    2024-05-01" includes what became true on the first of May. Naive times are UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("as_of is an ISO date (2024-05-01) or date-time (2024-05-01T18:30:00Z) string")
    try:
        return datetime.combine(date.fromisoformat(value), time.max, tzinfo=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError("use an ISO date (2024-05-01) or date-time (2024-05-01T18:30:00Z)") from exc


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("a name may not be blank")
    return value.strip()


IsoMoment = Annotated[datetime, BeforeValidator(_moment), WithJsonSchema({"type": "string", "maxLength": 40})]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_name)]
SearchKind = Literal["event", "episode", "fact"]


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchArgs(ToolArgs):
    query: Annotated[str, Field(min_length=1, max_length=2000)] = Field(description="what to look for, in plain words")
    kinds: list[SearchKind] | None = Field(
        None, max_length=3,
        description="limit to 'event' (messages), 'episode' (conversation summaries) or 'fact'; all when omitted",
    )
    k: int = Field(8, ge=1, le=50, description="how many memories to return")
    as_of: IsoMoment | None = Field(None, description="ISO date or date-time: what was known and true then")


class RememberArgs(ToolArgs):
    text: Annotated[str, Field(min_length=1, max_length=2000)] = Field(
        description="what the user asked you to remember, as one self-contained sentence",
    )
    kind: FactKind = Field("other", description="preference, attribute, relationship, plan, event, instruction or other")
    subject: Name | None = Field(None, description="who or what it is about (default: the user)")
    predicate: Name | None = Field(None, description="the relation, e.g. lives_in, sister_of, likes (with object)")
    object: Name | None = Field(None, description="the other end of the relation, e.g. Porto (with predicate)")
    replaces: RecordId | None = Field(None, description="id of an active fact this one replaces (the world changed)")

    @model_validator(mode="after")
    def _triple(self) -> Self:
        if (self.predicate is None) != (self.object is None):
            raise ValueError("give predicate and object together, or neither")
        if self.subject is not None and self.predicate is None:
            raise ValueError("a subject needs a predicate and an object")
        return self


class ForgetArgs(ToolArgs):
    memory_id: RecordId = Field(description="id of a fact or a message (event) of this user, as search or explain gave it")


class ProfileArgs(ToolArgs):
    pass


class GraphArgs(ToolArgs):
    entity: Name = Field(description="name of a person, place or thing in the user's memory")
    to: Name | None = Field(None, description="another entity: return the paths that connect the two")
    as_of: IsoMoment | None = Field(None, description="ISO date or date-time: the relations true then (default: now)")
    hops: int | None = Field(
        None, ge=1, le=4, description="neighbours: how far to reach (default 1); paths: longest path (default 3)",
    )


class ExplainArgs(ToolArgs):
    memory_id: RecordId = Field(description="id of a fact or an episode of this user, as search or the profile gave it")
