"""Spec errors that point at the place to fix: file, line and field, one line per problem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from personagraph.memory.errors import PersonagraphError

FieldPath = tuple[str | int, ...]  # ("nodes", 2, "uses") is nodes[2].uses


def field_name(path: FieldPath) -> str:
    """`nodes[2].params.k` from ("nodes", 2, "params", "k")."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec, where it is and what is wrong."""

    file: str
    line: int | None
    path: FieldPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = field_name(self.path)
        return f"{where}: {field}: {self.message}" if field else f"{where}: {self.message}"


class SpecError(PersonagraphError, ValueError):
    """A graph spec cannot be read, is invalid, or cannot be compiled with the given runtime."""

    def __init__(self, issues: Sequence[SpecIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.line or 0, field_name(i.path)))
        super().__init__("\n".join(str(issue) for issue in self.issues))


class Unavailable(PersonagraphError):
    """Raised by a factory when the runtime lacks what its node needs; the compiler adds where."""

    def __init__(self, message: str, path: FieldPath = ("uses",)) -> None:
        super().__init__(message)
        self.path = path
