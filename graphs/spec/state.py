"""The state schemas a spec can name, and the merged TypedDict a spec's graph runs on."""

from __future__ import annotations

from typing import Annotated, Any, get_type_hints

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from personagraph.graphs.reflection.graph import ReflectionState
from personagraph.graphs.respond.graph import RespondState
from typing_extensions import (
    TypedDict,  # pydantic (LangGraph Server's input schemas) needs this one on Python < 3.12
)

from .errors import FieldPath


class MessagesState(TypedDict, total=False):
    """A tool-using chat: the run config names the user (as it does for tools), the state the
    memory thread, the request, the conversation so far and the answer."""

    thread_id: str
    query: str
    messages: Annotated[list[AnyMessage], add_messages]
    approved: bool
    answer: str
    event_ids: list[str]


STATE_SCHEMAS: dict[str, type] = {"respond": RespondState, "reflection": ReflectionState, "messages": MessagesState}
FIELD_TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict, "any": Any}


def state_fields(schemas: list[str], fields: dict[str, str]) -> tuple[dict[str, Any], list[tuple[FieldPath, str]]]:
    """The merged fields and their types, with a problem for each field declared twice differently."""
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    problems: list[tuple[FieldPath, str]] = []
    for n, name in enumerate(schemas):
        for key, kind in get_type_hints(STATE_SCHEMAS[name], include_extras=True).items():
            if key in merged and merged[key] != kind:
                problems.append((("state", "schemas", n), f"{owner[key]!r} and {name!r} both have a field {key!r}, of different types"))
            merged.setdefault(key, kind)
            owner.setdefault(key, name)
    for key, kind in fields.items():
        if key in merged:
            problems.append((("state", "fields", key), f"{key!r} is already a field of the {owner[key]!r} state"))
        else:
            merged[key] = FIELD_TYPES[kind]
    return merged, problems


def state_type(schemas: list[str], fields: dict[str, str]) -> type:
    """The TypedDict of a valid spec's state (a named schema itself when nothing is added)."""
    if len(schemas) == 1 and not fields:
        return STATE_SCHEMAS[schemas[0]]
    merged, _ = state_fields(schemas, fields)
    return TypedDict("SpecState", merged, total=False)  # type: ignore[operator]
