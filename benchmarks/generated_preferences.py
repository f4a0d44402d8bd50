"""DPO and KTO preference accuracy before and after, on generated users.

Each generated user holds one hidden style rule (concise, detailed, formal or casual). The
local model answers our style questions once; each answer is cut into its two poles (see
`personagraph.agents.alignment.soups`), and the user reacts to the exchange as their rule
says: with a choice between the poles (DPO user) or a thumb on one pole (KTO user, half the
answers shown are the pole they like). Feedback goes through the real path (events,
`FeedbackRecorder`, `AdapterRegistry.train_preferences` from a fresh LoRA, whose gate holds out
the newest quarter of the feedback). Accuracy is then measured on a test set of the newest
questions, which neither training nor the gate saw: the share where the log-probability of the
rule's pole (as a whole reply) beats the other pole, before (base model) and after (what the
user is served: the aligned adapter if it passed its gate, else the base again, as the
weights of a rejected adapter are deleted).

    python -m benchmarks.generated_preferences --out FILE.json [--train-seconds S]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from personagraph.agents.adapters.registry import AdapterRegistry
from personagraph.agents.alignment.preferences import DPOPair
from personagraph.agents.alignment.soups import (
    STYLE_QUESTIONS,
    neutral_answers,
    pole_pairs,
)
from personagraph.agents.alignment.trainer import PreferenceConfig, score_adapter
from personagraph.memory import Scope
from personagraph.tools.feedback import FeedbackRecorder
from rich.progress import track

from .common import fresh_memory, print_table, write_json

RULES = {"concise": ("length", True), "detailed": ("length", False), "formal": ("tone", True), "casual": ("tone", False)}
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def rule_pairs(questions: list[str], answers: list[str], rule: str) -> list[DPOPair]:
    """One pair per question whose poles differ, oriented as the rule prefers."""
    dimension, first_pole = RULES[rule]
    out = []
    for question, answer in zip(questions, answers, strict=True):
        pair = pole_pairs(question, answer).get(dimension)
        if pair is not None:
            out.append(pair if first_pole else pair.model_copy(update={"chosen": pair.rejected, "rejected": pair.chosen}))
    return out


def give_feedback(memory: Any, scope: Scope, pairs: list[DPOPair], method: str) -> None:
    recorder = FeedbackRecorder(memory)
    for i, pair in enumerate(pairs):
        shown = pair.chosen if i % 2 == 0 else pair.rejected  # what the assistant answered first
        _, reply = memory.add_events(scope, [
            {"speaker": scope.user_id, "role": "user", "text": pair.prompt[-1]["content"], "time": T0 + timedelta(minutes=i)},
            {"speaker": "assistant", "role": "assistant", "text": shown, "time": T0 + timedelta(minutes=i, seconds=1)},
        ])
        if method == "dpo":
            options = [shown, pair.rejected if shown == pair.chosen else pair.chosen]
            recorder.choose(scope, reply.id, options, options.index(pair.chosen))
        else:
            recorder.thumbs(scope, reply.id, up=shown == pair.chosen)


def run(train_seconds: float, questions: int, out: Path | None) -> dict:
    from personagraph.agents.adapters.training import load_training_base

    base, tokenizer = load_training_base()
    started = time.perf_counter()
    asked = list(STYLE_QUESTIONS[:questions])
    answers = neutral_answers(base, tokenizer, asked)
    generation_seconds = time.perf_counter() - started
    rows = []
    with tempfile.TemporaryDirectory() as work:
        memory = fresh_memory(Path(work) / "memory")
        registry = AdapterRegistry(memory, Path(work) / "adapters", base=(base, tokenizer))
        config = PreferenceConfig(time_budget_s=train_seconds, heldout_fraction=0.25)
        for rule in track(list(RULES), description="generated users"):
            pairs = rule_pairs(asked, answers, rule)
            # The newest questions are a test set no feedback and no gate ever saw; the
            # registry holds out the newest quarter of the feedback for its own gate.
            test_size = max(2, math.ceil(len(pairs) * 0.25))
            feedback_pairs, held = pairs[:-test_size], pairs[-test_size:]
            for method in ("dpo", "kto"):
                scope = Scope(user_id=f"{rule}-{method}")
                give_feedback(memory, scope, feedback_pairs, method)
                outcome = registry.train_preferences(scope, config=config.model_copy(update={"method": method}))
                before = score_adapter(base, tokenizer, None, held)
                # What the user is served: the aligned adapter if it passed its gate, else the base.
                after = score_adapter(base, tokenizer, Path(outcome.record.path), held) if outcome.registered else before
                rows.append({
                    "rule": rule, "method": method, "feedback": len(feedback_pairs), "test_pairs": len(held),
                    "registered": outcome.registered, "acc_before": before.accuracy, "acc_after": after.accuracy,
                    "token_acc_before": before.token_accuracy, "token_acc_after": after.token_accuracy,
                    "margin_before": before.margin, "margin_after": after.margin,
                    "steps": outcome.run.steps if outcome.run else 0, "train_seconds": outcome.run.seconds if outcome.run else 0.0,
                    "gate": {k: v for k, v in outcome.record.metrics.items() if k.startswith("pref_")},
                    "reason": outcome.record.reason,
                })
                memory.forget_user(scope)
        memory.close()
    report = {"settings": {"train_seconds": train_seconds, "questions": questions, "model": "SmolLM2-135M-Instruct"},
              "generation_seconds": generation_seconds, "rows": rows}
    _print(report)
    write_json(out, report)
    return report


def _print(report: dict) -> None:
    print_table(
        "DPO/KTO on generated users: test-set preference accuracy, base vs what is served",
        ["rule", "method", "test pairs", "acc before", "acc after", "per-token acc before", "after", "margin before",
         "margin after", "registered", "steps"],
        [[r["rule"], r["method"], r["test_pairs"], f"{r['acc_before']:.2f}", f"{r['acc_after']:.2f}",
          f"{r['token_acc_before']:.2f}", f"{r['token_acc_after']:.2f}",
          f"{r['margin_before']:+.1f}", f"{r['margin_after']:+.1f}", r["registered"], r["steps"]] for r in report["rows"]],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--train-seconds", type=float, default=60.0, help="time budget of each training")
    parser.add_argument("--questions", type=int, default=len(STYLE_QUESTIONS), help="how many style questions to use")
    args = parser.parse_args()
    run(args.train_seconds, args.questions, args.out)


if __name__ == "__main__":
    main()
