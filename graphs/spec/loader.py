"""`load_spec`: a spec file in, a checked `GraphSpec` out, or a `SpecError` naming every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .check import check_spec, validation_problems
from .errors import SpecError, SpecIssue
from .model import GraphSpec
from .source import SourceMap, parse_source


def load_spec(path: str | Path) -> GraphSpec:
    """Read, validate and check a .yaml/.yml/.json spec; problems name the file, line and field."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([SpecIssue(str(path), None, (), f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    return parse_spec(text, str(path), is_json=file.suffix.lower() == ".json")


def parse_spec(text: str, name: str = "<spec>", *, is_json: bool = False) -> GraphSpec:
    """A spec from YAML (or JSON) text; `name` stands for the file in error messages."""
    data, source = parse_source(text, name, is_json=is_json)
    return spec_from_data(data, source)


def spec_from_data(data: Any, source: SourceMap) -> GraphSpec:
    if not isinstance(data, dict):
        raise SpecError([source.issue((), "a spec is a mapping with version, state, entry, finish and nodes")])
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([source.issue(path, message) for path, message in validation_problems(exc, GraphSpec)]) from None
    spec._source = source
    if problems := check_spec(spec):
        raise SpecError([source.issue(path, message) for path, message in problems])
    return spec
