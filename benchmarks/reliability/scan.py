"""Byte-level scans of a data folder: which files still hold a given string."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def files_holding(root: Path, needles: Iterable[str]) -> dict[str, list[str]]:
    """needle -> the files (relative to root) whose bytes contain it, as UTF-8 or as JSON escapes."""
    wanted = {n: {n.encode(), n.encode("unicode_escape")} for n in needles if n}
    found: dict[str, list[str]] = {}
    for path in files_under(root):
        data = path.read_bytes()
        for needle, forms in wanted.items():
            if any(form in data for form in forms):
                found.setdefault(needle, []).append(str(path.relative_to(root)))
    return found
