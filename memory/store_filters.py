"""Filters of LangGraph store searches and namespace listings, as LangGraph defines them.

A filter maps keys of an item's value to either a value (equality, recursively for objects
and lists) or to operators `$eq $ne $gt $gte $lt $lte`. A key with dots that is not a key
of the value itself reads a nested field ("author.name"). Namespace conditions match a
prefix or a suffix, where "*" matches any one label.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from langgraph.store.base import MatchCondition

from .errors import InvalidRecordError, shown

_MISSING = object()
_ORDERING: dict[str, Callable[[float, float], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
}
OPERATORS = frozenset({"$eq", "$ne", *_ORDERING})


def check_filter(filter: Mapping[str, Any] | None) -> None:
    """Refuse a malformed filter before any store is read (typed error, nothing read)."""
    if filter is None:
        return
    if not isinstance(filter, Mapping):
        raise InvalidRecordError(f"a filter is a mapping of field to condition, got {type(filter).__name__}")
    for field, condition in filter.items():
        if not isinstance(field, str) or not field:
            raise InvalidRecordError(f"filter fields are non-empty strings, got {shown(field)}")
        if isinstance(condition, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in condition):
            unknown = set(condition) - OPERATORS
            if unknown:
                raise InvalidRecordError(f"unknown filter operators {sorted(unknown)} on {shown(field)}: use {sorted(OPERATORS)}")


def matches(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """Does an item's value satisfy every condition of the filter?"""
    return not filter or all(_condition(_field(value, field), condition) for field, condition in filter.items())


def _field(value: Mapping[str, Any], field: str) -> Any:
    if field in value:
        return value[field]
    current: Any = value
    for part in field.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _condition(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping):
        if any(isinstance(k, str) and k.startswith("$") for k in expected):
            return all(_operator(actual, op, operand) for op, operand in expected.items())
        return isinstance(actual, Mapping) and all(_condition(actual.get(k, _MISSING), v) for k, v in expected.items())
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple)) and len(actual) == len(expected)
            and all(_condition(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return actual is not _MISSING and actual == expected


def _operator(actual: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return actual is not _MISSING and actual == operand
    if op == "$ne":
        return actual is _MISSING or actual != operand
    if actual is _MISSING or actual is None or isinstance(actual, bool):
        return False
    try:
        return _ORDERING[op](float(actual), float(operand))
    except (TypeError, ValueError):
        return False  # a text field compared with a number: not a match, as in PostgreSQL's jsonb


def namespace_matches(namespace: tuple[str, ...], conditions: tuple[MatchCondition, ...] | None) -> bool:
    return all(_namespace_condition(namespace, c) for c in conditions or ())


def _namespace_condition(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        labels = namespace[: len(path)]
    elif condition.match_type == "suffix":
        labels = namespace[len(namespace) - len(path):]
    else:
        raise InvalidRecordError(f"namespace match type must be prefix or suffix, got {shown(condition.match_type)}")
    return all(want == "*" or want == got for want, got in zip(path, labels, strict=True))
