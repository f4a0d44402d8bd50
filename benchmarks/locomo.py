"""LoCoMo turn-level evidence recall: `python -m benchmarks.locomo --data FILE --out FILE.json`.

Every conversation is ingested as events (speaker, session date, image caption) into its own
scope; each QA item of categories 1-4 with evidence is a query. recall@k = |evidence ∩ top-k
turns| / |evidence|, averaged over questions; a retrieved item that is not a turn counts
through its source events in rank order, up to k distinct turns.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rich.progress import track

from personagraph.memory import Memory, MiniLMEmbedder, RetrievalConfig, Scope
from personagraph.memory.ingest import LocomoSample, iter_batches, read_locomo

from .common import KS, SYSTEMS, fresh_memory, mean, percentile, print_table, recall_at, write_json

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
_EVIDENCE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")


def normalise_evidence(raw: list[str]) -> tuple[list[str], int]:
    """`D:11:26` → `D11:26`, `D30:05` → `D30:5`, several ids in one string split; returns
    (ids, count of entries that hold no recognisable id)."""
    ids, bad = [], 0
    for entry in raw:
        found = _EVIDENCE.findall(entry or "")
        if not found:
            bad += 1
        ids.extend(f"D{int(s)}:{int(t)}" for s, t in found)
    return ids, bad


def questions(sample: LocomoSample, stats: dict[str, int]) -> list[tuple[str, int, set[str]]]:
    """(question, category, gold event ids) for categories 1-4 with resolvable evidence."""
    known = {e.metadata["dia_id"] for e in sample.events}
    out = []
    for qa in sample.qa:
        if qa.get("category") not in CATEGORIES:
            continue
        ids, bad = normalise_evidence(qa.get("evidence", []))
        stats["malformed_evidence"] += bad
        stats["unknown_evidence"] += sum(i not in known for i in ids)
        gold = {f"{sample.sample_id}:{i}" for i in ids if i in known}
        if gold:
            out.append((qa["question"], qa["category"], gold))
        else:
            stats["questions_without_evidence"] += 1
    return out


def ablations() -> dict[str, RetrievalConfig]:
    """The full hybrid with one stage switched off at a time."""
    full = SYSTEMS["personagraph"]
    return {f"-{stage}": full.model_copy(update={stage: False}) for stage in full.stages()}


def run(
    data: Path, limit: int | None, systems: list[str], out: Path | None,
    with_ablations: bool = False, embedder: MiniLMEmbedder | None = None,
) -> dict:
    configs = dict(SYSTEMS) | (ablations() if with_ablations else {})
    systems = systems + (list(ablations()) if with_ablations else [])
    embedder = embedder or MiniLMEmbedder()
    with tempfile.TemporaryDirectory(prefix="pg-locomo-") as root:
        memory = fresh_memory(root, embedder)
        try:
            return _evaluate(memory, embedder, data, limit, systems, configs, out)
        finally:
            memory.close()


def _evaluate(
    memory: Memory, embedder: MiniLMEmbedder, data: Path, limit: int | None,
    systems: list[str], configs: dict[str, RetrievalConfig], out: Path | None,
) -> dict:
    samples = read_locomo(data)
    stats: dict[str, int] = defaultdict(int)
    recalls: dict[str, dict[int, dict[int, list[float]]]] = {s: defaultdict(lambda: defaultdict(list)) for s in systems}
    latencies: list[float] = []
    tokens: list[int] = []
    max_k = max(KS)

    t0 = time.perf_counter()
    for sample in samples:
        scope = Scope(user_id=sample.sample_id)
        for batch in iter_batches(sample.events, 256):
            memory.add_events(scope, batch)
    ingest_s = time.perf_counter() - t0
    n_events = sum(len(s.events) for s in samples)

    work = [(Scope(user_id=s.sample_id), q) for s in samples for q in questions(s, stats)][:limit]
    for scope, (question, category, gold) in track(work, description="searching"):
        for name in systems:
            start = time.perf_counter()
            result = memory.search(scope, question, k=max_k, config=configs[name])
            if name == "personagraph":
                latencies.append((time.perf_counter() - start) * 1000)
                tokens.append(sum(embedder.count_tokens(item.text) for item in result.items[:10]))
            for k in KS:
                recalls[name][category][k].append(recall_at(result.items, gold, k))

    report = {
        "data": str(data), "n_questions": len(work), "n_events": n_events,
        "ingest_events_per_s": n_events / ingest_s,
        "evidence": dict(stats),
        "systems": {name: _summary(recalls[name]) for name in systems},
        "search_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "context_tokens_per_query": mean(tokens),
    }
    _print(report, systems)
    write_json(out, report)
    return report


def _summary(per_category: dict[int, dict[int, list[float]]]) -> dict:
    every = {k: [r for cat in per_category.values() for r in cat[k]] for k in KS}
    summary: dict = {f"recall@{k}": mean(every[k]) for k in KS}
    summary["per_category"] = {
        str(cat): {f"recall@{k}": mean(per_category[cat][k]) for k in KS} | {"n": len(per_category[cat][KS[0]])}
        for cat in sorted(per_category)
    }
    return summary


def _print(report: dict, systems: list[str]) -> None:
    rows = [[name, *(report["systems"][name][f"recall@{k}"] for k in KS)] for name in systems]
    print_table(f"LoCoMo evidence recall ({report['n_questions']} questions)", ["system", *(f"R@{k}" for k in KS)], rows)
    cats = sorted({c for name in systems for c in report["systems"][name]["per_category"]})
    rows = [[name, *(report["systems"][name]["per_category"][c]["recall@10"] for c in cats)] for name in systems]
    print_table("recall@10 per category", ["system", *(f"{c} {CATEGORIES[int(c)]}" for c in cats)], rows)
    print_table("personagraph search", ["p50 ms", "p95 ms", "context tokens @10", "ingest events/s"], [[
        report["search_ms"]["p50"], report["search_ms"]["p95"], report["context_tokens_per_query"], report["ingest_events_per_s"],
    ]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a LoCoMo JSON file (locomo10.json schema)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--limit", type=int, help="only the first N questions (quick checks)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--ablations", action="store_true", help="also run the full hybrid minus each stage")
    args = parser.parse_args()
    if not args.data.exists():
        parser.error(f"{args.data} does not exist (the data lives in ../shared/data/locomo)")
    run(args.data, args.limit, args.systems, args.out, args.ablations)


if __name__ == "__main__":
    main()
