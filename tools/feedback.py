"""Feedback capture: thumbs, choices and edits on answers, kept as `Feedback` records.

Callers name an answer by the id of its reply event (what the respond graph recorded, and
what a bot keeps next to the message it posted). The recorder looks up the request that
led to it and the answer's provenance: the prompt, the memories quoted and the adapter come
from a bounded log of recent replies, filled by whoever generated them; the backend and the
memories used come from the reply event itself when the log no longer has it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from personagraph.memory.api import Memory
from personagraph.memory.errors import InvalidRecordError, RecordNotFoundError, shown
from personagraph.memory.models import Event, Feedback, PromptMessage
from personagraph.memory.scope import Scope
from pydantic import BaseModel, ConfigDict, Field

from .run_scope import scope_from_run

THUMBS_UP = frozenset({"👍", "+1", "thumbsup", "thumbs_up", "like", "up"})
THUMBS_DOWN = frozenset({"👎", "-1", "thumbsdown", "thumbs_down", "dislike", "down"})


@dataclass(frozen=True)
class ReplyProvenance:
    """How one answer was made: what the model saw and what it stood on."""

    prompt: tuple[PromptMessage, ...] = ()
    memory_ids: tuple[str, ...] = ()
    backend: str | None = None
    adapter_id: str | None = None
    generator: str | None = None  # "local" when the answer never left the machine


@dataclass
class _Exchange:
    request: Event
    reply: Event
    provenance: ReplyProvenance = field(default_factory=ReplyProvenance)


class FeedbackRecorder:
    """Turns a user's reaction to an answer into a `Feedback` record of that user."""

    def __init__(
        self,
        memory: Memory,
        *,
        on_recorded: Callable[[Scope, Feedback], None] | None = None,
        keep_replies: int = 1024,
    ) -> None:
        self.memory = memory
        self.on_recorded = on_recorded
        self.keep_replies = keep_replies
        self._replies: OrderedDict[tuple[Scope, str], ReplyProvenance] = OrderedDict()
        self._lock = threading.Lock()

    # --- the reply log -----------------------------------------------------------------------

    def remember(self, scope: Scope, reply_event_id: str, provenance: ReplyProvenance) -> None:
        with self._lock:
            self._replies[(scope, reply_event_id)] = provenance
            self._replies.move_to_end((scope, reply_event_id))
            while len(self._replies) > self.keep_replies:
                self._replies.popitem(last=False)

    def drop(self, scope: Scope) -> int:
        """Forget the logged provenance of one user's replies (when the user is forgotten)."""
        with self._lock:
            doomed = [key for key in self._replies if key[0] == scope]
            for key in doomed:
                del self._replies[key]
        return len(doomed)

    def provenance(self, scope: Scope, reply_event_id: str) -> ReplyProvenance | None:
        with self._lock:
            return self._replies.get((scope, reply_event_id))

    def count(self, scope: Scope) -> int:
        with self._lock:
            return sum(1 for key in self._replies if key[0] == scope)

    def request_of(self, scope: Scope, reply_event_id: str) -> Event:
        """The user's message a reply answered."""
        return self._exchange(scope, reply_event_id).request

    # --- feedback ------------------------------------------------------------------------------

    def thumbs(self, scope: Scope, reply_event_id: str, up: bool, *, comment: str | None = None) -> Feedback:
        exchange = self._exchange(scope, reply_event_id)
        return self._record(scope, exchange, feedback_kind="thumbs", response=exchange.reply.text,
                            rating="up" if up else "down", comment=comment)

    def edit(self, scope: Scope, reply_event_id: str, edited: str, *, comment: str | None = None) -> Feedback:
        exchange = self._exchange(scope, reply_event_id)
        return self._record(scope, exchange, feedback_kind="edit", response=exchange.reply.text,
                            edited=edited, comment=comment)

    def choose(
        self, scope: Scope, reply_event_id: str, alternatives: Sequence[str], chosen: int, *, comment: str | None = None,
    ) -> Feedback:
        """The user picked `alternatives[chosen]` among answers to the request of this reply
        (the reply itself is usually one of them; regenerated answers are the others)."""
        exchange = self._exchange(scope, reply_event_id)
        return self._record(scope, exchange, feedback_kind="choice", alternatives=list(alternatives),
                            chosen=chosen, comment=comment)

    def reaction(self, scope: Scope, reply_event_id: str, reaction: str) -> Feedback | None:
        """A chat reaction as feedback: thumbs up or down; any other reaction is not feedback."""
        name = reaction.strip().strip(":").lower() if reaction.strip() not in ("👍", "👎") else reaction.strip()
        if name in THUMBS_UP or name in THUMBS_DOWN:
            return self.thumbs(scope, reply_event_id, up=name in THUMBS_UP)
        return None

    def _exchange(self, scope: Scope, reply_event_id: str) -> _Exchange:
        if not isinstance(reply_event_id, str) or not reply_event_id:
            raise InvalidRecordError("feedback needs the id of the reply it is about")
        reply = self.memory.records.get(scope, "event", reply_event_id)
        if not isinstance(reply, Event):
            raise RecordNotFoundError(f"no reply {shown(reply_event_id)} for this user")
        if reply.role != "assistant":
            raise InvalidRecordError(f"event {reply_event_id!r} is a {reply.role} message, not an answer")
        provenance = self.provenance(scope, reply_event_id) or ReplyProvenance(
            memory_ids=tuple(i for i in reply.metadata.get("used", "").split(",") if i),
            backend=reply.metadata.get("backend"),
            adapter_id=reply.metadata.get("adapter") or None,
            generator=reply.metadata.get("generator"),
        )
        return _Exchange(request=self._request(scope, reply), reply=reply, provenance=provenance)

    def _request(self, scope: Scope, reply: Event) -> Event:
        """The request a reply answered: named in its metadata by the respond graph, else the
        message just before it in its thread. A forgotten request is an error, never a stand-in."""
        if named := reply.metadata.get("request"):
            request = self.memory.records.get(scope, "event", named)
            if not isinstance(request, Event):
                raise RecordNotFoundError(f"the request answered by {reply.id!r} was forgotten")
            return request
        thread = self.memory.events(scope, reply.thread_id)
        before = [e for e in thread if e.time < reply.time or (e.time == reply.time and e.id != reply.id)]
        if not before or before[-1].role != "user":
            raise InvalidRecordError(f"reply {reply.id!r} does not follow a request of this user")
        return before[-1]

    def _record(self, scope: Scope, exchange: _Exchange, **fields: object) -> Feedback:
        p = exchange.provenance
        try:
            feedback = Feedback(
                query=exchange.request.text, prompt=list(p.prompt), memory_ids=list(p.memory_ids),
                backend=p.backend, adapter_id=p.adapter_id, reply_event_id=exchange.reply.id,
                sources=[exchange.request.id, exchange.reply.id], **fields,  # type: ignore[arg-type]
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise InvalidRecordError(f"invalid feedback: {exc}") from exc
        stored = self.memory.add_feedback(scope, feedback)
        if self.on_recorded is not None:
            self.on_recorded(scope, stored)
        return stored


_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def prompt_messages(messages: Sequence[BaseMessage]) -> list[PromptMessage]:
    """LangChain messages as kept in feedback (tool and other messages are left out)."""
    return [PromptMessage(role=_ROLES[m.type], content=str(m.text)) for m in messages if m.type in _ROLES]


def to_langchain(prompt: Sequence[PromptMessage]) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m.role](m.content) for m in prompt]


class _FeedbackArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")  # no user_id or scope smuggled in by the model

    reply_id: str = Field(description="id of the answer the user reacted to")
    rating: Literal["up", "down"] = Field(description="'up' if the user liked the answer, 'down' if not")
    comment: Annotated[str, Field(max_length=2000)] | None = Field(None, description="what the user said about it, if anything")


def record_feedback_tool(recorder: FeedbackRecorder, *, default_tenant: str = "default") -> BaseTool:
    """A LangChain tool an agent can call when the user says what they think of an answer."""

    def record(reply_id: str, rating: str, comment: str | None = None, *, config: RunnableConfig) -> str:
        feedback = recorder.thumbs(scope_from_run(config, default_tenant), reply_id, up=rating == "up", comment=comment)
        return f"recorded {feedback.rating} feedback {feedback.id} on {reply_id}"

    return StructuredTool.from_function(
        func=record, name="record_feedback", args_schema=_FeedbackArgs,
        description="Record the user's thumbs up or down (and their comment) on one of your earlier answers.",
    )
