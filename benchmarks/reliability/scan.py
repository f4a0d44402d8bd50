"""Byte-level scans of a data folder: which files still hold a given string or byte run."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _forms(needle: str | bytes) -> tuple[str, set[bytes]]:
    if isinstance(needle, bytes):
        return f"bytes:{needle.hex()}", {needle}
    return needle, {needle.encode(), needle.encode("unicode_escape")}  # as UTF-8 and as JSON escapes


def files_holding(root: Path, needles: Iterable[str | bytes]) -> dict[str, list[str]]:
    """needle (bytes shown as `bytes:<hex>`) -> the files, relative to root, whose bytes hold it."""
    wanted = dict(_forms(n) for n in needles if n)
    found: dict[str, list[str]] = {}
    for path in files_under(root):
        data = path.read_bytes()
        for name, forms in wanted.items():
            if any(form in data for form in forms):
                found.setdefault(name, []).append(str(path.relative_to(root)))
    return found
