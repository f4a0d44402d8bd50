"""One user's preference training, end to end: their feedback becomes pairs or rows, the newest
feedback is held out, their adapter is aligned with DPO or KTO, and the result is registered
only if it ranks the held-out answers better than the adapter it started from.

Held-out data is split by feedback, never by pair: the pairs of one choice share their prompt
and their chosen answer, so splitting them would test on what was trained.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personagraph.agents.adapters.registry import BASE_MODEL
from personagraph.memory.errors import InvalidRecordError, RecordNotFoundError
from personagraph.memory.models import AdapterRecord, Feedback, now
from personagraph.memory.scope import Scope

from .preferences import DPOPair, KTORow, PreferenceData, as_kto_rows, preference_data
from .trainer import (
    Method,
    PreferenceConfig,
    PreferenceRun,
    PreferenceScore,
    score_adapter,
    shift_of_adapter,
    train_preference_adapter,
)

if TYPE_CHECKING:
    from personagraph.agents.adapters.registry import AdapterRegistry


@dataclass
class PreferenceOutcome:
    record: AdapterRecord
    run: PreferenceRun | None  # None when the same data had been trained on already
    before: PreferenceScore | None = None
    after: PreferenceScore | None = None
    reused: bool = False
    replaced: list[str] | None = None

    @property
    def registered(self) -> bool:
        return self.record.status == "registered"


def choose_method(data: PreferenceData, config: PreferenceConfig) -> Method:
    if config.method != "auto":
        return config.method
    if len(data.dpo) >= config.min_pairs:
        return "dpo"
    if len(data.kto) >= config.min_pairs and len({r.label for r in data.kto}) == 2:
        return "kto"
    raise InvalidRecordError(
        f"not enough feedback to learn from: {len(data.dpo)} pairs (choices, edits) and {len(data.kto)} thumbs; "
        f"need {config.min_pairs} pairs, or {config.min_pairs} thumbs with both up and down"
    )


def split_by_feedback(feedback_ids: list[str], fraction: float) -> tuple[set[str], set[str]]:
    """(train, held-out) feedback ids: the newest `fraction` is held out, at least one when
    there are two or more, none when there is one."""
    held = math.ceil(len(feedback_ids) * fraction) if len(feedback_ids) > 1 and fraction > 0 else 0
    held = max(0, min(held, len(feedback_ids) - 1))
    cut = len(feedback_ids) - held
    return set(feedback_ids[:cut]), set(feedback_ids[cut:])


def train_user_preferences(
    registry: AdapterRegistry, scope: Scope, config: PreferenceConfig | None = None, *, require_heldout: bool = True,
) -> PreferenceOutcome:
    """Align the user's current adapter (a fresh LoRA without one) on their feedback.

    With `require_heldout` (the default) an adapter is registered only on evidence from
    feedback it was not trained on; without it, when no feedback can be spared, the gate
    uses the training pairs and the record says so.
    """
    config = config or PreferenceConfig()
    memory = registry.memory
    feedback = memory.feedback(scope)
    data = preference_data(feedback)
    method = choose_method(data, config)
    start = registry.current(scope, kind="lora", objective="sft")
    examples: list[DPOPair] | list[KTORow] = data.dpo if method == "dpo" else as_kto_rows(data)
    order = list(dict.fromkeys(x.feedback_id for x in examples))
    train_ids, held_ids = split_by_feedback(order, config.heldout_fraction)
    train = [x for x in examples if x.feedback_id in train_ids]
    held = [x for x in examples if x.feedback_id in held_ids]
    gated_on = "held-out feedback"
    if not held:
        if require_heldout:
            raise InvalidRecordError(
                f"only {len(order)} piece(s) of feedback: at least 2 are needed to hold one out and measure the result"
            )
        held, gated_on = list(train), "the training pairs (no feedback could be held out)"
    if method == "kto" and len({r.label for r in train}) < 2:  # type: ignore[union-attr]
        raise InvalidRecordError("after holding out the newest feedback, the rest has only liked or only disliked answers; "
                                 "KTO needs both: give more feedback")
    data_hash = _hash(data.data_hash(), method, start.id if start else "", config.model_dump_json(), gated_on)
    with registry._lock:
        for record in memory.adapters(scope, adapter_kind="lora"):
            if record.objective == method and record.data_hash == data_hash and (
                record.status == "rejected" or registry.servable(scope, record)
            ):
                return PreferenceOutcome(record, None, reused=True)
        record_id = AdapterRecord(adapter_kind="lora", objective=method, status="rejected", base_model=BASE_MODEL,
                                  data_hash=data_hash, example_count=0, heldout_count=0).id
        folder = registry.folder(scope, record_id)
        try:
            outcome = _train_and_gate(registry, scope, method, train, held, config, folder, start, gated_on, data_hash)
            outcome.record = _register(registry, scope, outcome.record, folder, data, feedback, start)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # no orphan weights, e.g. when the user was forgotten meanwhile
            raise
        outcome.replaced = _replace_older(registry, scope, outcome.record)
    return outcome


def _train_and_gate(
    registry: AdapterRegistry, scope: Scope, method: Method, train: list[Any], held: list[Any],
    config: PreferenceConfig, folder: Path, start: AdapterRecord | None, gated_on: str, data_hash: str,
) -> PreferenceOutcome:
    base, tokenizer = registry._training_base()
    start_dir = Path(start.path) if start and start.path else None
    pairs_held = [x for x in held if isinstance(x, DPOPair)]
    before = score_adapter(base, tokenizer, start_dir, pairs_held) if pairs_held else None
    run = train_preference_adapter(base, tokenizer, method, train, config, folder, start_adapter=start_dir)
    if pairs_held:
        after = score_adapter(base, tokenizer, folder, pairs_held)
        assert before is not None
        improved = (after.accuracy, after.margin) > (before.accuracy, before.margin)
        measure = f"preference accuracy {before.accuracy:.0%} -> {after.accuracy:.0%} (margin {before.margin:+.2f} -> {after.margin:+.2f})"
    else:
        after = shift_of_adapter(base, tokenizer, start_dir, folder, held)
        improved = after.accuracy > 0.5 and after.margin > 0
        measure = f"{after.accuracy:.0%} of held-out thumbs moved the way the user asked (mean {after.margin:+.2f})"
    if before is not None:
        metrics = {
            "pref_acc_before": before.accuracy, "pref_acc_after": after.accuracy,
            "pref_margin_before": before.margin, "pref_margin_after": after.margin,
            "pref_token_acc_before": before.token_accuracy, "pref_token_acc_after": after.token_accuracy,
        }
    else:  # thumbs only: how the held-out rows moved from the start
        metrics = {"thumbs_moved": after.accuracy, "thumbs_shift": after.margin}
    metrics |= {"heldout": float(len(held)), "train_seconds": run.seconds, "steps": float(run.steps)}
    metrics |= heldout_perplexity(registry, scope, start, folder)
    record = AdapterRecord(
        id=folder.name, adapter_kind="lora", objective=method, status="registered" if improved else "rejected",
        base_model=BASE_MODEL, data_hash=data_hash, example_count=len(train), heldout_count=len(held),
        metrics=metrics, path=str(folder) if improved else None, base_adapter=start.id if start else None,
        speaker=start.speaker if start else "", heldout_ids=list(start.heldout_ids) if start else [],
        trained_through=start.trained_through if start else now(),
        reason=f"{method.upper()} on {len(train)} {'pairs' if method == 'dpo' else 'rows'}, gated on {gated_on}: {measure}"
        + ("" if improved else "; no improvement, weights deleted"),
    )
    return PreferenceOutcome(record, run, before, after)


def heldout_perplexity(registry: AdapterRegistry, scope: Scope, start: AdapterRecord | None, folder: Path) -> dict[str, float]:
    """The aligned adapter's held-out perplexity on the messages its start was gated on, so
    the planner can weigh it like any adapter (nothing when it started from a fresh LoRA)."""
    if start is None or not start.heldout_ids:
        return {}
    from personagraph.agents.adapters.examples import style_examples
    from personagraph.agents.adapters.training import evaluate_adapter

    held = set(start.heldout_ids)
    examples = [x for x in style_examples(registry.memory.events(scope), start.speaker) if x.source_ids[0] in held]
    if not examples:
        return {}
    base, tokenizer = registry._training_base()
    base_ppl, adapter_ppl = evaluate_adapter(base, tokenizer, examples, folder, "lora")
    return {"base_ppl": base_ppl.ppl, "adapter_ppl": adapter_ppl.ppl, "gain": 1.0 - adapter_ppl.ppl / base_ppl.ppl}


def _register(
    registry: AdapterRegistry, scope: Scope, record: AdapterRecord, folder: Path, data: PreferenceData,
    feedback: list[Feedback], start: AdapterRecord | None,
) -> AdapterRecord:
    """Register what was trained on exactly the feedback read before training: if any of it
    was forgotten meanwhile, the adapter must not exist."""
    used = [f for f in feedback if f.id in set(data.feedback_ids)]
    remaining = {f.id for f in registry.memory.feedback(scope)}
    if gone := sorted({f.id for f in used} - remaining):
        raise RecordNotFoundError(f"feedback forgotten while training, nothing registered: {gone[:5]}")
    sources = {s for f in used for s in f.sources} | (set(start.sources) if start else set())
    final = AdapterRecord.model_validate(
        record.model_dump() | {"sources": sorted(sources), "feedback_ids": [f.id for f in used]},
    )
    if record.status != "registered":
        shutil.rmtree(folder, ignore_errors=True)
    return registry.memory.register_adapter(scope, final)


def _replace_older(registry: AdapterRegistry, scope: Scope, record: AdapterRecord) -> list[str]:
    """A registered aligned adapter replaces the user's older DPO/KTO adapters."""
    if record.status != "registered":
        return []
    replaced = []
    for old in registry.memory.adapters(scope, adapter_kind="lora", status="registered"):
        if old.id != record.id and old.objective in ("dpo", "kto"):
            registry.memory.delete_adapter(scope, old.id)
            replaced.append(old.id)
    return replaced


def _hash(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]
