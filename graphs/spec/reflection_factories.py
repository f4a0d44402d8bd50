"""Factories over the reflection graph's steps and its routing, so a spec can rewire reflection
(leave the model out, add a step before the write) with the steps `build_reflection_graph` uses."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END

from .errors import Unavailable
from .registry import NodeFactory, RouterFactory, register_node, register_router
from .runtime import SpecRuntime

STEPS = {
    "load": "the thread's unreflected events (or the ones named in event_ids)",
    "gate": "skips chit-chat without a model call",
    "explicit": "rule-based extraction of what was said outright",
    "extract": "the reflection model's extraction (needs a reflection model)",
    "validate": "checks the model's output; invalid output is retried, then given up",
    "ground": "keeps only candidates their source messages support",
    "resolve": "links entities to the user's known ones",
    "reconcile": "adds, supersedes or skips each fact against what is known",
    "write": "writes facts, entities, the episode and the run record in one go",
}


def _step(name: str) -> Any:
    def build(runtime: SpecRuntime, params: Any) -> Any:
        if name == "extract" and runtime.reflection_model is None:
            raise Unavailable("reflection.extract needs a reflection model, and the runtime has none")
        return getattr(runtime.reflection_nodes(), name)

    return build


def _route(method: str, outcomes: dict[str, str]) -> Any:
    """A router naming outcomes where the reflection graph names its next node."""

    def build(runtime: SpecRuntime, params: Any) -> Any:
        decide = getattr(runtime.reflection_nodes(), method)
        return lambda state: outcomes[decide(state)]

    return build


for _name, _summary in STEPS.items():
    register_node(NodeFactory(f"reflection.{_name}", _summary, "reflection", _step(_name)))

for _name, _summary, _method, _outcomes in (
    ("has_events", "whether load found events to reflect", "after_load", {"gate": "events", END: "empty"}),
    ("memorable", "whether the gate found the batch worth remembering", "after_gate", {"explicit": "memorable", "write": "chitchat"}),
    ("uses_model", "whether a reflection model extracts too", "after_explicit", {"extract": "model", "ground": "rules"}),
    ("retry", "whether invalid model output is tried again", "after_validate", {"extract": "retry", "ground": "done"}),
):
    register_router(RouterFactory(
        f"reflection.{_name}", _summary, "reflection", tuple(_outcomes.values()), _route(_method, _outcomes),
    ))
