"""Named node and router factories: what a spec's `uses` and `router` may say.

Each factory declares a params model that rejects unknown keys (so a typo in params is an
error with its place), the state schema its node works on, and for routers the outcomes it can
name. `NODE_FACTORIES` and `ROUTER_FACTORIES` are plain dicts: register your own with
`register_node` / `register_router` before loading specs that use them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from .runtime import SpecRuntime

Node = Callable[..., Any]  # a LangGraph node: state (and optionally config) in, update out
Router = Callable[[Any], str]  # state in, one of the router's outcomes out


class Params(BaseModel):
    """Base of every factory's params: unknown keys are errors, values are never changed after."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class NodeFactory:
    name: str
    summary: str
    state: str  # the STATE_SCHEMAS entry whose fields the node reads and writes
    build: Callable[[SpecRuntime, Any], Node]  # (runtime, validated params) -> node
    params: type[Params] = NoParams


@dataclass(frozen=True)
class RouterFactory:
    name: str
    summary: str
    state: str
    outcomes: tuple[str, ...]
    build: Callable[[SpecRuntime, Any], Router]
    params: type[Params] = NoParams


NODE_FACTORIES: dict[str, NodeFactory] = {}
ROUTER_FACTORIES: dict[str, RouterFactory] = {}


def register_node(factory: NodeFactory) -> NodeFactory:
    NODE_FACTORIES[factory.name] = factory
    return factory


def register_router(factory: RouterFactory) -> RouterFactory:
    ROUTER_FACTORIES[factory.name] = factory
    return factory
