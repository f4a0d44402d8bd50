"""`compile_spec`: a checked spec and a runtime in, a compiled LangGraph `StateGraph` out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from .catalog import NODE_FACTORIES, ROUTER_FACTORIES
from .check import branch_targets, check_spec
from .errors import SpecError, SpecIssue, Unavailable
from .model import END as SPEC_END
from .model import BranchSpec, GraphSpec, NodeSpec
from .registry import Node, Router
from .runtime import SpecRuntime
from .state import state_type


def compile_spec(
    spec: GraphSpec, runtime: SpecRuntime, *, checkpointer: Checkpointer = None, store: BaseStore | None = None,
) -> CompiledStateGraph:
    """The spec's graph over the runtime. Specs built in code are checked here as `load_spec`
    checks files; a node whose needs the runtime cannot meet is an error naming that node."""
    source = spec.source
    if problems := check_spec(spec):
        raise SpecError([source.issue(path, message) for path, message in problems])
    issues: list[SpecIssue] = []

    def guarded(at: tuple[str, int], build: Callable[[], Any]) -> Any:
        try:
            return build()
        except Unavailable as exc:
            issues.append(source.issue((*at, *exc.path), str(exc)))
            return None

    def node(n: int, node: NodeSpec) -> Node:
        factory = NODE_FACTORIES[node.uses]
        return guarded(("nodes", n), lambda: factory.build(runtime, factory.params.model_validate(node.params)))

    def router(n: int, branch: BranchSpec) -> Router:
        factory = ROUTER_FACTORIES[branch.router]
        return guarded(("branches", n), lambda: factory.build(runtime, factory.params.model_validate(branch.params)))

    graph = build_graph(spec, node, router)
    if issues:
        raise SpecError(issues)
    return graph.compile(checkpointer=checkpointer, store=store, name=spec.name or "graph")


def build_graph(
    spec: GraphSpec, node: Callable[[int, NodeSpec], Node], router: Callable[[int, BranchSpec], Router],
) -> StateGraph:
    """The spec's StateGraph with the nodes and routers that `node` and `router` make; a None from
    either (a factory that could not be built, reported by `compile_spec`) becomes a stand-in that
    must never run."""
    graph = StateGraph(state_type(list(spec.state.schemas), dict(spec.state.fields)))
    for n, spec_node in enumerate(spec.nodes):
        graph.add_node(spec_node.id, node(n, spec_node) or _unbuilt)
    graph.add_edge(START, spec.entry)
    for edge in spec.edges:
        graph.add_edge(edge.source, edge.target)
    for n, branch in enumerate(spec.branches):
        path_map = {outcome: END if target == SPEC_END else target for outcome, target in branch_targets(branch).items()}
        graph.add_conditional_edges(branch.source, router(n, branch) or _unbuilt, path_map)  # type: ignore[arg-type]
    for finish in spec.finish:
        graph.add_edge(finish, END)
    return graph


def _unbuilt(state: Any) -> Any:
    raise AssertionError("a node that failed to build was run")  # compile_spec raises before any run
