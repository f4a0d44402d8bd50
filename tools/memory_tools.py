"""LangChain tools over one `Memory` for any agent: search, remember, forget, profile, graph,
explain, and feedback when a `FeedbackRecorder` is given.

Each call first resolves its user from the run (`scope_from_run`: the runtime context or the
config, never the model's arguments) and then reads and writes that user's scope only: a
record id from the model is looked up there, so another user's id is "not found".
Mistakes a model can fix (an unknown id, a bad date) come back as the tool's answer, marked
as an error; a run that names no user raises, since no model can fix that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, get_args

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from personagraph.memory.api import ForgetReceipt, Memory
from personagraph.memory.changes import ChangeSet
from personagraph.memory.errors import (
    InvalidRecordError,
    InvalidScopeError,
    RecordNotFoundError,
    shown,
)
from personagraph.memory.graph import ScopeGraph
from personagraph.memory.models import (
    Episode,
    Event,
    Fact,
    FactKind,
    Record,
    RecordKind,
    ReflectionRun,
    entity_key,
)
from personagraph.memory.scope import Scope
from pydantic import BaseModel, ValidationError

from .feedback import FeedbackRecorder, record_feedback_tool
from .memory_views import (
    as_data,
    entity_name,
    episode_view,
    event_view,
    fact_view,
    item_view,
    relation_view,
)
from .run_scope import scope_from_run
from .tool_args import (
    ExplainArgs,
    ForgetArgs,
    GraphArgs,
    ProfileArgs,
    RememberArgs,
    SearchArgs,
    SearchKind,
)

REMEMBERED_THREAD = "remembered"  # where the requests to remember are kept, apart from chats
MAX_RELATIONS = 50
MAX_PATHS = 20


def memory_tools(memory: Memory, feedback: FeedbackRecorder | None = None, *, default_tenant: str = "default") -> list[BaseTool]:
    """The memory tools for an agent; `record_feedback` too when a recorder is given.
    `default_tenant` is the tenant of runs that name none (the deployment's)."""
    body = _MemoryTools(memory, default_tenant)
    tools = [
        _tool(body.search, "search_memory", SearchArgs,
              "Search what you know about the user: their messages, conversation summaries and facts. "
              "Returns quoted memories with ids (for explain and forget)."),
        _tool(body.remember, "remember", RememberArgs,
              "Store something the user explicitly asked you to remember. Give a relation "
              "(predicate and object) when there is one, so graph queries find it."),
        _tool(body.forget, "forget", ForgetArgs,
              "Delete a fact or message the user asked you to forget, and everything derived from it. "
              "Forgetting a fact deletes the messages it came from, so other facts from them go too."),
        _tool(body.profile, "get_profile", ProfileArgs,
              "The user's profile: name, location, occupation, interests, dislikes, relationships, plans, "
              "instructions and style, each with the ids of the facts behind it."),
        _tool(body.query_graph, "query_graph", GraphArgs,
              "Relations around a person, place or thing in the user's memory, or the paths between two, "
              "now or as of a date."),
        _tool(body.explain, "explain", ExplainArgs,
              "Why you believe a fact (or an episode): the messages it came from, what it replaced or was "
              "replaced by, and its relations."),
    ]
    if feedback is not None:
        tools.append(_answering_errors(record_feedback_tool(feedback, default_tenant=default_tenant)))
    return tools


def _tool(func: Callable[..., str], name: str, args: type[BaseModel], description: str) -> BaseTool:
    return StructuredTool.from_function(
        func=func, name=name, args_schema=args, description=description, handle_tool_error=True,
    )


def _answering_errors(tool: BaseTool) -> BaseTool:
    """The feedback tool raises on an unknown reply id; among these tools it answers instead,
    so a wrong id from the model does not end the agent's run."""
    assert isinstance(tool, StructuredTool) and tool.func is not None and isinstance(tool.args_schema, type)
    func = tool.func

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        with _model_errors():
            return func(*args, **kwargs)

    return _tool(guarded, tool.name, tool.args_schema, tool.description)


@contextmanager
def _model_errors() -> Iterator[None]:
    """Turn errors about the model's arguments into a tool answer the model can act on.
    A run without a valid user stays an error: no model can fix that."""
    try:
        yield
    except InvalidScopeError:
        raise
    except (RecordNotFoundError, InvalidRecordError, ValidationError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ToolException(message) from exc


class _MemoryTools:
    """The tools' bodies over one Memory; each takes the run's config, never a scope."""

    def __init__(self, memory: Memory, default_tenant: str) -> None:
        self.memory = memory
        self.default_tenant = default_tenant

    def _scope(self, config: RunnableConfig) -> Scope:
        return scope_from_run(config, self.default_tenant)

    def search(
        self, query: str, kinds: list[SearchKind] | None = None, k: int = 8, as_of: datetime | None = None,
        *, config: RunnableConfig,
    ) -> str:
        scope = self._scope(config)
        with _model_errors():
            # Store items are LangMem's and the store's to manage: these tools show what they can act on.
            result = self.memory.search(scope, query, kinds=kinds or list(get_args(SearchKind)), k=k, as_of=as_of)
        return as_data(memories=[item_view(item) for item in result.items])

    def remember(
        self, text: str, kind: FactKind = "other", subject: str | None = None, predicate: str | None = None,
        object: str | None = None, replaces: str | None = None, *, config: RunnableConfig,
    ) -> str:
        """Keep the request as an event and the fact on it, so forgetting either forgets both.
        The event is marked as reflected: reflection should not extract it a second time."""
        scope = self._scope(config)
        with _model_errors():
            if replaces is not None and self.memory.get_fact(scope, replaces).status != "active":
                raise InvalidRecordError(f"fact {replaces!r} is no longer active; only an active fact can be replaced")
            event = self.memory.add_event(scope, Event(
                speaker=scope.user_id, role="user", text=text, thread_id=REMEMBERED_THREAD, metadata={"via": "remember"},
            ))
            fact = Fact(
                text=text, fact_kind=kind, subject=(subject or scope.user_id) if predicate else None,
                predicate=predicate, object=object, valid_from=event.time, sources=[event.id],
            )
            run = ReflectionRun(thread_id=event.thread_id, sources=[event.id], status="done",
                                reason="stored as asked by the remember tool", fact_ids=[fact.id])
            self.memory.apply(scope, ChangeSet(
                add=[] if replaces else [fact], supersede=[(replaces, fact)] if replaces else [], extra=[run],
            ))
        return as_data(remembered=fact_view(fact), source_event=event.id, replaced=replaces)

    def forget(self, memory_id: str, *, config: RunnableConfig) -> str:
        """A message goes with everything resting on it alone; a fact goes with its messages.
        A fact with no message left behind it is retracted (it has nothing to cascade from)."""
        scope = self._scope(config)
        with _model_errors():
            record = self._find(scope, memory_id, ("event", "fact"))
        if isinstance(record, Event):
            return _forgotten(memory_id, self._forget_events(scope, [record.id]))
        sources = self.memory.records.get_many(scope, "event", record.sources)  # type: ignore[attr-defined]
        if not sources:
            self.memory.retract_fact(scope, record.id)
            return as_data(forgotten=memory_id, retracted=True, events_deleted=[])
        return _forgotten(memory_id, self._forget_events(scope, sorted(sources)))

    def _forget_events(self, scope: Scope, event_ids: list[str]) -> list[ForgetReceipt]:
        """Forget each event still there: a parallel call in the same step may have taken one already."""
        receipts = []
        for event_id in event_ids:
            try:
                receipts.append(self.memory.forget_event(scope, event_id))
            except RecordNotFoundError:
                continue
        return receipts

    def profile(self, *, config: RunnableConfig) -> str:
        scope = self._scope(config)
        return as_data(profile=self.memory.profile(scope).model_dump(mode="json", exclude_defaults=True))

    def query_graph(
        self, entity: str, to: str | None = None, as_of: datetime | None = None, hops: int | None = None,
        *, config: RunnableConfig,
    ) -> str:
        scope = self._scope(config)
        graph = self.memory.graph(scope)
        with _model_errors():
            source = _entity(graph, entity)
            target = _entity(graph, to) if to is not None else None
        found: dict[str, Any] = {"entity": entity_name(graph, source), "as_of": as_of}
        if target is None:
            relations = graph.neighbours(source, as_of, hops or 1)
            return as_data(**found, relations=[relation_view(graph, r) for r in relations[:MAX_RELATIONS]],
                           left_out=max(0, len(relations) - MAX_RELATIONS))
        paths = graph.paths(source, target, as_of, hops or 3)
        return as_data(**found, to=entity_name(graph, target),
                       paths=[[relation_view(graph, r) for r in path] for path in paths[:MAX_PATHS]],
                       left_out=max(0, len(paths) - MAX_PATHS))

    def explain(self, memory_id: str, *, config: RunnableConfig) -> str:
        scope = self._scope(config)
        with _model_errors():
            record = self._find(scope, memory_id, ("fact", "episode"))
        said = self.memory.records.get_many(scope, "event", record.sources).values()  # type: ignore[attr-defined]
        sources = [event_view(e) for e in sorted(said, key=lambda e: (e.time, e.id))]  # type: ignore[attr-defined]
        if isinstance(record, Episode):
            return as_data(episode=episode_view(record), sources=sources)
        assert isinstance(record, Fact)
        successor = self.memory.records.get(scope, "fact", record.superseded_by) if record.superseded_by else None
        replaced = self.memory.records.list(scope, "fact", {"superseded_by": record.id})
        graph = self.memory.graph(scope)
        return as_data(
            fact=fact_view(record), sources=sources,
            supersedes=[fact_view(f) for f in replaced],  # type: ignore[arg-type]
            superseded_by=fact_view(successor) if isinstance(successor, Fact) else None,
            relations=[relation_view(graph, r) for r in self.memory.records.list(scope, "relation", {"fact_id": record.id})],  # type: ignore[arg-type]
        )

    def _find(self, scope: Scope, record_id: str, kinds: Sequence[RecordKind]) -> Record:
        """A record of this user by id, whatever its kind among `kinds`."""
        for kind in kinds:
            if (record := self.memory.records.get(scope, kind, record_id)) is not None:
                return record
        raise RecordNotFoundError(f"no {' or '.join(kinds)} {shown(record_id)} in this user's memory")


def _entity(graph: ScopeGraph, name: str) -> str:
    """The entity a name means: its exact name first, then a name or alias inside it."""
    if (exact := entity_key(name)) in graph.graph:
        return exact
    if found := graph.entities_in(name):
        return found[0]
    raise RecordNotFoundError(f"nothing called {shown(name)} in this user's memory")


def _forgotten(memory_id: str, receipts: list[ForgetReceipt]) -> str:
    deleted: dict[str, int] = {}
    for receipt in receipts:
        for kind, count in receipt.records_deleted.items():
            deleted[kind] = deleted.get(kind, 0) + count
    return as_data(
        forgotten=memory_id, events_deleted=[r.target.removeprefix("event:") for r in receipts],
        deleted=deleted, complete=all(r.complete for r in receipts),
    )
