"""The spec's shape: pydantic models that reject unknown keys, so a typo is an error, not a default.

What the models cannot see alone (registered names, each factory's params, references between
nodes, reachability) is checked by `check.py` against the registry.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .source import SourceMap

END = "END"  # a branch route that ends the graph

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64, description="a node id: letters, digits, _ and -")]
Target = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64, description="a node id, or END to end the graph")]
StateName = Literal["respond", "reflection", "messages"]
FieldType = Literal["str", "int", "float", "bool", "list", "dict", "any"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)


class StateSpec(_Strict):
    """The graph's state: named schemas from the registry, merged, plus fields of its own."""

    schemas: list[StateName] = Field(min_length=1, description="respond, reflection and/or messages")
    fields: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], FieldType] = Field(
        default_factory=dict, description="extra state fields and their types (the last write wins)",
    )


class NodeSpec(_Strict):
    id: NodeId
    uses: str = Field(description="a registered node factory, e.g. memory.recall")
    params: dict[str, Any] = Field(default_factory=dict, description="the factory's parameters (each factory has its own)")


class EdgeSpec(_Strict):
    source: NodeId = Field(alias="from")
    target: NodeId = Field(alias="to")


class BranchSpec(_Strict):
    """After `from`, the router names an outcome and the graph goes where `routes` maps it."""

    source: NodeId = Field(alias="from")
    router: str = Field(description="a registered router, e.g. planner.backend")
    params: dict[str, Any] = Field(default_factory=dict, description="the router's parameters")
    routes: dict[str, Target] = Field(min_length=1, description="outcome -> node id (or END)")
    default: Target | None = Field(None, description="where outcomes missing from routes go")


class GraphSpec(_Strict):
    """A LangGraph StateGraph written down: state, nodes from factories, edges and branches."""

    model_config = ConfigDict(title="personagraph graph spec")

    version: Literal[1] = Field(description="the spec format's version")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)] | None = None
    description: str = ""
    state: StateSpec
    entry: NodeId = Field(description="the node the graph starts at")
    finish: list[NodeId] = Field(min_length=1, description="nodes after which the graph ends")
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(default_factory=list)
    branches: list[BranchSpec] = Field(default_factory=list)

    _source: SourceMap | None = PrivateAttr(None)

    @property
    def source(self) -> SourceMap:
        """Where the spec was read from (an unnamed map for specs built in code)."""
        return self._source or SourceMap(f"<spec {self.name or 'unnamed'}>")
