"""The records of a user's memory: pydantic v2 models that round-trip through JSON.

Records are the truth; the vector index and the graph view are derived from them. Every
record carries `sources` (event ids) where it came from somewhere, so forgetting an event
can cascade to what rests on it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .errors import InvalidRecordError

RecordKind = Literal["event", "episode", "fact", "entity", "relation", "reflection", "adapter", "feedback", "item"]
RECORD_KINDS: tuple[RecordKind, ...] = (
    "event", "episode", "fact", "entity", "relation", "reflection", "adapter", "feedback", "item",
)
INDEXED_KINDS: tuple[RecordKind, ...] = ("event", "episode", "fact", "item")  # the kinds search returns
FactKind = Literal[
    "preference", "attribute", "relationship", "plan", "event", "instruction", "other"
]
FactStatus = Literal["active", "superseded", "retracted"]

_ID = re.compile(r"^[A-Za-z0-9_\-:.@]{1,200}$")


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError("ids are 1-200 characters from A-Z a-z 0-9 _ - : . @")
    return value


def is_record_id(value: object) -> bool:
    """Could `value` name a record? (Anything else names none: a lookup finds nothing.)"""
    return isinstance(value, str) and bool(_ID.fullmatch(value))


def is_unicode(text: str) -> bool:
    """Valid Unicode (no lone surrogate), so it can be stored, indexed and tokenized."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unicode(value: str) -> str:
    if not is_unicode(value):
        raise ValueError("text holds a lone surrogate (not valid Unicode)")
    return value


def check_text(value: object, what: str, max_chars: int | None = None) -> str:
    """`value` as text a person could have typed, or InvalidRecordError saying why not."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecordError(f"{what} must be a non-empty string")
    if max_chars is not None and len(value) > max_chars:
        raise InvalidRecordError(f"{what} is longer than {max_chars} characters")
    try:
        return _unicode(value)
    except ValueError as exc:
        raise InvalidRecordError(f"{what}: {exc}") from None


def _aware(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC so ordering and validity checks never mix the two."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


RecordId = Annotated[str, AfterValidator(_check_id)]
Timestamp = Annotated[datetime, AfterValidator(_aware)]
MAX_TEXT_CHARS = 20_000  # one message, fact or summary
NonEmptyText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_unicode)]


def now() -> datetime:
    return datetime.now(UTC)


def stable_id(prefix: str, *parts: object) -> str:
    """A deterministic id from content, so replaying the same input writes the same records."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:20]
    return f"{prefix}_{digest}"


def entity_key(name: str) -> str:
    """Canonical entity id from a name: case- and spacing-insensitive."""
    norm = re.sub(r"\s+", " ", name.strip().lower())
    return stable_id("ent", norm)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: RecordKind
    id: RecordId
    created_at: Timestamp = Field(default_factory=now)


class Event(Record):
    """One message as it was said. Events are never rewritten, only forgotten."""

    kind: Literal["event"] = "event"
    id: RecordId = ""  # type: ignore[assignment]  # filled from content when empty
    speaker: Annotated[str, Field(min_length=1, max_length=200)]
    role: Literal["user", "assistant", "system", "other"] = "user"
    text: NonEmptyText
    time: Timestamp = Field(default_factory=now)
    thread_id: Annotated[str, Field(max_length=200)] = "default"
    caption: Annotated[str, Field(max_length=2_000)] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fill_id(self) -> Event:
        """Derive the id from content and the normalised UTC time, so equal messages match."""
        if not self.id:
            utc = self.time.astimezone(UTC).isoformat()
            self.__dict__["id"] = stable_id("evt", self.thread_id, utc, self.speaker, self.text)
        return self

    def same_message(self, other: Event) -> bool:
        """Is `other` this message again (a replay), rather than another message under its id?"""
        return (self.speaker, self.text, self.thread_id) == (other.speaker, other.text, other.thread_id)

    def index_text(self) -> str:
        """What retrieval sees: speaker, the date it was said, the text and any image caption."""
        text = f"{self.speaker} ({self.time:%d %B %Y}): {self.text}"
        if self.caption:
            text += f" [shared an image: {self.caption}]"
        return text


class Episode(Record):
    """A span of events with a summary (written by reflection)."""

    kind: Literal["episode"] = "episode"
    id: RecordId = Field(default_factory=lambda: f"epi_{uuid.uuid4().hex[:20]}")
    thread_id: str = "default"
    summary: NonEmptyText
    start: Timestamp
    end: Timestamp
    sources: list[RecordId] = Field(default_factory=list)

    def index_text(self) -> str:
        return f"({self.start:%d %B %Y}) {self.summary}"


class Fact(Record):
    """A statement about the user, valid over an interval, resting on its source events."""

    kind: Literal["fact"] = "fact"
    id: RecordId = Field(default_factory=lambda: f"fct_{uuid.uuid4().hex[:20]}")
    text: NonEmptyText
    fact_kind: FactKind = "attribute"
    subject: str | None = None
    predicate: str | None = None
    object: str | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    status: FactStatus = "active"
    superseded_by: RecordId | None = None
    sources: list[RecordId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _interval(self) -> Fact:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self

    def index_text(self) -> str:
        return self.text


class Entity(Record):
    """A person, place, thing or idea the user talks about; its id comes from its name."""

    kind: Literal["entity"] = "entity"
    id: RecordId = ""  # type: ignore[assignment]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    entity_type: str = "thing"
    aliases: list[str] = Field(default_factory=list)
    sources: list[RecordId] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _fill_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("id") and data.get("name"):
            data = dict(data)
            data["id"] = entity_key(data["name"])
        return data

    def index_text(self) -> str:
        names = ", ".join([self.name, *self.aliases])
        return f"{names} ({self.entity_type})"


class Relation(Record):
    """A typed edge between two entities, valid over an interval; closed, never deleted, on change."""

    kind: Literal["relation"] = "relation"
    id: RecordId = Field(default_factory=lambda: f"rel_{uuid.uuid4().hex[:20]}")
    subject_id: RecordId
    predicate: Annotated[str, Field(min_length=1, max_length=200)]
    object_id: RecordId
    fact_id: RecordId | None = None
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    sources: list[RecordId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _interval(self) -> Relation:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self

    def valid_at(self, when: datetime | None) -> bool:
        if when is None:
            return self.valid_to is None
        when = _aware(when)
        starts_ok = self.valid_from is None or self.valid_from <= when
        return starts_ok and (self.valid_to is None or when < self.valid_to)


ReflectionStatus = Literal["done", "skipped", "failed", "deferred"]


class ReflectionRun(Record):
    """What reflection did with a batch of events. `done` and `skipped` runs mark their events
    as reflected; `failed` (the model's output never validated) and `deferred` (over budget)
    runs keep them due for another try, so nothing is dropped silently."""

    kind: Literal["reflection"] = "reflection"
    id: RecordId = ""  # type: ignore[assignment]  # filled from thread and events when empty
    thread_id: Annotated[str, Field(max_length=200)] = "default"
    sources: Annotated[list[RecordId], Field(min_length=1)]
    status: ReflectionStatus
    reason: Annotated[str, Field(max_length=2_000)] = ""
    attempts: Annotated[int, Field(ge=0)] = 0
    llm_calls: Annotated[int, Field(ge=0)] = 0
    model: Annotated[str, Field(max_length=200)] = ""
    fact_ids: list[RecordId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fill_id(self) -> ReflectionRun:
        if not self.id:
            self.__dict__["id"] = stable_id("rfl", self.thread_id, *sorted(self.sources))
        return self

    @property
    def reflected(self) -> bool:
        return self.status in ("done", "skipped")


AdapterKind = Literal["lora", "prompt"]
AdapterStatus = Literal["registered", "rejected"]
AdapterObjective = Literal["sft", "dpo", "kto", "soup"]
ALIGNED_OBJECTIVES: tuple[AdapterObjective, ...] = ("dpo", "kto", "soup")


class AdapterRecord(Record):
    """One trained per-user adapter: where its weights are and how it was made and measured.

    `sources` are the events its training examples hold: a model cannot unlearn one message,
    so forgetting any of them deletes the adapter (record and weights). `heldout_ids` are the
    user's newer messages it was measured on, never trained on. A `rejected`
    adapter did not beat the base model on held-out messages; its record stays (so the
    planner and the CLI can say why there is none) but it has no weights.
    """

    kind: Literal["adapter"] = "adapter"
    id: RecordId = ""  # type: ignore[assignment]  # filled from kind and data hash when empty
    adapter_kind: AdapterKind
    status: AdapterStatus
    base_model: Annotated[str, Field(min_length=1, max_length=200)]
    data_hash: Annotated[str, Field(min_length=8, max_length=128)]
    example_count: Annotated[int, Field(ge=0)]
    heldout_count: Annotated[int, Field(ge=0)]
    metrics: dict[str, float] = Field(default_factory=dict)
    path: Annotated[str, Field(max_length=4_000)] | None = None
    sources: list[RecordId] = Field(default_factory=list)
    heldout_ids: list[RecordId] = Field(default_factory=list, description="the user's messages it was gated on")
    speaker: Annotated[str, Field(max_length=200)] = ""
    trained_through: Timestamp | None = None
    reason: Annotated[str, Field(max_length=2_000)] = ""
    objective: AdapterObjective = Field("sft", description="sft: learned from the user's messages; dpo/kto: "
                                        "aligned on their feedback; soup: a weighted merge of style adapters")
    base_adapter: RecordId | None = Field(None, description="the user's adapter this one started from or merged")
    feedback_ids: list[RecordId] = Field(default_factory=list, description="the feedback it was trained on")
    soup_weights: dict[str, float] = Field(default_factory=dict, description="style adapter -> weight, for soups")

    @model_validator(mode="after")
    def _fill_id(self) -> AdapterRecord:
        if not self.id:
            parts = (self.adapter_kind, self.base_model, self.data_hash)
            if self.objective != "sft":  # sft ids stay what they were before objectives existed
                parts = (self.adapter_kind, self.objective, self.base_model, self.data_hash)
            self.__dict__["id"] = stable_id("adp", *parts)
        if self.status == "registered" and not self.path:
            raise ValueError("a registered adapter needs the path of its weights")
        return self

    @property
    def gain(self) -> float:
        """Relative drop in held-out perplexity against the base (0.2 = 20% lower)."""
        return self.metrics.get("gain", 0.0)

    @property
    def aligned(self) -> bool:
        return self.objective in ALIGNED_OBJECTIVES


FeedbackKind = Literal["thumbs", "choice", "edit"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("text may not be blank")
    return value


ShortText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank), AfterValidator(_unicode)]


class PromptMessage(BaseModel):
    """One chat message as it was given to the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(max_length=40_000)]


class Feedback(Record):
    """What the user thought of an answer: a thumb, a choice among answers, or their own edit.

    It keeps the provenance needed to learn from it later: the request, the prompt as the
    model saw it (when known), the answer(s), the memories and adapter behind the answer.
    `sources` are the events of the exchange (request and reply): forgetting either one
    forgets the feedback, and any adapter trained on it.
    """

    kind: Literal["feedback"] = "feedback"
    id: RecordId = Field(default_factory=lambda: f"fbk_{uuid.uuid4().hex[:20]}")
    feedback_kind: FeedbackKind
    query: ShortText
    prompt: list[PromptMessage] = Field(default_factory=list, max_length=200)
    response: ShortText | None = Field(None, description="the answer rated (thumbs) or the draft (edit)")
    rating: Literal["up", "down"] | None = None
    alternatives: list[ShortText] = Field(default_factory=list, max_length=16)
    chosen: Annotated[int, Field(ge=0)] | None = None
    edited: ShortText | None = None
    comment: Annotated[str, Field(max_length=2_000)] | None = None
    backend: Annotated[str, Field(max_length=40)] | None = None
    adapter_id: RecordId | None = None
    memory_ids: list[RecordId] = Field(default_factory=list, max_length=200)
    reply_event_id: RecordId | None = None
    sources: list[RecordId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> Feedback:
        if self.feedback_kind == "thumbs" and (self.rating is None or self.response is None):
            raise ValueError("thumbs feedback needs the response and a rating ('up' or 'down')")
        if self.feedback_kind == "choice":
            if len(self.alternatives) < 2 or self.chosen is None or self.chosen >= len(self.alternatives):
                raise ValueError("choice feedback needs at least two alternatives and the index of the chosen one")
            if len({a.strip() for a in self.alternatives}) < len(self.alternatives):
                raise ValueError("choice alternatives must differ from each other")
        if self.feedback_kind == "edit":
            if self.response is None or self.edited is None:
                raise ValueError("edit feedback needs the draft response and the edited text")
            if self.edited.strip() == self.response.strip():
                raise ValueError("the edited text is the same as the draft")
        return self

    @property
    def chosen_text(self) -> str | None:
        return self.alternatives[self.chosen] if self.chosen is not None and self.alternatives else None


class StoreItem(Record):
    """A LangGraph store item (any JSON object under a namespace and key) kept in the scope of
    the user its namespace names, so it is searched, exported and forgotten with that user.
    `text` is what search indexes; empty when the item was put with `index=False`."""

    kind: Literal["item"] = "item"
    id: RecordId = ""  # type: ignore[assignment]  # filled from namespace and key
    namespace: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=20)]
    key: Annotated[str, Field(min_length=1, max_length=1000)]
    value: dict[str, Any]
    text: Annotated[str, Field(max_length=20_000)] = ""
    updated_at: Timestamp = Field(default_factory=now)
    ttl_minutes: Annotated[float, Field(gt=0)] | None = None
    expires_at: Timestamp | None = None

    @model_validator(mode="after")
    def _fill_id(self) -> StoreItem:
        if not self.id:
            self.__dict__["id"] = item_id(self.namespace, self.key)
        return self

    def index_text(self) -> str:
        return self.text

    def expired(self, when: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (when or now())


def item_id(namespace: Sequence[str], key: str) -> str:
    """The record id of a store item: its namespace and key, hashed (both may hold any text)."""
    return stable_id("itm", json.dumps([list(namespace), key]))


AnyRecord = Event | Episode | Fact | Entity | Relation | ReflectionRun | AdapterRecord | Feedback | StoreItem
RECORD_TYPES: dict[str, type[Record]] = {
    "event": Event, "episode": Episode, "fact": Fact, "entity": Entity, "relation": Relation,
    "reflection": ReflectionRun, "adapter": AdapterRecord, "feedback": Feedback, "item": StoreItem,
}


class ProfileValue(BaseModel):
    """One profile value and the facts it rests on."""

    value: str
    fact_ids: list[str]


class StyleProfile(BaseModel):
    verbosity: ProfileValue | None = None
    formality: ProfileValue | None = None
    language: ProfileValue | None = None
    tone: ProfileValue | None = None


class Profile(BaseModel):
    """A typed view of a user derived from their active facts; every field names its facts."""

    name: ProfileValue | None = None
    location: ProfileValue | None = None
    occupation: ProfileValue | None = None
    interests: list[ProfileValue] = Field(default_factory=list)
    dislikes: list[ProfileValue] = Field(default_factory=list)
    relationships: list[ProfileValue] = Field(default_factory=list)
    plans: list[ProfileValue] = Field(default_factory=list)
    instructions: list[ProfileValue] = Field(default_factory=list)
    style: StyleProfile = Field(default_factory=StyleProfile)


def record_time(record: Record) -> datetime:
    """When a record was said or became true: what recency and timelines order by."""
    if isinstance(record, Event):
        return record.time
    if isinstance(record, Episode):
        return record.start
    if isinstance(record, Fact):
        return record.valid_from or record.created_at
    if isinstance(record, StoreItem):
        return record.updated_at
    return record.created_at


def record_sources(record: Record) -> list[str]:
    """The event ids behind a record; an event is its own source."""
    return [record.id] if isinstance(record, Event) else list(getattr(record, "sources", []))
