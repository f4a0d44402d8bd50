"""What every part of the suite returns: named figures, and which of them must be zero."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartResult:
    part: str
    figures: dict[str, int | float]  # e.g. {"operations": 10000, "leaks": 0}
    must_be_zero: tuple[str, ...]  # the figures the project promises are zero
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # per-case outcomes, failures with their repro

    @property
    def failures(self) -> dict[str, int | float]:
        return {k: self.figures[k] for k in self.must_be_zero if self.figures.get(k)}

    @property
    def ok(self) -> bool:
        return not self.failures
