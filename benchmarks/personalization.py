"""Personalization on LoCoMo: `python -m benchmarks.personalization --data FILE --out FILE.json`.

Each speaker of each processed conversation is one user. Their memory holds the whole
conversation (reflected with the rule extractor); the adapter registry trains a LoRA and a
soft prompt on the oldest 80% of the speaker's own messages (the newest `--max-train`
examples of them, so a user trains in minutes here) and the rest is held out.

Measured per user, on the held-out messages (target: the speaker's message; prompt: the two
turns before it):
- perplexity under base, base + retrieved memory, soft prompt, soft prompt + memory, LoRA
  adapter and adapter + memory. Memory for a held-out message is searched with the two turns
  before it as the query, as of one second before the message, leaving out the turns already
  in the prompt (so the target is never in its own context);
- seconds to train each adapter kind, and whether the registry's gate (held-out gain > 0)
  would keep it;
- recall: for LoCoMo questions whose evidence this speaker said (categories 1, 2, 4), the
  perplexity of the reference answer with retrieved memories quoted (the prompting backend),
  under the adapter with no memory, and under adapter + memory.

Across users: adapter switch time on the serving runtime (a request naming a different
loaded LoRA than the one before it, against the same LoRA again) and lazy load time;
mixed-adapter batch throughput against a single-adapter batch (and the base); and the
planner's picks on a labelled query set (`benchmarks/data/planner_queries.jsonl`) against
always-prompt and always-adapter, with the quality each choice measured above.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from personagraph.agents.adapters.examples import SFTExample, with_context
from personagraph.agents.adapters.perplexity import perplexity
from personagraph.agents.adapters.registry import AdapterRegistry
from personagraph.agents.adapters.training import (
    TrainConfig,
    adapter_perplexity,
    load_training_base,
)
from personagraph.agents.planner import PlanFeatures, PlannerConfig, RulePolicy
from personagraph.agents.prompting import build_personal_prompt, sanitize
from personagraph.agents.query_need import classify_query
from personagraph.graphs.reflection import build_reflection_graph
from personagraph.graphs.reflection.runner import iter_reflect
from personagraph.memory import Memory, MiniLMEmbedder, Scope
from personagraph.memory.ingest import LocomoSample, read_locomo
from personagraph.memory.models import AdapterRecord

from .adapter_serving import serving_figures, serving_table
from .common import console, fresh_memory, print_table, write_json

CONDITIONS = ("base", "base+memory", "soft_prompt", "soft_prompt+memory", "adapter", "adapter+memory")
QUERIES = Path(__file__).parent / "data" / "planner_queries.jsonl"
QA_CATEGORIES = {1, 2, 4}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:60] or "user"


def memory_context(memory: Memory, scope: Scope, example: SFTExample, k: int, said_at: dict[str, Any]) -> str:
    """Memories for one held-out message, as the prompting backend quotes them: searched as of
    just before the message, and without any item resting on a message said at or after it
    (a fact's validity can start earlier than the message it was learned from) or on the turns
    already in the prompt."""
    query = example.messages[-1]["content"]
    found = memory.search(scope, query, k=k + 10, as_of=example.time - timedelta(seconds=1)).items
    shown = set(example.source_ids)
    items = [
        i for i in found
        if not shown.issuperset(i.sources) and all(said_at.get(s, example.time) < example.time for s in i.sources)
    ][:k]
    return "\n".join(
        f"[m{n}] ({i.kind}, {i.time:%d %B %Y}) {sanitize(i.text)}" if i.time else f"[m{n}] ({i.kind}) {sanitize(i.text)}"
        for n, i in enumerate(items, 1)
    )


def qa_examples(memory: Memory, scope: Scope, sample: LocomoSample, speaker: str, k: int, limit: int) -> tuple[list[SFTExample], list[SFTExample]]:
    """(with memories quoted, without) for the questions whose evidence `speaker` said."""
    said = {e.id for e in sample.events if e.speaker == speaker}
    with_memory, without = [], []
    for qa in sample.qa:
        if qa.get("category") not in QA_CATEGORIES or "answer" not in qa:
            continue
        evidence = {f"{sample.sample_id}:{d}" for d in qa.get("evidence", [])}
        if not evidence or not evidence <= said:
            continue
        question, answer = str(qa["question"]), str(qa["answer"])
        items = memory.search(scope, question, k=k).items
        prompt = build_personal_prompt(question, profile=None, items=items, token_budget=10_000)
        for messages, out in ((prompt.messages, with_memory), (prompt.neutral_messages, without)):
            chat = [{"role": "system" if m.type == "system" else "user", "content": str(m.content)} for m in messages]
            out.append(SFTExample(messages=chat, target=answer, source_ids=tuple(sorted(evidence)), time=sample.events[-1].time, kind="fact"))
        if len(with_memory) >= limit:
            break
    return with_memory, without


def measure_user(sample: LocomoSample, speaker: str, base: Any, tokenizer: Any, embedder: MiniLMEmbedder, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    scope = Scope(tenant="bench", user_id=_slug(f"{sample.sample_id}-{speaker}"))
    memory = fresh_memory(workdir / scope.user_id, embedder)
    try:
        memory.add_events(scope, sample.events)
        graph = build_reflection_graph(memory, None)
        for _ in iter_reflect(memory, graph, scope, 8, None):
            pass
        # The gate is reported, not applied: the benchmark keeps every adapter's weights to measure it.
        registry = AdapterRegistry(memory, workdir / "adapters", min_gain=-math.inf, max_train=args.max_train, base=(base, tokenizer))
        records: dict[str, AdapterRecord] = {}
        train_seconds: dict[str, float] = {}
        for kind in args.kinds:
            console.print(f"  training {kind} for {speaker} ({sample.sample_id})…")
            outcome = registry.train(scope, kind=kind, speaker=speaker, config=TrainConfig(kind=kind, time_budget_s=args.train_seconds), progress=False)
            records[kind] = outcome.record
            train_seconds[kind] = outcome.report.seconds if outcome.report else float("nan")
        data, _ = registry.training_data(scope, speaker)
        heldout = data.heldout
        said_at = {e.id: e.time for e in sample.events}
        contexts = [with_context(x, memory_context(memory, scope, x, args.k, said_at)) for x in heldout]
        ppl: dict[str, float] = {
            "base": perplexity(base, tokenizer, heldout).ppl, "base+memory": perplexity(base, tokenizer, contexts).ppl,
        }
        for kind, label in (("lora", "adapter"), ("prompt", "soft_prompt")):
            if kind in records:
                ppl[label] = adapter_perplexity(base, tokenizer, heldout, records[kind].path, kind).ppl
                ppl[f"{label}+memory"] = adapter_perplexity(base, tokenizer, contexts, records[kind].path, kind).ppl
        qa = {}
        if "lora" in records:
            qa_mem, qa_plain = qa_examples(memory, scope, sample, speaker, args.k, args.qa)
            if qa_mem:
                qa = {
                    "questions": len(qa_mem), "prompting": perplexity(base, tokenizer, qa_mem).ppl,
                    "adapter": adapter_perplexity(base, tokenizer, qa_plain, records["lora"].path, "lora").ppl,
                    "adapter+memory": adapter_perplexity(base, tokenizer, qa_mem, records["lora"].path, "lora").ppl,
                }
        return {
            "sample": sample.sample_id, "speaker": speaker, "scope": scope.user_id,
            "train_examples": len(data.train), "heldout": len(heldout), "facts": len(memory.facts(scope)),
            "events": len(sample.events),
            "perplexity": ppl, "train_seconds": train_seconds,
            "gate_keeps": {k: r.gain > 0 for k, r in records.items()},
            "gain": {k: r.gain for k, r in records.items()},
            "adapters": {k: {"path": r.path, "id": r.id} for k, r in records.items()},
            "qa": qa,
        }
    finally:
        memory.close()


def measure_serving(users: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Switch time, lazy load time and mixed-batch throughput with the adapters trained here."""
    from personagraph.agents.adapters.serving import adapter_handle

    adapters = [
        (adapter_handle(u["scope"], u["adapters"][kind]["id"]), u["adapters"][kind]["path"], kind)
        for kind in ("lora", "prompt") for u in users if kind in u["adapters"]
    ]
    return serving_figures(adapters, repeats=args.repeats, switch_tokens=args.switch_tokens, rows=args.batch_rows, tokens=args.batch_tokens)


def measure_planner(users: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule planner's picks on the labelled queries for each user, against always-prompt and
    always-adapter (+ memory), scored with what this run measured for that user.

    Style requests are scored by the held-out perplexity of the user's own messages under the
    chosen backend (prompting = base + memory), recall questions by the perplexity of LoCoMo's
    reference answers; general requests have no per-user reference, so the choice is only
    counted. The best backend per user and need is the one with the lowest measured perplexity."""
    queries = [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]
    policy = RulePolicy()
    recall_to_adapter = RulePolicy(PlannerConfig(recall_with_adapter=True))
    policies = ("planner", "planner_recall_with_adapter", "always_prompt", "always_adapter")
    picks: dict[str, dict[str, dict[str, int]]] = {p: {} for p in policies}
    scored: dict[str, list[float]] = {p: [] for p in policies}
    best_hits: dict[str, list[bool]] = {p: [] for p in policies}
    classified = 0
    for user in users:
        ppl, qa = user["perplexity"], user["qa"]
        quality = {
            "style": {"prompting": ppl.get("base+memory"), "adapter": ppl.get("adapter"), "adapter+memory": ppl.get("adapter+memory")},
            "recall": {"prompting": qa.get("prompting"), "adapter": qa.get("adapter"), "adapter+memory": qa.get("adapter+memory")},
        }
        keeps = bool(user["gate_keeps"].get("lora"))
        gain = user["gain"].get("lora") if keeps else None
        for q in queries:
            need, why = classify_query(q["query"])
            classified += need == q["need"]
            features = PlanFeatures(
                query_need=need, need_reason=why, event_count=user["events"], fact_count=user["facts"],
                adapter_id=user["adapters"]["lora"]["id"] if keeps else None, adapter_kind="lora" if keeps else None, adapter_gain=gain,
            )
            chosen = {
                "planner": policy.plan(features).backend, "planner_recall_with_adapter": recall_to_adapter.plan(features).backend,
                "always_prompt": "prompting", "always_adapter": "adapter+memory",
            }
            measured = {k: v for k, v in quality.get(q["need"], {}).items() if v is not None}
            best = min(measured, key=measured.get) if measured else None  # type: ignore[arg-type]
            for name, backend in chosen.items():
                picks[name].setdefault(q["need"], {}).setdefault(backend, 0)
                picks[name][q["need"]][backend] += 1
                if best is not None and backend in measured:
                    scored[name].append(math.log(measured[backend]))
                    best_hits[name].append(backend == best)
    return {
        "queries": len(queries), "users": len(users), "need_accuracy": classified / (len(queries) * max(1, len(users))),
        "picks": picks,
        "mean_log_perplexity": {p: statistics.fmean(v) if v else float("nan") for p, v in scored.items()},
        "best_backend_rate": {p: statistics.fmean(v) if v else float("nan") for p, v in best_hits.items()},
    }


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="LoCoMo-format JSON")
    parser.add_argument("--out", help="write the results here as JSON")
    parser.add_argument("--samples", type=int, default=2, help="conversations to use (two speakers each)")
    parser.add_argument("--max-train", type=int, default=160, help="newest training examples kept per user")
    parser.add_argument("--train-seconds", type=float, default=150.0, help="time budget per adapter")
    parser.add_argument("--kinds", default="lora,prompt", help="adapter kinds to train")
    parser.add_argument("--k", type=int, default=4, help="memories quoted per prompt")
    parser.add_argument("--qa", type=int, default=30, help="recall questions per user at most")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--switch-tokens", type=int, default=4, help="new tokens per request in the switch test")
    parser.add_argument("--batch-rows", type=int, default=8)
    parser.add_argument("--batch-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"no data at {data}: LoCoMo lives in ../shared/data/locomo (non-commercial licence, not shipped)")
    samples = read_locomo(data)[: args.samples]
    base, tokenizer = load_training_base()
    embedder = MiniLMEmbedder()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pg-personalization-") as tmp:
        users = [
            measure_user(sample, speaker, base, tokenizer, embedder, args, Path(tmp))
            for sample in samples for speaker in sample.speakers
        ]
        serving = measure_serving(users, args)
    planner = measure_planner(users)

    rows = [[f"{u['sample']}/{u['speaker']}", u["train_examples"], u["heldout"], *(u["perplexity"].get(c, float("nan")) for c in CONDITIONS)] for u in users]
    medians = {c: _median([u["perplexity"].get(c, float("nan")) for u in users]) for c in CONDITIONS}
    rows.append(["median", "", "", *medians.values()])
    print_table("held-out perplexity of each user's own messages", ["user", "train", "held out", *CONDITIONS], rows)
    drops = {c: 1 - medians[c] / medians["base"] for c in CONDITIONS}
    print_table("median perplexity drop against base", ["condition", "drop"], [[c, drops[c]] for c in CONDITIONS])
    print_table("training (seconds of the training loop; the gate's evaluation is not included)", ["user", *(f"{k} s" for k in args.kinds), *(f"{k} gain" for k in args.kinds)],
                [[f"{u['sample']}/{u['speaker']}", *(u["train_seconds"].get(k, float("nan")) for k in args.kinds),
                  *(u["gain"].get(k, float("nan")) for k in args.kinds)] for u in users])
    qa_rows = [[f"{u['sample']}/{u['speaker']}", u["qa"]["questions"], u["qa"]["prompting"], u["qa"]["adapter"], u["qa"]["adapter+memory"]] for u in users if u["qa"]]
    if qa_rows:
        print_table("recall: perplexity of reference answers", ["user", "questions", "prompting", "adapter", "adapter+memory"], qa_rows)
    serving_table(serving)
    print_table(
        "planner on the labelled queries (recall + style, scored with this run's measurements)",
        ["policy", "picks the measured best", "mean log-perplexity", "recall picks", "style picks", "general picks"],
        [[p, planner["best_backend_rate"][p], planner["mean_log_perplexity"][p],
          *(", ".join(f"{b} {n}" for b, n in planner["picks"][p].get(need, {}).items()) for need in ("recall", "style", "general"))]
         for p in ("planner", "planner_recall_with_adapter", "always_prompt", "always_adapter")],
    )
    console.print(f"query-need rules agree with the labels on {planner['need_accuracy']:.0%} of the queries")
    write_json(args.out, {
        "data": str(data), "samples": [s.sample_id for s in samples], "args": {k: v for k, v in vars(args).items() if k != "out"},
        "seconds": time.perf_counter() - started, "users": users, "median_perplexity": medians, "median_drop": drops,
        "median_train_seconds": {k: _median([u["train_seconds"].get(k, float("nan")) for u in users]) for k in args.kinds},
        "serving": serving, "planner": planner,
    })


if __name__ == "__main__":
    main()
