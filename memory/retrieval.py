"""Retrieval as pure functions: rank fusion and packing under a token budget.

`memory.search.Retriever` runs the stages (dense, BM25, graph expansion, recency, neighbouring
turns) and hands their rankings here; each stage can be switched off in `RetrievalConfig` for ablations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

Key = tuple[str, str]  # (kind, record id)


class RetrievalConfig(BaseModel):
    """Which stages run and how their rankings are fused. Defaults were tuned on LoCoMo dev."""

    dense: bool = True
    bm25: bool = True
    graph: bool = True
    recency: bool = True
    neighbours: bool = True
    neighbour_hits: int = Field(10, ge=1, le=100, description="top event hits whose adjacent turns are considered")
    prefetch: int = Field(50, ge=1, le=1000)
    rrf_k: float = Field(2.0, gt=0)
    bm25_full_coverage: float = Field(
        0.5, ge=0, le=1,
        description="BM25's weight is scaled down when its best hits share less than this share of "
        "the query's terms (0 turns the scaling off)",
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: {"dense": 1.0, "bm25": 1.0, "graph": 1.0, "recency": 0.05, "neighbours": 0.4}
    )

    def stages(self) -> list[str]:
        return [s for s in ("dense", "bm25", "graph", "recency", "neighbours") if getattr(self, s)]


@dataclass
class Fused:
    key: Key
    score: float
    stages: dict[str, int] = field(default_factory=dict)  # stage -> 1-based rank there


def rrf_fuse(rankings: dict[str, Sequence[Key]], k: float, weights: dict[str, float]) -> list[Fused]:
    """Weighted reciprocal-rank fusion: score = sum over stages of w / (k + rank)."""
    fused: dict[Key, Fused] = {}
    for stage, keys in rankings.items():
        weight = weights.get(stage, 1.0)
        for rank, key in enumerate(keys, start=1):
            entry = fused.setdefault(key, Fused(key, 0.0))
            if stage not in entry.stages:
                entry.stages[stage] = rank
                entry.score += weight / (k + rank)
    return sorted(fused.values(), key=lambda f: (-f.score, f.key))


def term_coverage(query_terms: Sequence[int], hit_terms: Sequence[Sequence[int]]) -> float:
    """The largest share of the query's (stemmed, stop-word-free) terms that one hit contains.

    A lexical ranking whose best hits share few of the query's terms is mostly noise (a
    question worded unlike the memory it needs), so fusion should lean on it less.
    """
    wanted = set(query_terms)
    if not wanted:
        return 0.0
    return max((len(wanted.intersection(terms)) / len(wanted) for terms in hit_terms), default=0.0)


def recency_ranking(times: dict[Key, float], as_of: float | None = None) -> list[Key]:
    """Newest first (times are POSIX seconds), ignoring anything stamped after `as_of`."""
    eligible = [(t, key) for key, t in times.items() if as_of is None or t <= as_of]
    return [key for _, key in sorted(eligible, key=lambda pair: pair[0], reverse=True)]


def pack(
    texts: Sequence[str], limit: int, token_budget: int | None, count_tokens: Callable[[str], int]
) -> tuple[list[int], int]:
    """Indices of the texts taken in rank order until `limit` items or the budget is full.

    An item that does not fit is skipped (a shorter one further down may still fit), so the
    budget is never exceeded and the best items that fit are kept.
    """
    chosen: list[int] = []
    used = 0
    for i, text in enumerate(texts):
        if len(chosen) >= limit:
            break
        cost = count_tokens(text)
        if token_budget is not None and used + cost > token_budget:
            continue
        chosen.append(i)
        used += cost
    return chosen, used
