"""PersonaStore against LangGraph's InMemoryStore as a LangGraph store: LoCoMo turns as items.

Every dialogue turn is put as a store item `(sample, "turns") / dia_id` with `index=["text"]`,
and every LoCoMo question (categories 1-4) is a `store.search(prefix, query=...)`. Both stores
embed with the same MiniLM; InMemoryStore ranks by cosine similarity (LangGraph's semantic
search), PersonaStore by personagraph's hybrid retrieval. Reported side by side: recall@k of
the gold evidence turns, put throughput, and get and search latency (medians and p95).

    python -m benchmarks.store --data ../shared/data/locomo/locomo_dev.json --out benchmarks/results/store.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore, PutOp
from langgraph.store.memory import InMemoryStore
from personagraph.memory import MiniLMEmbedder, PersonaStore
from personagraph.memory.ingest import iter_batches, read_locomo

from .common import fresh_memory, percentile, print_table, write_json
from .locomo import questions

KS = (1, 5, 10)


def _recall(keys: list[str], gold: set[str], k: int) -> float:
    return len(gold.intersection(keys[:k])) / len(gold)


def _measure(store: BaseStore, samples: list[Any], limit: int | None) -> dict[str, Any]:
    puts = []
    for sample in samples:
        ops = [PutOp((sample.sample_id, "turns"), e.metadata["dia_id"], {"speaker": e.speaker, "text": e.text}, index=["text"]) for e in sample.events]
        for batch in iter_batches(ops, 128):
            start = time.perf_counter()
            store.batch(batch)
            puts.append((len(batch), time.perf_counter() - start))
    stats: dict[str, int] = defaultdict(int)
    work = [(s, q) for s in samples for q in questions(s, stats)][:limit]
    recalls: dict[int, list[float]] = {k: [] for k in KS}
    search_ms, get_ms = [], []
    for sample, (question, _category, gold) in work:
        gold_keys = {g.split(":", 1)[1] for g in gold}
        start = time.perf_counter()
        found = store.search((sample.sample_id, "turns"), query=question, limit=max(KS))
        search_ms.append((time.perf_counter() - start) * 1000)
        for k in KS:
            recalls[k].append(_recall([item.key for item in found], gold_keys, k))
        start = time.perf_counter()
        store.get((sample.sample_id, "turns"), next(iter(gold_keys)))
        get_ms.append((time.perf_counter() - start) * 1000)
    items = sum(n for n, _ in puts)
    return {
        "items": items, "questions": len(work),
        "recall": {f"@{k}": statistics.fmean(v) for k, v in recalls.items()},
        "put_items_per_s": items / sum(s for _, s in puts),
        "search_ms": {"p50": percentile(search_ms, 50), "p95": percentile(search_ms, 95)},
        "get_ms": {"p50": percentile(get_ms, 50), "p95": percentile(get_ms, 95)},
    }


def run(data: Path, limit: int | None, out: Path | None) -> dict[str, Any]:
    samples = read_locomo(data)
    embedder = MiniLMEmbedder()
    reference = InMemoryStore(index={"dims": 384, "embed": embedder.embed_documents, "fields": ["text"]})
    report: dict[str, Any] = {"data": str(data), "stores": {}}
    report["stores"]["langgraph InMemoryStore (MiniLM cosine)"] = _measure(reference, samples, limit)
    with tempfile.TemporaryDirectory(prefix="pg-store-") as root:
        memory = fresh_memory(root, embedder)
        try:
            report["stores"]["PersonaStore (SQLite + Qdrant Edge, hybrid)"] = _measure(PersonaStore(memory), samples, limit)
        finally:
            memory.close()
    rows = [
        [name, r["questions"], *(r["recall"][f"@{k}"] for k in KS), r["put_items_per_s"], r["search_ms"]["p50"], r["search_ms"]["p95"], r["get_ms"]["p50"]]
        for name, r in report["stores"].items()
    ]
    print_table("LoCoMo turns as store items", ["store", "questions", *(f"R@{k}" for k in KS), "puts/s", "search p50 ms", "search p95 ms", "get p50 ms"], rows)
    write_json(out, report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a LoCoMo JSON file (locomo10.json schema)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()
    if not args.data.exists():
        parser.error(f"{args.data} does not exist (the data lives in ../shared/data/locomo)")
    run(args.data, args.limit, args.out)


if __name__ == "__main__":
    main()
