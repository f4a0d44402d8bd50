"""Scale: ingest throughput, search latency, memory and disk as the store grows.

`python -m benchmarks.scale --data MSC --memories 10000 100000 --users 100 --out FILE.json`

For each size N, a fresh store gets N synthetic memories spread over U users: MSC persona
sentences put into varied templates with numbers, so texts are seldom duplicates. Then:

- ingest: the first `--embed-sample` memories go through `Memory.add_events` end to end
  (MiniLM embedding, BM25, records, index), in batches of one user's events; batch by
  batch, the bare embedder embeds the same texts too, so the ratio shows what the rest of
  the write path costs. Only these real calls give the ingest figure.
- bulk fill: the other memories also go through `Memory.add_events`. With
  `--bulk-vectors reuse` (the default) their dense vectors are the real MiniLM vectors of
  the sample texts, reused cyclically: search latency depends on how many points the index
  holds, not on which vectors, and this keeps 100k inside a few minutes on 2 cores. With
  `--bulk-vectors real` every memory is embedded.
- search: `--queries` persona sentences, each against a random user, timed through
  `Memory.search` (query embedding included) for the full personagraph config and for
  dense only.
- resident memory of this process after the searches, how much of it came while the store
  was filled and searched, its peak so far, and the store's disk use.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from rich.progress import track

from personagraph.memory import Event, Memory, MiniLMEmbedder, Scope

from .common import SYSTEMS, console, fresh_memory, percentile, print_table, write_json

TEMPLATES = (
    "{s}",
    "Just so you know, {l}",
    "I told my sister on day {n} of the trip that {l}",
    "{s} That has been true for about {n} years now.",
    "Quick note #{n}: {s}",
    "When we talked about weekend plans I said {l}",
    "{s} I brought it up again at dinner with {n} friends.",
    "Funny thing from week {n}: {l}",
)
START = datetime(2023, 1, 1, tzinfo=UTC)
SEARCH_CONFIGS = ("personagraph", "dense")
Batch = tuple[Scope, list[Event]]


def read_sentences(data: Path) -> list[str]:
    """Every distinct persona sentence of every split and speaker, in a fixed order."""
    path = data / "msc_personas_all.json" if data.is_dir() else data
    pairs = [pair for split in json.loads(path.read_text()).values() for pair in split]
    return sorted({s.strip() for pair in pairs for key in ("Speaker 1", "Speaker 2") for s in pair[key] if s.strip()})


def synthetic_batches(sentences: list[str], memories: int, users: int, batch: int, rng: random.Random) -> list[Batch]:
    """`memories` events over `users` users, each user talking about their own 30 persona
    sentences; batches hold one user's events, oldest first."""
    batches: list[Batch] = []
    for u in range(users):
        persona = rng.sample(sentences, 30)
        count = memories // users + (u < memories % users)
        events = []
        for _ in range(count):
            s = rng.choice(persona)
            text = rng.choice(TEMPLATES).format(s=s, l=s[0].lower() + s[1:], n=rng.randint(2, 99))
            events.append(Event(speaker=f"user{u}", text=text, time=START + timedelta(minutes=rng.randint(0, 2 * 525_600))))
        events.sort(key=lambda e: e.time)
        scope = Scope(user_id=f"scale-{u:05d}")
        batches += [(scope, events[i:i + batch]) for i in range(0, len(events), batch)]
    return batches


def split_batches(batches: list[Batch], sample: int) -> tuple[list[Batch], list[Batch]]:
    """The first `sample` events (cutting a batch if need be), and the rest."""
    head: list[Batch] = []
    taken = 0
    for i, (scope, events) in enumerate(batches):
        if taken + len(events) >= sample:
            cut = sample - taken
            head.append((scope, events[:cut]))
            tail = [(scope, events[cut:])] if cut < len(events) else []
            return head, tail + batches[i + 1:]
        head.append((scope, events))
        taken += len(events)
    return head, []


class BulkEmbedder:
    """The real embedder, until `reuse(pool)`: from then on documents get the pool's real
    MiniLM vectors, cyclically. Queries are always embedded for real."""

    def __init__(self, real: MiniLMEmbedder) -> None:
        self.real = real
        self.dim = real.dim
        self.pool: list[list[float]] = []
        self._next = 0

    def reuse(self, pool: list[list[float]]) -> None:
        self.pool = pool

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not self.pool:
            return self.real.embed_documents(texts)
        start, self._next = self._next, self._next + len(texts)
        return [self.pool[(start + i) % len(self.pool)] for i in range(len(texts))]

    def embed_query(self, text: str) -> list[float]:
        return self.real.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)


@dataclass
class Options:
    """What every size of one run shares."""

    users: int
    batch: int
    embed_sample: int
    bulk_vectors: str
    queries: int
    seed: int


def paired_ingest(memory: Memory, embedder: MiniLMEmbedder, batches: list[Batch]) -> tuple[float, float, list]:
    """Events/s of `add_events` and of the bare embedder on the texts the write path embeds.

    The two take turns batch by batch, which goes first alternating, so that load from
    others on a shared machine and any warm-cache advantage of going second hit both alike.
    Also returns the bare vectors, for reuse.
    """
    seconds = {"bare": 0.0, "add": 0.0}
    vectors: list[list[float]] = []
    for i, (scope, events) in enumerate(track(batches, description="ingest (MiniLM) + bare embedder", console=console)):
        for step in ("bare", "add") if i % 2 == 0 else ("add", "bare"):
            t = time.perf_counter()
            if step == "bare":
                vectors += embedder.embed_documents([e.index_text() for e in events])
            else:
                memory.add_events(scope, events)
            seconds[step] += time.perf_counter() - t
    return len(vectors) / seconds["add"], len(vectors) / seconds["bare"], vectors


def bulk_ingest(memory: Memory, batches: list[Batch], label: str) -> float:
    """Events/s of `Memory.add_events` over the batches."""
    t = time.perf_counter()
    for scope, events in track(batches, description=label, console=console):
        memory.add_events(scope, events)
    return sum(len(e) for _, e in batches) / (time.perf_counter() - t)


def search_latency(memory: Memory, sentences: list[str], users: int, opts: Options, rng: random.Random) -> dict:
    """p50/p95 of whole searches and p50 of each stage, per config, queries interleaved."""
    work = [(Scope(user_id=f"scale-{rng.randrange(users):05d}"), rng.choice(sentences)) for _ in range(opts.queries)]
    for scope, query in work[:5]:  # warm caches (each config's first search loads things)
        for name in SEARCH_CONFIGS:
            memory.search(scope, query, k=10, config=SYSTEMS[name])
    totals: dict[str, list[float]] = {name: [] for name in SEARCH_CONFIGS}
    stages: dict[str, dict[str, list[float]]] = {name: {} for name in SEARCH_CONFIGS}
    for scope, query in track(work, description="search", console=console):
        for name in SEARCH_CONFIGS:
            t = time.perf_counter()
            result = memory.search(scope, query, k=10, config=SYSTEMS[name])
            totals[name].append((time.perf_counter() - t) * 1000)
            for stage, ms in result.timings_ms.items():
                stages[name].setdefault(stage, []).append(ms)
    return {
        name: {
            "p50": percentile(totals[name], 50), "p95": percentile(totals[name], 95),
            "stages_p50": {stage: percentile(ms, 50) for stage, ms in stages[name].items()},
        }
        for name in SEARCH_CONFIGS
    }


def _mb(paths: list[Path], apparent: bool = False) -> float:
    files = [p for p in paths if p.is_file()]
    return sum(p.stat().st_size if apparent else p.stat().st_blocks * 512 for p in files) / 2**20


def disk_usage(root: Path) -> dict[str, float]:
    """Space taken on disk. Qdrant Edge preallocates its WAL and page files as sparse files,
    so their apparent size (tens of MB when empty) says little; both are reported."""
    index = list((root / "index").rglob("*"))
    return {
        "records_mb": _mb(list(root.glob("records.sqlite*"))),
        "index_mb": _mb(index),
        "index_apparent_mb": _mb(index, apparent=True),
    }


def run_size(embedder: MiniLMEmbedder, sentences: list[str], memories: int, opts: Options) -> dict:
    rng = random.Random(opts.seed)
    batches = synthetic_batches(sentences, memories, opts.users, opts.batch, rng)
    sample, bulk = split_batches(batches, min(opts.embed_sample, memories))
    n_sample = sum(len(e) for _, e in sample)
    rest = memories - n_sample
    how = (f"bulk-filled with the real MiniLM vectors of those {n_sample} texts, reused cyclically"
           if opts.bulk_vectors == "reuse" else "ingested end to end too")
    console.print(f"[bold]{memories} memories over {opts.users} users[/]: {n_sample} ingested end to end with MiniLM"
                  + (f"; {rest} {how}" if rest else ""))
    rss_before = psutil.Process().memory_info().rss / 2**20  # the synthetic events are in it already
    with tempfile.TemporaryDirectory(prefix="pg-scale-") as tmp:
        wrapped = BulkEmbedder(embedder)
        memory = fresh_memory(tmp, embedder=wrapped)
        try:
            ingest_rate, bare_rate, vectors = paired_ingest(memory, embedder, sample)
            if opts.bulk_vectors == "reuse":
                wrapped.reuse(vectors)
            bulk_rate = bulk_ingest(memory, bulk, f"bulk fill ({opts.bulk_vectors} vectors)") if bulk else None
            points = memory.index.count()
            latency = search_latency(memory, sentences, opts.users, opts, rng)
            rss = psutil.Process().memory_info().rss / 2**20
        finally:
            memory.close()
        disk = disk_usage(Path(tmp))
    return {
        "memories": memories, "index_points": points,
        "ingest": {"events": n_sample, "events_per_s": ingest_rate, "bare_embed_per_s": bare_rate,
                   "ratio": ingest_rate / bare_rate},
        "bulk_fill": {"events": rest, "events_per_s": bulk_rate, "vectors": opts.bulk_vectors, "how": how},
        "search_ms": latency,
        "rss_mb": rss, "rss_growth_mb": rss - rss_before, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "disk": disk,
    }


def run(data: Path, sizes: list[int], opts: Options, out: Path | None) -> dict:
    embedder = MiniLMEmbedder()
    embedder.embed_documents(["warm up: load the model before anything is timed"])
    sentences = read_sentences(data)
    results = {str(n): run_size(embedder, sentences, n, opts) for n in sizes}
    report = {
        "data": str(data), "users": opts.users, "batch": opts.batch, "embed_sample": opts.embed_sample,
        "bulk_vectors": opts.bulk_vectors, "queries": opts.queries, "seed": opts.seed,
        "cpus": psutil.cpu_count(), "sizes": results,
    }
    _print(report)
    write_json(out, report)
    return report


def _print(report: dict) -> None:
    sizes = report["sizes"]
    print_table(
        f"Ingest ({report['users']} users; end to end over the first {report['embed_sample']} memories)",
        ["memories", "add_events ev/s", "bare embed ev/s", "ratio", f"bulk fill ev/s ({report['bulk_vectors']} vectors)"],
        [[n, f"{r['ingest']['events_per_s']:.1f}", f"{r['ingest']['bare_embed_per_s']:.1f}", r["ingest"]["ratio"],
          "-" if r["bulk_fill"]["events_per_s"] is None else f"{r['bulk_fill']['events_per_s']:.0f}"]
         for n, r in sizes.items()],
    )
    print_table(
        f"Search ({report['queries']} queries, k=10, query embedding included); memory and disk",
        ["N", "pg p50", "pg p95", "dense p50", "dense p95", "RSS MB", "records MB", "index MB"],
        [[n, *(f"{r['search_ms'][c][q]:.1f} ms" for c in SEARCH_CONFIGS for q in ("p50", "p95")),
          *(f"{v:.0f}" for v in (r["rss_mb"], r["disk"]["records_mb"], r["disk"]["index_mb"]))]
         for n, r in sizes.items()],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="msc_personas_all.json or the folder holding it")
    parser.add_argument("--memories", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256, help="events per add_events call (one user's)")
    parser.add_argument("--embed-sample", type=int, default=2000, help="memories ingested end to end per size")
    parser.add_argument("--bulk-vectors", choices=["reuse", "real"], default="reuse",
                        help="the rest: reuse the sample's real vectors, or embed every memory")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()
    path = args.data / "msc_personas_all.json" if args.data.is_dir() else args.data
    if not path.exists():
        parser.error(f"{path} does not exist (the data lives in ../shared/data/msc_personas)")
    if min(args.memories) < args.users or args.users < 1:
        parser.error("every --memories size needs at least one memory per user")
    if min(args.batch, args.embed_sample, args.queries) < 1:
        parser.error("--batch, --embed-sample and --queries must be positive")
    opts = Options(args.users, args.batch, args.embed_sample, args.bulk_vectors, args.queries, args.seed)
    run(args.data, args.memories, opts, args.out)


if __name__ == "__main__":
    main()
