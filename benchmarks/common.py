"""What every harness shares: a fresh embedded memory, recall@k, percentiles, output."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from personagraph.memory import Embedder, Memory, MiniLMEmbedder, RecordStore, RetrievalConfig
from personagraph.memory import RetrievedItem
from personagraph.memory.index.edge import EdgeIndex

console = Console()
KS = (1, 5, 10, 20)

# The systems every retrieval harness compares, all through the same index code.
SYSTEMS: dict[str, RetrievalConfig] = {
    "dense": RetrievalConfig(bm25=False, graph=False, recency=False, neighbours=False),
    "bm25": RetrievalConfig(dense=False, graph=False, recency=False, neighbours=False),
    "personagraph": RetrievalConfig(),
}


def fresh_memory(workdir: str | Path, embedder: Embedder | None = None) -> Memory:
    """SQLite records and a Qdrant Edge index in `workdir`: the embedded default stack."""
    root = Path(workdir)
    return Memory(RecordStore.sqlite(root / "records.sqlite"), EdgeIndex(root / "index"), embedder or MiniLMEmbedder())


def distinct_sources(items: Sequence[RetrievedItem], k: int) -> list[str]:
    """Event ids behind the ranked items, in rank order, up to k distinct ones."""
    seen: list[str] = []
    for item in items:
        for source in item.sources:
            if source not in seen:
                seen.append(source)
            if len(seen) == k:
                return seen
    return seen


def recall_at(items: Sequence[RetrievedItem], gold: set[str], k: int) -> float:
    return len(gold.intersection(distinct_sources(items, k))) / len(gold) if gold else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(str(col), justify="right" if col != columns[0] else "left")
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    console.print(f"wrote {path}")
