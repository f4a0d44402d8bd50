"""Declarative graphs: YAML/JSON specs compiled to LangGraph StateGraphs.

    spec = load_spec("examples/personal_assistant.yaml")   # SpecError names file:line: field
    graph = compile_spec(spec, SpecRuntime.from_assistant(assistant), checkpointer=saver)

Drawing to PNG (`personagraph.graphs.spec.png.render_png`) needs Pillow; nothing else here does.
"""

from .catalog import NODE_FACTORIES, ROUTER_FACTORIES
from .compiler import compile_spec
from .draw import diagram, to_mermaid
from .errors import SpecError, SpecIssue
from .loader import load_spec, parse_spec
from .model import BranchSpec, EdgeSpec, GraphSpec, NodeSpec, StateSpec
from .registry import (
    NodeFactory,
    NoParams,
    Params,
    RouterFactory,
    register_node,
    register_router,
)
from .runtime import SpecRuntime
from .schema import spec_json_schema
from .state import STATE_SCHEMAS, MessagesState

__all__ = [
    "NODE_FACTORIES", "ROUTER_FACTORIES", "STATE_SCHEMAS", "BranchSpec", "EdgeSpec", "GraphSpec", "MessagesState",
    "NoParams", "NodeFactory", "NodeSpec", "Params", "RouterFactory", "SpecError", "SpecIssue", "SpecRuntime",
    "StateSpec", "compile_spec", "diagram", "load_spec", "parse_spec", "register_node", "register_router",
    "spec_json_schema", "to_mermaid",
]
