"""personagraph behind LangGraph Server (`langgraph dev`, or a deployment): what `langgraph.json` names.

    {
      "dependencies": ["."],
      "graphs": {
        "respond": "personagraph.server:respond",
        "reflection": "personagraph.server:reflection",
        "assistant_from_spec": "personagraph.server:assistant_from_spec"
      },
      "store": {"path": "personagraph.server.store"}
    }

The graph entries are factories (LangGraph Server calls them when it needs the graph) and the
store entry is an async context manager factory (entered once at startup, left at shutdown).
All of them share one process-wide `Assistant`, opened on first use from `Settings()` (the
`PERSONAGRAPH_*` environment variables, or a `.env` file in the working directory), so the
memory is opened once per process: graphs and store read and write the same records and index.

The graphs are compiled without a checkpointer or a store: the server supplies both. The served
`respond` and `assistant_from_spec` graphs run the graph (a subgraph) between two small steps:
`prepare` acts for the user the run names, if it names one (the authenticated user, the runtime
context or `configurable`, as for the memory tools): it fills a missing `user_id` and `tenant`
from the run and refuses an input that names another. Otherwise the input names the user, and a
missing `tenant` comes from the settings. It also fills a missing `thread_id` (the LangGraph
thread's id). `finish` clears the chat history the request used, so the next request in the same
LangGraph thread loads the thread's latest turns from memory rather than the history the
checkpointer kept from the request before.

A file path works too (`"./personagraph/server.py:respond"`, `"./personagraph/server.py:store"`):
the server then loads this file as a separate module, and every copy delegates to the one
`personagraph.server` module, so the process still holds a single `Assistant`.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typing_extensions
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from personagraph.memory import Scope
from personagraph.memory.errors import ConfigurationError, InvalidRecordError
from personagraph.tools import (
    ScopeConflictError,
    ScopeNotConfiguredError,
    scope_from_run,
)

if TYPE_CHECKING:
    from personagraph.assistant import Assistant

__all__ = ["assistant", "assistant_from_spec", "close", "reflection", "respond", "serve_graph", "store"]

CANONICAL = "personagraph.server"
SPEC_ENV = "PERSONAGRAPH_SPEC_PATH"  # the YAML spec `assistant_from_spec` compiles
DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "examples" / "personal_assistant.yaml"


# What a respond request may give (the rest of the respond state is working data and output).
REQUEST_KEYS = ("tenant", "user_id", "thread_id", "query", "user_name", "history", "local_only", "latency_budget_ms")


class _Shared:
    """The process's one Assistant and the graphs built over it, each built once."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._assistant: Assistant | None = None
        self._graphs: dict[str, CompiledStateGraph] = {}
        self._stores = 0  # store contexts entered and not yet left
        self._exit_hook = False

    def assistant(self) -> Assistant:
        with self._lock:
            if self._assistant is None:
                from personagraph.assistant import Assistant
                from personagraph.settings import Settings

                self._assistant = Assistant.open(Settings())
                if not self._exit_hook:  # no store configured: pending reflections still finish
                    atexit.register(self.close)
                    self._exit_hook = True
            return self._assistant

    def graph(self, name: str) -> CompiledStateGraph:
        with self._lock:
            if name not in self._graphs:
                self._graphs[name] = _BUILDERS[name](self.assistant())
            return self._graphs[name]

    def enter_store(self) -> BaseStore:
        with self._lock:
            made = _persona_store(self.assistant())
            self._stores += 1
            return made

    def leave_store(self) -> None:
        with self._lock:
            self._stores -= 1
            if self._stores <= 0:
                self.close()  # the server is shutting down

    def close(self) -> None:
        """Finish pending reflections and release the memory; the next use opens it again."""
        with self._lock:
            assistant, self._assistant = self._assistant, None
            self._graphs.clear()
        if assistant is not None:
            assistant.close()


_SHARED: _Shared | None = None
_SHARED_LOCK = threading.Lock()


def _shared() -> _Shared:
    if __name__ != CANONICAL:  # this file loaded by path: use the package's module, whose state is the one
        import importlib

        return importlib.import_module(CANONICAL)._shared()  # type: ignore[no-any-return]
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = _Shared()
        return _SHARED


# --- what langgraph.json names ------------------------------------------------------------------

def assistant() -> Assistant:
    """The process's Assistant (opened on first use from `Settings()`)."""
    return _shared().assistant()


def close() -> None:
    """Close the process's Assistant (pending reflections finish first)."""
    _shared().close()


async def respond() -> CompiledStateGraph:
    """The respond graph. Input: `user_id` and `query` (also `tenant`, `thread_id`, `history`,
    `user_name`, `local_only`, `latency_budget_ms`); output adds `answer`, `plan`, `items`
    (the memories retrieved), `quotes`, `used`, `event_ids` and `timings_ms`."""
    return await asyncio.to_thread(_shared().graph, "respond")


async def reflection() -> CompiledStateGraph:
    """The reflection graph. Input: `tenant`, `user_id`, `thread_id` (and optionally
    `event_ids`); reflects the thread's unreflected events; output has a `report`."""
    return await asyncio.to_thread(_shared().graph, "reflection")


async def assistant_from_spec() -> CompiledStateGraph:
    """The graph compiled from a YAML spec: `$PERSONAGRAPH_SPEC_PATH`, by default the
    repository's examples/personal_assistant.yaml (not part of an installed package)."""
    return await asyncio.to_thread(_shared().graph, "assistant_from_spec")


@asynccontextmanager
async def store() -> AsyncIterator[BaseStore]:
    """The long-term memory as a LangGraph `BaseStore` (the `/store/*` routes, and the store the
    graphs receive): a PersonaStore over the shared memory. Label `store_user_at` of a namespace
    is the user id, and searches and listings must name one user."""
    shared = _shared()
    made = await asyncio.to_thread(shared.enter_store)
    try:
        yield made
    finally:
        await asyncio.to_thread(shared.leave_store)


# --- the graphs ---------------------------------------------------------------------------------

def _served_respond(assistant: Assistant) -> CompiledStateGraph:
    return serve_graph(assistant.graph, tenant=assistant.settings.tenant, name="respond")


def serve_graph(
    inner: CompiledStateGraph, *, tenant: str, name: str | None = None, fill_thread: bool = True,
) -> CompiledStateGraph:
    """A per-request graph (compiled without a checkpointer) as a server runs it in a thread:
    `prepare` → the graph (a subgraph) → `finish`, over the same state. A run that names a user
    (`scope_from_run`) acts for that user only: an input naming another user or tenant is a
    `ScopeConflictError`. `fill_thread`: an input without `thread_id` gets the server thread's
    (not for reflection, where no thread means every thread of the user)."""
    keys = set(inner.builder.channels)

    def prepare(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        try:
            run = scope_from_run(config, tenant)
        except ScopeNotConfiguredError:  # the run names no user: the input must
            if "user_id" in keys and not state.get("user_id"):
                raise InvalidRecordError("the input needs a user_id") from None
            defaults = {"tenant": tenant}
        else:
            defaults = {"user_id": run.user_id, "tenant": run.tenant}
            for key, value in defaults.items():
                if state.get(key) and state[key] != value:
                    raise ScopeConflictError(f"the input names {key} {state[key]!r} but the run acts for {value!r}")
        update = {key: value for key, value in defaults.items() if key in keys and not state.get(key)}
        if fill_thread and "thread_id" in keys and not state.get("thread_id"):
            update["thread_id"] = str((config.get("configurable") or {}).get("thread_id") or "default")
        return update

    def finish(state: dict[str, Any]) -> dict[str, Any]:
        # The checkpointer keeps every key for the thread's next run: a history left here would
        # stop the next request from loading the thread's latest turns.
        return {key: [] for key in ("history", "recent_ids") if key in keys}

    state = inner.builder.state_schema
    hints = typing.get_type_hints(state, include_extras=True)
    asks = {key: hints[key] for key in REQUEST_KEYS if key in hints}
    request = typing_extensions.TypedDict(f"{state.__name__}Input", asks, total=False) if {"user_id", "query"} <= set(asks) else state
    graph = StateGraph(state, input_schema=request)  # type: ignore[arg-type]
    graph.add_node("prepare", prepare)
    graph.add_node("run", inner)
    graph.add_node("finish", finish)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "run")
    graph.add_edge("run", "finish")
    graph.add_edge("finish", END)
    return graph.compile(name=name or inner.name)


def _reflection(assistant: Assistant) -> CompiledStateGraph:
    """The graph the background executor runs, under the same per-user lock (so a served run and
    the executor never reflect the same events twice), acting for the authenticated user only."""
    from personagraph.graphs.reflection.graph import ReflectionState
    from personagraph.graphs.reflection.runner import reflect_batch

    def reflect(state: ReflectionState) -> dict[str, Any]:
        scope = Scope(tenant=state.get("tenant") or assistant.settings.tenant, user_id=state["user_id"])
        return {"report": reflect_batch(assistant.memory, assistant.reflection.graph, scope,
                                        state.get("thread_id") or "", state.get("event_ids") or None)}

    locked = StateGraph(ReflectionState)
    locked.add_node("reflect", reflect)
    locked.add_edge(START, "reflect")
    locked.add_edge("reflect", END)
    return serve_graph(locked.compile(name="reflection"), tenant=assistant.settings.tenant, name="reflection", fill_thread=False)


def _from_spec(assistant: Assistant) -> CompiledStateGraph:
    from personagraph.graphs.spec import SpecRuntime, compile_spec, load_spec

    graph = compile_spec(load_spec(_spec_path()), SpecRuntime.from_assistant(assistant))
    return serve_graph(graph, tenant=assistant.settings.tenant, name="assistant_from_spec")


def _spec_path() -> Path:
    """`$PERSONAGRAPH_SPEC_PATH`, else the repository's example spec where it exists."""
    if configured := os.environ.get(SPEC_ENV):
        return Path(configured)
    if not DEFAULT_SPEC.is_file():  # an installed package: examples/ is not shipped
        raise ConfigurationError(f"no graph spec at {DEFAULT_SPEC}: set {SPEC_ENV} to a spec file (YAML or JSON)")
    return DEFAULT_SPEC


_BUILDERS = {"respond": _served_respond, "reflection": _reflection, "assistant_from_spec": _from_spec}


# --- the store ----------------------------------------------------------------------------------

def _persona_store(assistant: Assistant) -> BaseStore:
    from personagraph.memory.persona_store import PersonaStore
    from personagraph.memory.store_namespaces import NamespaceLayout

    # With store_user_at=0, ("alice", ...) is alice's scope in the settings' tenant, the tenant
    # `respond` defaults to. Clients reach this store directly: no search or listing across users.
    settings = assistant.settings
    layout = NamespaceLayout(user_at=settings.store_user_at, tenant=settings.tenant)
    return PersonaStore(assistant.memory, layout=layout, allow_unscoped=False)
