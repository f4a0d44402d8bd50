"""PrefEval classification (MCQ) on the local model: `python -m benchmarks.prefeval_mcq --data DIR --inter-turns N --out FILE.json`.

Every record of `mcq_options/<topic>.json` is one user in the explicit form: their history is
the preference turn, then the first N filler turns (as in `benchmarks.prefeval`), and they
ask the record's `question`. The four `classification_task_options` (the first one follows
the preference) are shown in an order shuffled by `random.Random(f"{topic}:{index}")`; the
model's answer is the option with the highest log-probability per token as the assistant's
reply (`completion_logprobs(...).mean`), so no generation or judge is needed. Chance is 25%.

Conditions, on the same users and one float32 base:
- no_memory: the question alone;
- full_history: the whole history as chat turns, then the question, cut from the left to
  the context window (the explicit form has no assistant reply to the preference, so two
  user turns follow each other, as in the data);
- personagraph: the history ingested into memory, the question's top 5 memories quoted by
  `build_personal_prompt`;
- personagraph+adapter: that prompt, scored with the user's DPO adapter trained on their
  choice from the same index of `implicit_preference/choice-based` (a different question);
  a rejected adapter leaves the user on the base, as the planner would serve them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personagraph.agents.alignment.scoring import completion_logprobs
from personagraph.agents.prompting import build_personal_prompt
from personagraph.memory import Memory, MiniLMEmbedder
from personagraph.memory.ingest import iter_batches
from rich.progress import track

from .common import fresh_memory, mean, print_table, write_json
from .prefeval import (
    FORMS,
    Case,
    MemoEmbedder,
    Turn,
    history,
    preference_turns,
    read_filler,
)

CONDITIONS = ("no_memory", "full_history", "personagraph", "personagraph+adapter")
MCQ_FOLDER = "mcq_options"
SEARCH_K = 5
TOKEN_BUDGET = 600
ROLES = {"system": "system", "human": "user", "ai": "assistant"}  # langchain message type -> chat role
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class McqUser:
    """One user: their case, the options in the order shown, and the choice they made elsewhere."""

    case: Case
    order: list[int]  # order[j] is the data index of the j-th option shown; data index 0 is right
    options: list[str]
    choice_query: str
    choice_options: list[str]
    choice_aligned: str

    @property
    def correct(self) -> int:
        return self.order.index(0)


def shuffled(topic: str, index: int, n: int) -> list[int]:
    """The fixed option order of one user: the same on every run and machine."""
    order = list(range(n))
    random.Random(f"{topic}:{index}").shuffle(order)
    return order


def read_users(data: Path, topics: list[str] | None, limit: int | None) -> list[McqUser]:
    """The first `limit` MCQ records of each topic (every topic file when none are named)."""
    names = topics or sorted(p.stem for p in (data / MCQ_FOLDER).glob("*.json"))
    users = []
    for topic in names:
        mcq, choice = (data / MCQ_FOLDER / f"{topic}.json", data / FORMS["implicit_choice"] / f"{topic}.json")
        for path in (mcq, choice):
            if not path.exists():
                raise SystemExit(f"{path} does not exist")
        choices = json.loads(choice.read_text())
        for i, record in enumerate(json.loads(mcq.read_text())[:limit]):
            options = record["classification_task_options"]
            order = shuffled(topic, i, len(options))
            users.append(McqUser(
                case=Case("explicit", topic, i, preference_turns("explicit", record), record["question"]),
                order=order,
                options=[options[j] for j in order],
                choice_query=choices[i]["implicit_query"],
                choice_options=choices[i]["options"],
                choice_aligned=choices[i]["aligned_op"],
            ))
    return users


def chat(turns: list[Turn]) -> Messages:
    return [{"role": role, "content": text} for role, text, _ in turns]


def memory_prompt(memory: Memory, case: Case) -> Messages:
    """The question with the user's top memories quoted, as the assistant would be prompted."""
    items = memory.search(case.scope, case.question, k=SEARCH_K).items
    prompt = build_personal_prompt(
        case.question, profile=None, items=items, history=[], token_budget=TOKEN_BUDGET, user_name="the user"
    )
    return [{"role": ROLES[m.type], "content": m.text} for m in prompt.messages]


def answer(model: Any, tokenizer: Any, prompt: Messages, user: McqUser, max_context: int) -> dict[str, Any]:
    """The option the model finds likeliest per token, with every option's summed log-probability."""
    start = time.perf_counter()
    scores = completion_logprobs(model, tokenizer, [prompt] * len(user.options), user.options, max_length=max_context)
    means = [s.mean for s in scores]
    chosen = means.index(max(means))
    return {
        "chosen": chosen,
        "correct": chosen == user.correct,
        "logprobs": [round(s.logprob, 4) for s in scores],
        "seconds": time.perf_counter() - start,
    }


def train_user_adapter(memory: Memory, registry: Any, user: McqUser, seconds: float) -> Any:
    """Record the user's choice as feedback and train their preference adapter on it."""
    from personagraph.agents.alignment.trainer import PreferenceConfig
    from personagraph.memory.models import Feedback

    memory.add_feedback(user.case.scope, Feedback(
        feedback_kind="choice",
        query=user.choice_query,
        alternatives=user.choice_options,
        chosen=user.choice_options.index(user.choice_aligned),
    ))
    config = PreferenceConfig(method="dpo", time_budget_s=seconds)
    # One choice is all such a user gave: nothing can be held out, so the gate reads the
    # training pairs (the record says so) and the MCQ question is the real held-out test.
    return registry.train_preferences(user.case.scope, config=config, require_heldout=False).record


@contextmanager
def served(base: Any, record: Any) -> Iterator[Any]:
    """The user's adapter on the base while scoring, if it was registered; else the base."""
    if record.status != "registered":
        yield base
        return
    from peft import PeftModel
    from personagraph.agents.alignment.trainer import borrowed_base

    with borrowed_base(base):  # loading for inference freezes the base: give it back as it was
        model = PeftModel.from_pretrained(base, str(record.path))
        try:
            yield model
        finally:
            model.unload()  # LoRA layers out again, unmerged


def evaluate(
    base: Any, tokenizer: Any, memory: Memory, registry: Any, users: list[McqUser], filler: list[Turn],
    *, max_context: int, train_seconds: float,
) -> list[dict[str, Any]]:
    """One row per user: each condition's chosen option, its log-probabilities and seconds."""
    rows = []
    for user in track(users, description="PrefEval MCQ"):
        case = user.case
        start = time.perf_counter()
        events, _ = history(case, filler)
        for batch in iter_batches(events, 256):
            memory.add_events(case.scope, batch)
        ingest = time.perf_counter() - start
        question = [{"role": "user", "content": case.question}]
        results = {
            "no_memory": answer(base, tokenizer, question, user, max_context),
            "full_history": answer(base, tokenizer, chat([*case.turns, *filler]) + question, user, max_context),
        }
        start = time.perf_counter()
        prompt = memory_prompt(memory, case)
        retrieval = time.perf_counter() - start
        results["personagraph"] = answer(base, tokenizer, prompt, user, max_context)
        results["personagraph"]["seconds"] += retrieval
        row: dict[str, Any] = {
            "topic": case.topic, "index": case.index, "order": user.order, "correct": user.correct,
            "option_tokens": [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in user.options],
            "ingest_seconds": round(ingest, 3),
        }
        if registry is not None:
            start = time.perf_counter()
            record = train_user_adapter(memory, registry, user, train_seconds)
            with served(base, record) as model:
                results["personagraph+adapter"] = answer(model, tokenizer, prompt, user, max_context)
            results["personagraph+adapter"]["seconds"] = time.perf_counter() - start + retrieval
            row["adapter"] = {"status": record.status, "metrics": record.metrics}
        for result in results.values():
            result["seconds"] = round(result["seconds"], 3)
        rows.append(row | {"conditions": results})
    return rows


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: sound at small n and near 0 or 1."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def summarise(rows: list[dict[str, Any]], conditions: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy with its interval and seconds per user, per condition, overall and per topic."""
    overall = {}
    for name in conditions:
        hits = sum(r["conditions"][name]["correct"] for r in rows)
        low, high = wilson(hits, len(rows))
        overall[name] = {
            "accuracy": hits / len(rows), "ci95": [round(low, 4), round(high, 4)], "n": len(rows),
            "seconds_per_user": round(mean(r["conditions"][name]["seconds"] for r in rows), 3),
        }
    by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_topic[r["topic"]].append(r)
    topics = {
        topic: {"n": len(rs)} | {name: mean(float(r["conditions"][name]["correct"]) for r in rs) for name in conditions}
        for topic, rs in sorted(by_topic.items())
    }
    summary: dict[str, Any] = {"chance": 0.25, "conditions": overall, "topics": topics}
    if "personagraph+adapter" in conditions:
        metrics = [r["adapter"]["metrics"] for r in rows]
        summary["adapters"] = {
            "registered": sum(r["adapter"]["status"] == "registered" for r in rows), "users": len(rows),
            "pref_acc_before": mean(m["pref_acc_before"] for m in metrics if "pref_acc_before" in m),
            "pref_acc_after": mean(m["pref_acc_after"] for m in metrics if "pref_acc_after" in m),
        }
    return summary


def run(
    data: Path, inter_turns: int, out: Path | None, *, topics: list[str] | None = None, limit_per_topic: int = 5,
    max_context: int = 2048, train_seconds: float = 60.0, skip_adapter: bool = False, threads: int = 2,
) -> dict[str, Any]:
    import torch
    from personagraph.agents.adapters.training import load_training_base

    torch.set_num_threads(threads)
    filler = read_filler(data, inter_turns)
    users = read_users(data, topics, limit_per_topic)
    base, tokenizer = load_training_base()
    window = min(base.config.max_position_embeddings, max_context)
    conditions = CONDITIONS[:3] if skip_adapter else CONDITIONS
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pg-prefeval-mcq-") as root:
        memory = fresh_memory(Path(root) / "memory", embedder=MemoEmbedder(MiniLMEmbedder()))
        try:
            registry = None
            if not skip_adapter:
                from personagraph.agents.adapters.registry import AdapterRegistry

                registry = AdapterRegistry(memory, Path(root) / "adapters", base=(base, tokenizer))
            rows = evaluate(base, tokenizer, memory, registry, users, filler, max_context=window, train_seconds=train_seconds)
        finally:
            memory.close()
    report = {
        "settings": {
            "data": str(data), "inter_turns": inter_turns, "limit_per_topic": limit_per_topic,
            "topics": sorted({u.case.topic for u in users}), "seed": 'random.Random(f"{topic}:{index}")',
            "model": str(tokenizer.name_or_path), "max_context": window, "search_k": SEARCH_K,
            "token_budget": TOKEN_BUDGET, "train_seconds": None if skip_adapter else train_seconds, "threads": threads,
        },
        "n_users": len(rows), "seconds": round(time.perf_counter() - t0, 1),
        "summary": summarise(rows, conditions),
        "users": rows,
    }
    _print(report, conditions)
    write_json(out, report)
    return report


def _print(report: dict[str, Any], conditions: tuple[str, ...]) -> None:
    summary = report["summary"]
    print_table(
        f"PrefEval MCQ ({report['n_users']} users, {report['settings']['inter_turns']} filler turns, chance 0.25)",
        ["condition", "accuracy", "95% CI", "n", "s/user"],
        [
            [name, c["accuracy"], f"{c['ci95'][0]:.3f}-{c['ci95'][1]:.3f}", c["n"], c["seconds_per_user"]]
            for name, c in summary["conditions"].items()
        ],
    )
    print_table(
        "accuracy per topic", ["topic", "n", *conditions],
        [[topic, t["n"], *(t[name] for name in conditions)] for topic, t in summary["topics"].items()],
    )
    if "adapters" in summary:
        a = summary["adapters"]
        print_table(
            "preference adapters (one choice per user: gated on its own training pairs)",
            ["registered", "users", "train-pair acc before", "train-pair acc after"],
            [[a["registered"], a["users"], a["pref_acc_before"], a["pref_acc_after"]]],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the PrefEval folder (../shared/data/prefeval)")
    parser.add_argument("--inter-turns", type=int, required=True,
                        help="filler turns (a user message and its reply) between preference and question")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--limit-per-topic", type=int, default=5, help="the first K records of each topic (default 5)")
    parser.add_argument("--topics", nargs="+", help="topic file names without .json (default: every topic)")
    parser.add_argument("--max-context", type=int, default=2048,
                        help="token window of a scored sequence, at most the model's own (default 2048, for CPU time)")
    parser.add_argument("--train-seconds", type=float, default=60.0, help="time budget of each user's DPO training")
    parser.add_argument("--skip-adapter", action="store_true", help="score only the conditions without adapters")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--skip-generated", action="store_true",
                        help="skip DPO/KTO preference accuracy on generated users (benchmarks.generated_preferences)")
    args = parser.parse_args()
    if not (args.data / MCQ_FOLDER).is_dir() or not (args.data / "filtered_inter_turns.json").exists():
        parser.error(f"{args.data} is not the PrefEval folder (no {MCQ_FOLDER}/ or filtered_inter_turns.json); "
                     "the data lives in ../shared/data/prefeval")
    if args.inter_turns < 0 or args.limit_per_topic < 1 or args.max_context < 64 or args.train_seconds <= 0:
        parser.error("--inter-turns must be 0 or more, --limit-per-topic 1 or more, --max-context 64 or more, "
                     "--train-seconds above 0")
    report = run(args.data, args.inter_turns, args.out, topics=args.topics, limit_per_topic=args.limit_per_topic,
                 max_context=args.max_context, train_seconds=args.train_seconds, skip_adapter=args.skip_adapter,
                 threads=args.threads)
    if not args.skip_generated:
        from . import generated_preferences

        report["generated"] = generated_preferences.run(args.train_seconds, len(generated_preferences.STYLE_QUESTIONS), None)
        write_json(args.out, report)


if __name__ == "__main__":
    main()
