"""Reading a spec file into plain data plus the line of every key and item in it.

YAML is composed node by node (the nodes carry their marks) rather than loaded, so each value
keeps its line; duplicate keys, which a YAML load silently collapses, are errors here. JSON is
parsed by `json` (YAML 1.1 reads some JSON numbers differently) and composed as YAML only for
its lines: valid JSON is YAML once its tabs, legal only as whitespace, become spaces (JSON past
YAML's limits, such as a key over 1024 characters, is read without lines). A recursive YAML
alias is an error, not endless data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from .errors import FieldPath, SpecError, SpecIssue


@dataclass(frozen=True)
class SourceMap:
    """Where each field of a spec is written, for error messages."""

    file: str
    lines: dict[FieldPath, int] = field(default_factory=dict)

    def line(self, path: FieldPath) -> int | None:
        """The line of `path`, or of its nearest written parent (a missing key has no line)."""
        for end in range(len(path), -1, -1):
            if (found := self.lines.get(tuple(path[:end]))) is not None:
                return found
        return None

    def issue(self, path: FieldPath, message: str) -> SpecIssue:
        return SpecIssue(self.file, self.line(path), tuple(path), message)


MAX_VALUES = 100_000  # a spec is dozens of values: more means aliases multiplying (a "billion laughs")


def parse_source(text: str, name: str, *, is_json: bool = False) -> tuple[Any, SourceMap]:
    try:
        return _parse_json(text, name) if is_json else _parse_yaml(text, name)
    except RecursionError:  # the parsers recurse per level of nesting
        raise SpecError([SpecIssue(name, _deepest_line(text), (), "nested too deeply to be a graph spec")]) from None


def _deepest_line(text: str) -> int:
    """The line where brackets nest deepest, or (block nesting) the most indented line."""
    depth = best = 0
    line = best_line = 1
    for char in text:
        if char in "[{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
        elif char in "]}":
            depth -= 1
        elif char == "\n":
            line += 1
    if best > 1:
        return best_line
    lines = text.splitlines() or [""]
    return max(range(len(lines)), key=lambda i: len(lines[i]) - len(lines[i].lstrip(" "))) + 1


def _parse_yaml(text: str, name: str) -> tuple[Any, SourceMap]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: it has a position, not a mark
        line = text[:exc.position].count("\n") + 1
        raise SpecError([SpecIssue(name, line, (), f"invalid YAML: {exc.reason} (character {exc.character!r})")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise SpecError([SpecIssue(name, mark.line + 1 if mark else None, (), f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(name, None, (), f"invalid YAML: {exc}")]) from None
    lines: dict[FieldPath, int] = {}
    data = _to_data(node, (), lines, name, _Budget(name))
    return data, SourceMap(name, lines)


def _parse_json(text: str, name: str) -> tuple[Any, SourceMap]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError([SpecIssue(name, exc.lineno, (), f"invalid JSON: {exc.msg} (column {exc.colno})")]) from None
    try:
        node = yaml.compose(text.replace("\t", " "), Loader=yaml.SafeLoader)
    except yaml.YAMLError:  # valid JSON past YAML's limits (a key over 1024 characters): no lines
        json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, name))
        return data, SourceMap(name)
    lines: dict[FieldPath, int] = {}
    _to_data(node, (), lines, name, _Budget(name))  # also finds duplicate keys
    return data, SourceMap(name, lines)


def _unique_keys(pairs: list[tuple[str, Any]], name: str) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice (JSON keeps the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SpecError([SpecIssue(name, None, (), f"duplicate key {key!r}")])
        out[key] = value
    return out


@dataclass
class _Budget:
    """Counts the values a document expands to, and stops it at MAX_VALUES."""

    name: str
    used: int = 0

    def spend(self, node: yaml.Node) -> None:
        self.used += 1
        if self.used > MAX_VALUES:
            raise SpecError([SpecIssue(self.name, node.start_mark.line + 1, (),
                                       f"the spec expands to over {MAX_VALUES} values (aliases repeating aliases?)")])


def _to_data(
    node: yaml.Node | None, path: FieldPath, lines: dict[FieldPath, int], name: str, budget: _Budget,
    within: frozenset[int] = frozenset(),
) -> Any:
    """The plain data of `node`, recording lines; `within` holds the ids of the nodes it is inside."""
    if node is None:  # an empty document
        return None
    budget.spend(node)
    if id(node) in within:
        raise SpecError([SpecIssue(name, node.start_mark.line + 1, path, "a recursive alias: the anchored value contains itself")])
    within |= {id(node)}
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path, name)
            if not isinstance(key, str):
                hint = " (YAML reads yes/no/on/off/true/false as booleans: quote it)" if isinstance(key, bool) else ""
                raise SpecError([SpecIssue(name, key_node.start_mark.line + 1, path, f"key {key!r} is not a string{hint}")])
            if key in out:
                raise SpecError([SpecIssue(name, key_node.start_mark.line + 1, (*path, key), f"duplicate key {key!r}")])
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_data(value_node, (*path, key), lines, name, budget, within)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, (*path, n), lines, name, budget, within) for n, item in enumerate(node.value)]
    return _scalar(node, path, name)


def _scalar(node: yaml.Node, path: FieldPath, name: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise SpecError([SpecIssue(name, node.start_mark.line + 1, path, "a key must be a plain value, not a list or mapping")])
    try:
        return SafeConstructor().construct_object(node)
    except ConstructorError as exc:
        raise SpecError([SpecIssue(name, node.start_mark.line + 1, path, f"invalid YAML value: {exc.problem}")]) from None
