"""The spec format's JSON Schema, for editors and other tools (published as
schemas/graph-spec.schema.json): `GraphSpec`'s schema, plus, for each built-in node factory and
router, what its params may hold and which route outcomes it has."""

from __future__ import annotations

from typing import Any

from .catalog import NODE_FACTORIES, ROUTER_FACTORIES
from .model import GraphSpec
from .registry import Params


def spec_json_schema() -> dict[str, Any]:
    schema = GraphSpec.model_json_schema()
    defs = schema.setdefault("$defs", {})
    defs["NodeSpec"]["allOf"] = [
        _when("uses", name, {"params": _params(factory.params, defs)}) for name, factory in sorted(NODE_FACTORIES.items())
    ]
    defs["BranchSpec"]["allOf"] = [
        _when("router", name, {"params": _params(factory.params, defs), "routes": {"propertyNames": {"enum": list(factory.outcomes)}}})
        for name, factory in sorted(ROUTER_FACTORIES.items())
    ]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _when(key: str, name: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {key: {"const": name}}, "required": [key]}, "then": {"properties": then}}


def _params(model: type[Params], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(schema.pop("$defs", {}))
    return schema
