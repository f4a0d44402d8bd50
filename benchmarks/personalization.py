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
from personagraph.agents.adapters.registry import AdapterRegistry
from personagraph.agents.adapters.training import (
    TrainConfig,
    evaluate_adapter,
    load_training_base,
)
from personagraph.agents.planner import PlanFeatures, RulePolicy
from personagraph.agents.prompting import build_personal_prompt, sanitize
from personagraph.agents.query_need import classify_query
from personagraph.graphs.reflection import build_reflection_graph
from personagraph.graphs.reflection.runner import iter_reflect
from personagraph.memory import Memory, MiniLMEmbedder, Scope
from personagraph.memory.ingest import LocomoSample, read_locomo
from personagraph.memory.models import AdapterRecord

from .common import console, fresh_memory, print_table, write_json

CONDITIONS = ("base", "base+memory", "soft_prompt", "soft_prompt+memory", "adapter", "adapter+memory")
QUERIES = Path(__file__).parent / "data" / "planner_queries.jsonl"
QA_CATEGORIES = {1, 2, 4}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:60] or "user"


def memory_context(memory: Memory, scope: Scope, example: SFTExample, k: int) -> str:
    """Memories for one held-out message, as the prompting backend quotes them."""
    query = example.messages[-1]["content"]
    found = memory.search(scope, query, k=k + len(example.source_ids), as_of=example.time - timedelta(seconds=1)).items
    shown = set(example.source_ids)
    items = [i for i in found if not shown.issuperset(i.sources)][:k]
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
        contexts = [with_context(x, memory_context(memory, scope, x, args.k)) for x in heldout]
        ppl: dict[str, float] = {}
        for kind, label in (("lora", "adapter"), ("prompt", "soft_prompt")):
            if kind not in records:
                continue
            plain_base, plain = evaluate_adapter(base, tokenizer, heldout, records[kind].path, kind)
            memory_base, with_mem = evaluate_adapter(base, tokenizer, contexts, records[kind].path, kind)
            ppl.update({"base": plain_base.ppl, "base+memory": memory_base.ppl, label: plain.ppl, f"{label}+memory": with_mem.ppl})
        qa = {}
        if "lora" in records:
            qa_mem, qa_plain = qa_examples(memory, scope, sample, speaker, args.k, args.qa)
            if qa_mem:
                prompt_base, prompt_adapter = evaluate_adapter(base, tokenizer, qa_mem, records["lora"].path, "lora")
                _, bare_adapter = evaluate_adapter(base, tokenizer, qa_plain, records["lora"].path, "lora")
                qa = {"questions": len(qa_mem), "prompting": prompt_base.ppl, "adapter": bare_adapter.ppl, "adapter+memory": prompt_adapter.ppl}
        return {
            "sample": sample.sample_id, "speaker": speaker, "scope": scope.user_id,
            "train_examples": len(data.train), "heldout": len(heldout), "facts": len(memory.facts(scope)),
            "perplexity": ppl, "train_seconds": train_seconds,
            "gate_keeps": {k: r.gain > 0 for k, r in records.items()},
            "gain": {k: r.gain for k, r in records.items()},
            "adapters": {k: {"path": r.path, "id": r.id} for k, r in records.items()},
            "qa": qa,
        }
    finally:
        memory.close()


def measure_serving(users: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Switch time, lazy load time and mixed-batch throughput on the bf16 serving runtime."""
    from personagraph.agents.adapters.serving import AdapterPool, adapter_handle
    from personagraph.agents.llm.runtime import ChatRuntime, GenerationRequest
    from personagraph.agents.llm.weights import model_dir

    runtime = ChatRuntime.load(model_dir(), "bfloat16")
    pool = AdapterPool(runtime, max_adapters=len(users) + 1)
    served = []
    for user in users:
        if "lora" in user["adapters"]:
            name = adapter_handle(user["scope"], user["adapters"]["lora"]["id"])
            served.append(pool.acquire(name, user["adapters"]["lora"]["path"], "lora"))
    soft = [pool.acquire(adapter_handle(u["scope"], u["adapters"]["prompt"]["id"]), u["adapters"]["prompt"]["path"], "prompt")
            for u in users if "prompt" in u["adapters"]]
    load_ms = pool.stats().get("load_ms", [])
    if len(served) < 2:
        return {"note": "fewer than two LoRA adapters: nothing to switch between", "load_ms": load_ms}
    prompt = runtime.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me about your weekend."}], add_generation_prompt=True, tokenize=True, return_dict=True,
    )["input_ids"]

    def one(adapter: str | None) -> float:
        started = time.perf_counter()
        runtime.generate_batch([GenerationRequest(list(prompt), adapter=adapter, max_new_tokens=args.switch_tokens)])
        return (time.perf_counter() - started) * 1000

    a, b = served[0].name, served[1].name
    one(a)  # warm up
    same = [one(a) for _ in range(args.repeats * 4)]
    alternating = [one(b if i % 2 else a) for i in range(args.repeats * 4)]

    def batch_rate(rows: list[GenerationRequest]) -> float:
        started = time.perf_counter()
        outputs = runtime.generate_batch(rows)
        return sum(len(o) for o in outputs) / (time.perf_counter() - started)

    size, tokens = args.batch_rows, args.batch_tokens
    def rows(adapters: list[str | None]) -> list[GenerationRequest]:
        return [GenerationRequest(list(prompt), adapter=adapters[i % len(adapters)], max_new_tokens=tokens) for i in range(size)]

    mixed_names: list[str | None] = [s.name for s in served[:4]] + [None]
    layouts = {"all_base": rows([None]), "single_adapter": rows([a]), "mixed_adapters": rows(mixed_names)}
    if soft:
        layouts["mixed_with_soft_prompts"] = [
            GenerationRequest(list(prompt), soft_prompt=soft[i % len(soft)].soft_prompt, max_new_tokens=tokens) if i % 3 == 2
            else GenerationRequest(list(prompt), adapter=mixed_names[i % len(mixed_names)], max_new_tokens=tokens)
            for i in range(size)
        ]
    # Output lengths differ by adapter (a row stops at its eos), so rates are tokens per second of
    # the rows that ran; every layout runs the same number of rows and the same token limit.
    throughput = {name: statistics.median(batch_rate(layout) for _ in range(args.repeats)) for name, layout in layouts.items()}
    return {
        "load_ms": load_ms,
        "request_ms_same_adapter": statistics.median(same),
        "request_ms_alternating": statistics.median(alternating),
        "switch_ms": statistics.median(alternating) - statistics.median(same),
        "batch_rows": size, "batch_tokens": tokens,
        "tokens_per_s": throughput,
        "mixed_overhead": 1.0 - throughput["mixed_adapters"] / throughput["single_adapter"],
    }


def measure_planner(users: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule planner's picks on the labelled queries for each user, against fixed policies.

    The right backend per need follows what the benchmark measures: recall questions are best
    answered with quoted memories (prompting), style requests by the user's adapter with
    memory when the user has one that passed the gate, general ones by plain prompting."""
    queries = [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]
    policy = RulePolicy()
    rows = []
    for user in users:
        gain = user["gain"].get("lora")
        has = bool(gain is not None and user["gate_keeps"].get("lora"))
        for q in queries:
            need, why = classify_query(q["query"])
            features = PlanFeatures(
                query_need=need, need_reason=why, event_count=400, fact_count=user["facts"],
                adapter_id=user["adapters"].get("lora", {}).get("id") if has else None,
                adapter_kind="lora" if has else None, adapter_gain=gain if has else None,
            )
            ideal = "adapter+memory" if q["need"] == "style" and has and gain >= policy.config.min_adapter_gain else "prompting"
            picked = policy.plan(features).backend
            rows.append({"need": q["need"], "classified": need, "ideal": ideal, "planner": picked})
    out: dict[str, Any] = {"queries": len(queries), "decisions": len(rows)}
    for name, choose in (("planner", lambda r: r["planner"]), ("always_prompt", lambda r: "prompting"), ("always_adapter", lambda r: "adapter+memory")):
        out[name] = {
            need: sum(choose(r) == r["ideal"] for r in rows if r["need"] == need) / max(1, sum(r["need"] == need for r in rows))
            for need in ("recall", "style", "general")
        } | {"all": sum(choose(r) == r["ideal"] for r in rows) / len(rows)}
    out["need_accuracy"] = sum(r["need"] == r["classified"] for r in rows) / len(rows)
    return out


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
    print_table("training", ["user", *(f"{k} s" for k in args.kinds), *(f"{k} gain" for k in args.kinds)],
                [[f"{u['sample']}/{u['speaker']}", *(u["train_seconds"].get(k, float("nan")) for k in args.kinds),
                  *(u["gain"].get(k, float("nan")) for k in args.kinds)] for u in users])
    qa_rows = [[f"{u['sample']}/{u['speaker']}", u["qa"]["questions"], u["qa"]["prompting"], u["qa"]["adapter"], u["qa"]["adapter+memory"]] for u in users if u["qa"]]
    if qa_rows:
        print_table("recall: perplexity of reference answers", ["user", "questions", "prompting", "adapter", "adapter+memory"], qa_rows)
    if "switch_ms" in serving:
        print_table("serving", ["measure", "value"], [
            ["switch ms (median)", serving["switch_ms"]], ["lazy load ms (median)", _median(serving["load_ms"])],
            *([f"tokens/s {k}", v] for k, v in serving["tokens_per_s"].items()), ["mixed-batch overhead", serving["mixed_overhead"]],
        ])
    print_table("planner: share of decisions matching the measured best backend", ["policy", "recall", "style", "general", "all"],
                [[p, *(planner[p][n] for n in ("recall", "style", "general", "all"))] for p in ("planner", "always_prompt", "always_adapter")])
    write_json(args.out, {
        "data": str(data), "samples": [s.sample_id for s in samples], "args": {k: v for k, v in vars(args).items() if k != "out"},
        "seconds": time.perf_counter() - started, "users": users, "median_perplexity": medians, "median_drop": drops,
        "median_train_seconds": {k: _median([u["train_seconds"].get(k, float("nan")) for u in users]) for k in args.kinds},
        "serving": serving, "planner": planner,
    })


if __name__ == "__main__":
    main()
