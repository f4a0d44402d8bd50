"""Reflection on LoCoMo: `python -m benchmarks.reflection --data FILE --model MODEL --out FILE.json`.

Each row runs the reflection graph over every conversation (one scope each, a thread per
session, batches of `--batch-size` messages) in a fresh memory, and is scored against the
data's own `observation` facts (LLM-written facts with the dialog ids they came from):

- `explicit`: the graph with no model, the deterministic first-person extractor alone;
- the model row (named by `--model`, e.g. `local:smollm2`): the graph with that chat model;
- `oracle`: no model, the observation facts themselves fed in as the extractor's output, which
  measures everything downstream of extraction (grounding, entities, reconcile, write).

Metrics (over the processed conversations and sessions only):
- coverage: the fraction of observation facts some written fact (any status) matches, MiniLM
  cosine of normalised embeddings >= `--threshold`;
- duplicate rate: written facts whose cosine with an earlier fact of the same user is >=
  `--duplicate-threshold`, or whose normalised text is the same;
- junk rate: written facts that match no observation (cosine >= `--threshold`) and no turn of
  the conversation (cosine >= `--turn-threshold`);
- gate: skipped batches / batches; missed facts = observation facts all of whose dialog ids lie
  in batches the gate skipped;
- LLM calls, seconds of reflection, failed/deferred records, grounding rejections;
- recall@10 of LoCoMo evidence turns (QA categories 1-4) on the resulting memory: turn-only
  search beside a search over every kind, where facts and episodes count through their sources.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from personagraph.graphs.reflection import (
    LLMBudget,
    ReflectionConfig,
    build_reflection_graph,
)
from personagraph.graphs.reflection.explicit import extract_explicit
from personagraph.graphs.reflection.reconcile import normalise_text
from personagraph.graphs.reflection.runner import iter_reflect, pending_batches
from personagraph.graphs.reflection.schema import CandidateEntity, CandidateFact
from personagraph.memory import Event, Memory, MiniLMEmbedder, Scope
from personagraph.memory.ingest import LocomoSample, iter_batches, read_locomo
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .common import (
    SYSTEMS,
    console,
    fresh_memory,
    mean,
    print_table,
    recall_at,
    write_json,
)
from .locomo import normalise_evidence, questions

# 0.75, not 0.70: checked by hand on LoCoMo (explicit-row facts against their best observation),
# a pair at MiniLM cosine 0.70-0.75 states the same fact about one time in four ("Melanie loves
# being a mom" ~ "Melanie is managing kids and work and finds it overwhelming", 0.72), at
# 0.75-0.80 about six in ten, at >= 0.80 nearly always. Observations and facts share the
# speaker's name and a "loves/enjoys" frame, which lifts unrelated pairs to ~0.65. The report
# also gives coverage at every threshold in COVERAGE_CURVE.
COVERAGE_THRESHOLD = 0.75
COVERAGE_CURVE = (0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90)
TURN_THRESHOLD = 0.50
DUPLICATE_THRESHOLD = 0.92  # the reconcile node's own near-duplicate line
RECALL_K = 10
SEARCH_K = 20  # items fetched per search; recall@10 counts their first 10 distinct source turns
SEARCHES: dict[str, list[str] | None] = {"turns": ["event"], "all kinds": None, "events+facts": ["event", "fact"]}
Extractor = Callable[[Sequence[Event]], tuple[list[CandidateFact], list[CandidateEntity]]]


# ====================================================================== data
@dataclass
class Observation:
    text: str
    speaker: str
    event_ids: list[str]  # `<sample>:<dia_id>`, in turn order, only ids of processed turns


@dataclass
class Conversation:
    sample: LocomoSample  # events cut to the processed sessions
    sessions: int
    observations: list[Observation]
    questions: list[tuple[str, int, set[str]]]  # evidence wholly inside the processed sessions
    stats: dict[str, int]

    @property
    def scope(self) -> Scope:
        return Scope(user_id=self.sample.sample_id)


def _dia_ids(raw: Any) -> list[str]:
    """An observation's dialog id(s): "D1:3", ["D15:3", "D15:5"] or "D26:14, D26:34"."""
    entries = raw if isinstance(raw, list) else [raw]
    return normalise_evidence([str(e) for e in entries])[0]


def load_conversations(data: Path, samples: int | None, sessions: int | None) -> list[Conversation]:
    raw = {s["sample_id"]: s for s in json.loads(data.read_text(encoding="utf-8"))}
    out = []
    for sample in read_locomo(data)[:samples]:
        numbers = sorted({int(e.metadata["session"]) for e in sample.events})[:sessions]
        kept = set(map(str, numbers))
        events = [e for e in sample.events if e.metadata["session"] in kept]
        ids = {e.id for e in events}
        order = {e.id: i for i, e in enumerate(events)}
        stats: dict[str, int] = defaultdict(int)
        observations = []
        for key, by_speaker in raw[sample.sample_id].get("observation", {}).items():
            if key.split("_")[1] not in kept:
                continue
            for speaker, facts in by_speaker.items():
                for text, dia in facts:
                    event_ids = [f"{sample.sample_id}:{d}" for d in _dia_ids(dia)]
                    stats["observation_ids_unknown"] += sum(e not in ids for e in event_ids)
                    event_ids = sorted({e for e in event_ids if e in ids}, key=order.__getitem__)
                    if event_ids:
                        observations.append(Observation(text.strip(), speaker, event_ids))
                    else:
                        stats["observations_without_turn"] += 1
        all_questions = questions(sample, stats)
        scoped = [q for q in all_questions if q[2] <= ids]
        stats["questions_outside_sessions"] += len(all_questions) - len(scoped)
        cut = LocomoSample(sample.sample_id, sample.speakers, events, sample.qa)
        out.append(Conversation(cut, len(numbers), observations, scoped, dict(stats)))
    return out


def code_version() -> dict[str, Any]:
    """The commit and a digest of the reflection graph's and chat model's sources as they are on disk."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        head = ""
    digest = hashlib.sha256()
    for path in sorted([*(root / "graphs" / "reflection").glob("*.py"), *(root / "agents" / "llm").glob("*.py")]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return {"git_head": head, "graph_and_llm_sources_sha256": digest.hexdigest()[:16],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _shape(conversations: Sequence[Conversation]) -> list[tuple[str, int]]:
    return [(c.sample.sample_id, len(c.sample.events)) for c in conversations]


def oracle_extractor(conversations: Sequence[Conversation]) -> Extractor:
    """The observation facts as if an extractor had read them off the batch: each fact once, in
    the first batch it reaches that holds one of its dialog ids, citing its ids within that batch."""
    by_event: dict[str, list[int]] = defaultdict(list)
    every = [obs for conv in conversations for obs in conv.observations]
    for n, obs in enumerate(every):
        for event_id in obs.event_ids:
            by_event[event_id].append(n)
    emitted: set[int] = set()

    def extract(events: Sequence[Event]) -> tuple[list[CandidateFact], list[CandidateEntity]]:
        in_batch = {e.id: e for e in events}
        facts = []
        for event in events:
            for n in by_event.get(event.id, []):
                if n in emitted:
                    continue
                emitted.add(n)
                obs = every[n]
                facts.append(CandidateFact(
                    text=obs.text[:500], fact_kind="other", subject=obs.speaker[:200], confidence=1.0,
                    sources=[e for e in obs.event_ids if e in in_batch], valid_from=event.time, origin="oracle",
                ))
        return facts, []

    return extract


# ====================================================================== running a row
class _Recorder:
    """Stands in for the compiled graph in `iter_reflect`, keeping each run's full final state."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.last: dict[str, Any] = {}

    def invoke(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.last = self.graph.invoke(*args, **kwargs)
        return self.last


@dataclass
class RowSpec:
    name: str
    conversations: list[Conversation]
    model: Any = None
    extractor: Extractor = extract_explicit


@dataclass
class BatchRecord:
    scope: str
    events: list[str]
    report: dict[str, Any]
    candidates: int
    origins: dict[str, int]  # candidates per origin (explicit, llm, oracle)
    rejected: list[dict[str, Any]]
    accepted: int  # after grounding, before the in-batch merge of same-text candidates
    decisions: list[dict[str, Any]]


@dataclass
class RowRun:
    spec: RowSpec
    batches: list[BatchRecord] = field(default_factory=list)
    reflect_s: float = 0.0
    facts: dict[str, list[Any]] = field(default_factory=dict)  # scope -> every fact, any status
    entities: dict[str, list[str]] = field(default_factory=dict)
    episodes: int = 0
    failed: int = 0
    deferred: int = 0
    retrieval: dict[str, dict[str, float]] = field(default_factory=dict)
    n_questions: int = 0


def run_row(spec: RowSpec, embedder: MiniLMEmbedder, batch_size: int, hourly_budget: int, calls_per_batch: int) -> RowRun:
    with tempfile.TemporaryDirectory(prefix="pg-reflection-") as root:
        memory = fresh_memory(root, embedder)
        try:
            return _run_row(memory, spec, batch_size, hourly_budget, calls_per_batch)
        finally:
            memory.close()


def _run_row(memory: Memory, spec: RowSpec, batch_size: int, hourly_budget: int, calls_per_batch: int) -> RowRun:
    for conv in spec.conversations:
        for chunk in iter_batches(conv.sample.events, 256):
            memory.add_events(conv.scope, chunk)
    config = ReflectionConfig(use_model=spec.model is not None, model_name=spec.name)
    budget = LLMBudget(per_batch=calls_per_batch, per_user_per_hour=hourly_budget)
    recorder = _Recorder(build_reflection_graph(memory, spec.model, config=config, budget=budget, extractor=spec.extractor))
    run = RowRun(spec)
    total = sum(len(pending_batches(memory, c.scope, batch_size)) for c in spec.conversations)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"reflecting: {spec.name}", total=total)
        for conv in spec.conversations:
            start = time.perf_counter()
            for batch, report in iter_reflect(memory, recorder, conv.scope, batch_size):  # type: ignore[arg-type]
                run.reflect_s += time.perf_counter() - start
                state = recorder.last
                run.batches.append(BatchRecord(
                    scope=conv.scope.user_id, events=[e.id for e in batch], report=report,
                    candidates=len(state.get("explicit", [])) + len(state.get("extracted", [])),
                    origins=dict(Counter(c.origin for c in [*state.get("explicit", []), *state.get("extracted", [])])),
                    rejected=list(state.get("rejected", [])),
                    accepted=len(state.get("explicit", [])) + len(state.get("extracted", [])) - len(state.get("rejected", [])),
                    decisions=[{"text": d.candidate.text, "origin": d.candidate.origin, "action": d.action, "target_id": d.target_id, "reason": d.reason, "by": d.by}
                               for d in state.get("decisions", [])],
                ))
                progress.advance(task)
                start = time.perf_counter()
            run.reflect_s += time.perf_counter() - start
    for conv in spec.conversations:
        scope = conv.scope
        run.facts[scope.user_id] = sorted(memory.facts(scope, status=None), key=lambda f: (f.created_at, f.id))
        run.entities[scope.user_id] = sorted(e.name for e in memory.records.list(scope, "entity"))  # type: ignore[attr-defined]
        run.episodes += len(memory.records.list(scope, "episode"))
        run.failed += len(memory.reflections(scope, status="failed"))
        run.deferred += len(memory.reflections(scope, status="deferred"))
    run.retrieval, run.n_questions = _retrieval(memory, spec.conversations)
    return run


def _retrieval(memory: Memory, conversations: Sequence[Conversation]) -> tuple[dict[str, dict[str, float]], int]:
    scores: dict[str, list[float]] = defaultdict(list)
    per_category: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    n = 0
    for conv in conversations:
        for question, category, gold in conv.questions:
            n += 1
            for name, kinds in SEARCHES.items():
                result = memory.search(conv.scope, question, kinds=kinds, k=SEARCH_K, config=SYSTEMS["personagraph"])
                value = recall_at(result.items, gold, RECALL_K)
                scores[name].append(value)
                per_category[name][category].append(value)
    out = {name: {f"recall@{RECALL_K}": mean(values)} | {f"cat{c}": mean(v) for c, v in sorted(per_category[name].items())}
           for name, values in scores.items()}
    return out, n


# ====================================================================== scoring
def _embed(embedder: MiniLMEmbedder, texts: list[str]) -> np.ndarray:
    return np.asarray(embedder.embed_documents(texts), dtype=np.float32).reshape(len(texts), embedder.dim)


def _turn_text(event: Event) -> str:
    text = f"{event.speaker}: {event.text}"
    return f"{text} [image: {event.caption}]" if event.caption else text


@dataclass
class Thresholds:
    coverage: float = COVERAGE_THRESHOLD
    turn: float = TURN_THRESHOLD
    duplicate: float = DUPLICATE_THRESHOLD


def score_row(run: RowRun, embedder: MiniLMEmbedder, th: Thresholds, n_examples: int = 8) -> dict[str, Any]:
    convs = run.spec.conversations
    n_obs = matched = n_facts = dups = junk = 0
    curve = dict.fromkeys(COVERAGE_CURVE, 0)
    near_pairs: list[dict[str, Any]] = []
    examples: dict[str, list[Any]] = {"unmatched_observations": [], "duplicates": [], "junk": []}
    for conv in convs:
        facts = run.facts.get(conv.scope.user_id, [])
        obs = conv.observations
        n_obs += len(obs)
        n_facts += len(facts)
        obs_vec = _embed(embedder, [o.text for o in obs])
        fact_vec = _embed(embedder, [f.text for f in facts])
        sim = obs_vec @ fact_vec.T if len(obs) and len(facts) else np.zeros((len(obs), len(facts)), dtype=np.float32)
        best = sim.max(axis=1) if len(facts) else np.zeros(len(obs))
        matched += int((best >= th.coverage).sum())
        for t in curve:
            curve[t] += int((best >= t).sum())
        for i in np.argsort(-best):
            o = obs[int(i)]
            if len(facts) and th.coverage - 0.1 <= best[i] < th.coverage + 0.1:
                near_pairs.append({"cosine": round(float(best[i]), 3), "observation": o.text,
                                   "fact": facts[int(sim[i].argmax())].text, "matched": bool(best[i] >= th.coverage)})
        for i in np.flatnonzero(best < th.coverage)[:n_examples]:
            if len(examples["unmatched_observations"]) < n_examples:
                examples["unmatched_observations"].append({"observation": obs[int(i)].text, "best_cosine": round(float(best[i]), 3)})
        # duplicates: against any earlier fact of the same user
        keys: set[str] = set()
        self_sim = fact_vec @ fact_vec.T if len(facts) else np.zeros((0, 0))
        for j, fact in enumerate(facts):
            key = normalise_text(fact.text)
            earlier = self_sim[j, :j]
            if key in keys or (j and earlier.max() >= th.duplicate):
                dups += 1
                if len(examples["duplicates"]) < n_examples:
                    k = int(earlier.argmax()) if j else 0
                    examples["duplicates"].append({"fact": fact.text, "earlier": facts[k].text,
                                                   "cosine": round(float(earlier.max()), 3) if j else 1.0})
            keys.add(key)
        # junk: matches no observation and no turn
        turn_vec = _embed(embedder, [_turn_text(e) for e in conv.sample.events])
        fact_obs = sim.max(axis=0) if len(obs) and len(facts) else np.zeros(len(facts))
        fact_turn = (fact_vec @ turn_vec.T).max(axis=1) if len(facts) else np.zeros(0)
        for j in np.flatnonzero((fact_obs < th.coverage) & (fact_turn < th.turn)):
            junk += 1
            if len(examples["junk"]) < n_examples:
                examples["junk"].append({"fact": facts[int(j)].text, "best_observation": round(float(fact_obs[j]), 3),
                                         "best_turn": round(float(fact_turn[j]), 3)})

    reports = [b.report for b in run.batches]
    statuses = Counter(r.get("status", "?") for r in reports)
    skipped_ids = {e for b in run.batches if b.report.get("status") == "skipped" for e in b.events}
    missed = [o for c in convs for o in c.observations if set(o.event_ids) <= skipped_ids]
    messages = sum(len(b.events) for b in run.batches)
    calls = sum(r.get("llm_calls", 0) for r in reports)
    rejected = [r for b in run.batches for r in b.rejected]
    decisions = [d for b in run.batches for d in b.decisions]
    candidates = sum(b.candidates for b in run.batches)
    accepted = sum(b.accepted for b in run.batches)
    actions = Counter(d["action"] for d in decisions)
    noop_reasons = Counter("same text" if d["reason"] == "same text" else "near-duplicate" if d["reason"].startswith("near") else d["reason"]
                           for d in decisions if d["action"] == "noop")
    fact_text = {f.id: f.text for facts in run.facts.values() for f in facts}
    near_pairs.sort(key=lambda p: p["cosine"])
    out: dict[str, Any] = {
        "conversations": len(convs), "sessions": sum(c.sessions for c in convs),
        "messages": sum(len(c.sample.events) for c in convs), "reflected_messages": messages,
        "observations": n_obs, "coverage": matched / n_obs if n_obs else float("nan"), "observations_matched": matched,
        "coverage_at": {f"{t:.2f}": curve[t] / n_obs if n_obs else float("nan") for t in curve},
        "facts_written": n_facts, "facts_active": sum(f.status == "active" for fs in run.facts.values() for f in fs),
        "facts_per_message": n_facts / messages if messages else float("nan"),
        "duplicate_rate": dups / n_facts if n_facts else float("nan"), "duplicates": dups,
        "junk_rate": junk / n_facts if n_facts else float("nan"), "junk": junk,
        "batches": len(reports), "statuses": dict(statuses),
        "skip_rate": statuses["skipped"] / len(reports) if reports else float("nan"),
        "missed_facts": len(missed), "missed_fraction": len(missed) / n_obs if n_obs else float("nan"),
        "llm_calls": calls, "llm_calls_per_message": calls / messages if messages else float("nan"),
        "llm_calls_per_batch": calls / len(reports) if reports else float("nan"),
        "llm_calls_in_gated_batches": sum(r.get("llm_calls", 0) for r in reports if r.get("status") == "skipped"),
        "reflect_s": run.reflect_s, "seconds_per_message": run.reflect_s / messages if messages else float("nan"),
        "failed_records": run.failed, "deferred_records": run.deferred,
        "grounding_rejections": sum(r.get("rejected", 0) for r in reports),
        "candidates": candidates, "accepted_by_grounding": accepted,
        "by_origin": {
            origin: {"candidates": sum(b.origins.get(origin, 0) for b in run.batches),
                     "rejected": sum(r.get("origin") == origin for r in rejected),
                     "written": sum(d["origin"] == origin and d["action"] != "noop" for d in decisions)}
            for origin in sorted({o for b in run.batches for o in b.origins})
        },
        "merged_in_batch": accepted - len(decisions), "decisions": dict(actions), "noop_reasons": dict(noop_reasons),
        "facts_superseded": sum(r.get("facts_superseded", 0) for r in reports),
        "facts_retracted": sum(r.get("facts_retracted", 0) for r in reports),
        "entities": sum(len(v) for v in run.entities.values()), "episodes": run.episodes,
        "n_questions": run.n_questions, "retrieval": run.retrieval,
        "examples": {
            **examples,
            "rejected_by_grounding": rejected[:n_examples * 3],
            "folded_as_duplicates": [{"text": d["text"], "into": fact_text.get(d["target_id"] or "", "?"), "reason": d["reason"]}
                                     for d in decisions if d["action"] == "noop"][:n_examples * 2],
            "near_threshold_pairs": near_pairs[:: max(1, len(near_pairs) // (2 * n_examples))][: 2 * n_examples],
            "missed_by_gate": [o.text for o in missed[:n_examples]],
            "written_by_model": [d["text"] for d in decisions if d["origin"] == "llm" and d["action"] != "noop"][: n_examples * 3],
            "entities": {k: v[:40] for k, v in run.entities.items()},
        },
    }
    return out


# ====================================================================== reporting
def _print(report: dict[str, Any]) -> None:
    th = report["config"]["thresholds"]
    rows = report["rows"]
    names = list(rows)
    print_table(
        f"Reflection on LoCoMo: what was written (coverage: cosine >= {th['coverage']}; duplicate: >= {th['duplicate']} "
        f"to an earlier fact; junk: < {th['coverage']} to every observation and < {th['turn']} to every turn)",
        ["row", "convs", "sessions", "messages", "observations", "facts written", "facts/msg", "coverage", "dup rate", "junk rate"],
        [[n, r["conversations"], r["sessions"], r["messages"], r["observations"], r["facts_written"], r["facts_per_message"],
          r["coverage"], r["duplicate_rate"], r["junk_rate"]] for n, r in rows.items()],
    )
    print_table(
        "Reflection on LoCoMo: gate, cost and failures",
        ["row", "batches", "skip rate", "missed facts", "missed frac", "LLM calls/msg", "calls/batch", "calls in gated",
         "s/msg", "reflect s", "failed", "deferred", "grounding rejections"],
        [[n, r["batches"], r["skip_rate"], r["missed_facts"], r["missed_fraction"], r["llm_calls_per_message"],
          r["llm_calls_per_batch"], r["llm_calls_in_gated_batches"], r["seconds_per_message"], r["reflect_s"],
          r["failed_records"], r["deferred_records"], r["grounding_rejections"]] for n, r in rows.items()],
    )
    print_table(
        "Reflection on LoCoMo: downstream of extraction (candidate -> grounding -> in-batch merge -> reconcile)",
        ["row", "candidates", "rejected", "merged in batch", "add", "noop (dup)", "supersede", "retract", "update",
         "entities", "episodes", "candidates/rejected/written by origin"],
        [[n, r["candidates"], r["grounding_rejections"], r["merged_in_batch"], r["decisions"].get("add", 0),
          r["decisions"].get("noop", 0), r["decisions"].get("supersede", 0), r["decisions"].get("retract", 0),
          r["decisions"].get("update", 0), r["entities"], r["episodes"],
          " ".join(f"{o}:{v['candidates']}/{v['rejected']}/{v['written']}" for o, v in r["by_origin"].items())]
         for n, r in rows.items()],
    )
    print_table(
        "Coverage of the observation facts against the cosine threshold",
        ["row", *(f">= {t}" for t in next(iter(rows.values()))["coverage_at"])] if rows else ["row"],
        [[n, *r["coverage_at"].values()] for n, r in rows.items()],
    )
    searches = list(SEARCHES)
    print_table(
        f"LoCoMo evidence recall@{RECALL_K} on each row's memory (QA categories 1-4; facts and episodes count through sources)",
        ["row", "questions", *(f"R@{RECALL_K} {s}" for s in searches)],
        [[n, rows[n]["n_questions"], *(rows[n]["retrieval"].get(s, {}).get(f"recall@{RECALL_K}", float("nan")) for s in searches)]
         for n in names if rows[n]["retrieval"]],
    )


def run(
    data: Path, rows: Sequence[str], out: Path | None, *, model: str | None = None, samples: int | None = None,
    sessions: int | None = None, model_samples: int | None = None, model_sessions: int | None = None,
    batch_size: int = 8, thresholds: Thresholds | None = None, hourly_budget: int = 1_000_000,
    calls_per_batch: int = LLMBudget().per_batch,
    embedder: MiniLMEmbedder | None = None, chat_model: Any = None,
) -> dict[str, Any]:
    """Run the chosen rows ("explicit", "model", "oracle") and return (and write) the report."""
    thresholds = thresholds or Thresholds()
    version = code_version()  # before anything runs: the code this report measured
    embedder = embedder or MiniLMEmbedder()
    convs = load_conversations(data, samples, sessions)
    specs: list[RowSpec] = []
    for row in rows:
        if row == "explicit":
            specs.append(RowSpec("explicit", convs))
        elif row == "oracle":
            specs.append(RowSpec("oracle", convs, extractor=oracle_extractor(convs)))
        elif row == "model":
            if model is None and chat_model is None:
                raise ValueError("the model row needs --model")
            if chat_model is None:
                from personagraph.agents.llm import load_chat_model

                chat_model = load_chat_model(model)
            subset = load_conversations(data, model_samples or samples, model_sessions or sessions)
            specs.append(RowSpec(model or "model", subset, model=chat_model))
            if _shape(subset) != _shape(convs):  # the model's subset: the cheap rows again, like for like
                specs += [RowSpec(f"{r}@model-subset", subset, extractor=oracle_extractor(subset) if r == "oracle" else extract_explicit)
                          for r in ("explicit", "oracle") if r in rows]
        else:
            raise ValueError(f"unknown row {row!r}: explicit, model or oracle")
    report: dict[str, Any] = {
        "data": str(data),
        "code": version,
        "config": {
            "rows": [s.name for s in specs], "model": model, "batch_size": batch_size, "samples": samples,
            "sessions": sessions, "model_samples": model_samples or samples, "model_sessions": model_sessions or sessions,
            "hourly_llm_budget": hourly_budget, "llm_calls_per_batch_budget": calls_per_batch,
            "thresholds": {"coverage": thresholds.coverage, "turn": thresholds.turn, "duplicate": thresholds.duplicate},
            "recall_k": RECALL_K, "search_k": SEARCH_K, "searches": {k: v or "all" for k, v in SEARCHES.items()},
            "definitions": {
                "coverage": "observation facts with a written fact (any status) at MiniLM cosine >= thresholds.coverage",
                "duplicate_rate": "written facts at cosine >= thresholds.duplicate to an earlier fact of the same user, or with the same normalised text",
                "junk_rate": "written facts below thresholds.coverage to every observation and below thresholds.turn to every turn ('speaker: text [image: caption]')",
                "missed_facts": "observation facts all of whose dialog ids lie in batches the gate skipped",
                "merged_in_batch": "grounded candidates merged with a same-text candidate of the same batch before reconcile",
            },
        },
        "data_stats": {c.sample.sample_id: c.stats for c in convs},
        "rows": {},
    }
    for spec in specs:
        console.print(f"[bold]{spec.name}[/]: {len(spec.conversations)} conversations, "
                      f"{sum(len(c.sample.events) for c in spec.conversations)} messages")
        row_run = run_row(spec, embedder, batch_size, hourly_budget, calls_per_batch)
        report["rows"][spec.name] = score_row(row_run, embedder, thresholds)
    _print(report)
    write_json(out, report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a LoCoMo JSON file (locomo10.json schema, with observations)")
    parser.add_argument("--model", help="chat model for the model row, e.g. local:smollm2")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--rows", default="explicit,model,oracle", help="comma-separated: explicit, model, oracle")
    parser.add_argument("--samples", type=int, help="only the first N conversations")
    parser.add_argument("--sessions", type=int, help="only the first N sessions of each conversation")
    parser.add_argument("--model-samples", type=int, help="conversations for the (slow) model row; default --samples")
    parser.add_argument("--model-sessions", type=int, help="sessions per conversation for the model row; default --sessions")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=COVERAGE_THRESHOLD, help="coverage cosine (default %(default)s)")
    parser.add_argument("--turn-threshold", type=float, default=TURN_THRESHOLD, help="junk: cosine to the nearest turn (default %(default)s)")
    parser.add_argument("--duplicate-threshold", type=float, default=DUPLICATE_THRESHOLD, help="duplicate cosine (default %(default)s)")
    parser.add_argument("--hourly-budget", type=int, default=1_000_000,
                        help="LLM calls per user per hour (default: effectively unlimited, so rate limits do not defer batches)")
    parser.add_argument("--calls-per-batch", type=int, default=LLMBudget().per_batch,
                        help="LLM calls a batch may make (default %(default)s: extraction plus one reconcile call)")
    args = parser.parse_args()
    if not console.is_terminal:  # logs and pipes: wide enough that the tables keep their numbers
        console.width = max(console.width, 200)
    if not args.data.exists():
        parser.error(f"{args.data} does not exist (the data lives in ../shared/data/locomo)")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if "model" in rows and not args.model:
        if args.rows != parser.get_default("rows"):
            parser.error("the model row needs --model")
        rows.remove("model")
        console.print("no --model: running the explicit and oracle rows only")
    run(args.data, rows, args.out, model=args.model, samples=args.samples, sessions=args.sessions,
        model_samples=args.model_samples, model_sessions=args.model_sessions, batch_size=args.batch_size,
        thresholds=Thresholds(args.threshold, args.turn_threshold, args.duplicate_threshold), hourly_budget=args.hourly_budget,
        calls_per_batch=args.calls_per_batch)


if __name__ == "__main__":
    main()
