"""The style adapters (built once, shared by every user) and each user's soup of them.

`build_style_adapters` makes the pairs (see `soups`), holds out a quarter of the questions,
trains one DPO adapter per dimension from a fresh LoRA and writes it with a manifest of what
it measured. `build_user_soup` weighs the dimensions for one user, merges them with the
user's own adapter and registers the result as an adapter of objective `soup`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personagraph.agents.adapters.registry import BASE_MODEL
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import AdapterRecord, now
from personagraph.memory.scope import Scope
from pydantic import BaseModel

from .align import heldout_perplexity
from .instructions import instruction_facts
from .preferences import preference_data
from .soups import (
    DIMENSIONS,
    STYLE_QUESTIONS,
    merge_soup,
    neutral_answers,
    soup_hash,
    soup_weights,
    style_pairs,
)
from .trainer import (
    PreferenceConfig,
    borrowed_base,
    score_adapter,
    train_preference_adapter,
)

if TYPE_CHECKING:
    from personagraph.agents.adapters.registry import AdapterRegistry

MANIFEST = "style.json"


class StyleAdapterReport(BaseModel):
    dimension: str
    positive: str
    negative: str
    train_pairs: int
    heldout_pairs: int
    acc_before: float
    acc_after: float
    margin_before: float
    margin_after: float
    token_acc_before: float = 0.0
    token_acc_after: float = 0.0
    seconds: float
    steps: int


def style_dirs(root: Path) -> dict[str, Path]:
    """The built style adapters under `root`, by dimension."""
    return {name: root / name for name in DIMENSIONS if (root / name / "adapter_config.json").is_file()}


def build_style_adapters(
    base: Any, tokenizer: Any, root: Path, *, config: PreferenceConfig | None = None,
    questions: tuple[str, ...] = STYLE_QUESTIONS, max_new_tokens: int = 80,
) -> list[StyleAdapterReport]:
    """Train the style adapters once and write them under `root/<dimension>/`."""
    config = config or PreferenceConfig(method="dpo", time_budget_s=120)
    answers = neutral_answers(base, tokenizer, questions, max_new_tokens=max_new_tokens)
    pairs = style_pairs(questions, answers)
    reports = []
    for name, dim in DIMENSIONS.items():
        found = pairs[name]
        held = found[len(found) - max(1, len(found) // 4):]
        train = found[: len(found) - len(held)]
        if len(train) < config.batch_size:
            raise InvalidRecordError(f"only {len(found)} usable {name} pairs: the local model's answers were too short")
        before = score_adapter(base, tokenizer, None, held)
        run = train_preference_adapter(base, tokenizer, "dpo", train, config, root / name)
        after = score_adapter(base, tokenizer, root / name, held)
        report = StyleAdapterReport(
            dimension=name, positive=dim.positive, negative=dim.negative, train_pairs=len(train), heldout_pairs=len(held),
            acc_before=before.accuracy, acc_after=after.accuracy, margin_before=before.margin, margin_after=after.margin,
            token_acc_before=before.token_accuracy, token_acc_after=after.token_accuracy,
            seconds=run.seconds, steps=run.steps,
        )
        (root / name / MANIFEST).write_text(report.model_dump_json(indent=1))
        reports.append(report)
    return reports


def style_reports(root: Path) -> list[StyleAdapterReport]:
    return [StyleAdapterReport.model_validate_json((path / MANIFEST).read_text())
            for path in style_dirs(root).values() if (path / MANIFEST).is_file()]


@dataclass
class SoupOutcome:
    record: AdapterRecord
    weights: dict[str, float]
    reused: bool = False
    replaced: list[str] | None = None


def _signal_sources(memory: Any, scope: Scope) -> set[str]:
    """The events behind the style signals a soup's weights come from (profile style fields and
    learned instructions): forgetting any of them deletes the soup."""
    profile = memory.profile(scope)
    fact_ids = {i for v in (profile.style.verbosity, profile.style.formality) if v for i in v.fact_ids}
    facts = [f for f in memory.facts(scope) if f.id in fact_ids] + instruction_facts(memory, scope)
    return {s for f in facts for s in f.sources}


def user_soup_weights(registry: AdapterRegistry, scope: Scope) -> dict[str, float]:
    memory = registry.memory
    return soup_weights(memory.profile(scope), instruction_facts(memory, scope), preference_data(memory.feedback(scope)).dpo)


def build_user_soup(
    registry: AdapterRegistry, scope: Scope, styles_root: Path, *, weights: dict[str, float] | None = None,
) -> SoupOutcome:
    """Merge the style adapters with the user's weights onto their own adapter and register it."""
    memory = registry.memory
    weights = weights if weights is not None else user_soup_weights(registry, scope)
    if unknown := set(weights) - set(DIMENSIONS):
        raise InvalidRecordError(f"unknown style dimensions {sorted(unknown)}; known: {sorted(DIMENSIONS)}")
    if any(not -1.0 <= w <= 1.0 for w in weights.values()):
        raise InvalidRecordError("soup weights must be between -1 and 1")
    available = style_dirs(styles_root)
    wanted = {k: v for k, v in weights.items() if v != 0.0}
    if missing := sorted(set(wanted) - set(available)):
        raise InvalidRecordError(f"style adapters not built for {missing}: run `personagraph styles build` first")
    if not wanted:
        raise InvalidRecordError("nothing known about this user's style yet: no soup to make (give feedback, or pass weights)")
    start = registry.current(scope, kind="lora", objective="sft")
    start_dir = Path(start.path) if start and start.path else None
    data_hash = soup_hash(wanted, {k: available[k] for k in wanted}, start_dir)
    feedback_ids = [f.id for f in memory.feedback(scope)]
    signals = _signal_sources(memory, scope) | (set(start.sources) if start else set())
    with registry._lock:
        for record in memory.adapters(scope, adapter_kind="lora", status="registered"):
            if record.objective == "soup" and record.data_hash == data_hash and registry.servable(scope, record):
                return SoupOutcome(record, wanted, reused=True)
        record_id = AdapterRecord(adapter_kind="lora", objective="soup", status="rejected", base_model=BASE_MODEL,
                                  data_hash=data_hash, example_count=0, heldout_count=0).id
        folder = registry.folder(scope, record_id)
        folder.parent.mkdir(parents=True, exist_ok=True)
        base, _ = registry._training_base()
        try:
            with borrowed_base(base):
                rank = merge_soup(base, {k: available[k] for k in wanted}, wanted, folder, user_adapter=start_dir)
            measured = heldout_perplexity(registry, scope, start, folder)
            record = memory.register_adapter(scope, AdapterRecord(
                id=record_id, adapter_kind="lora", objective="soup", status="registered", base_model=BASE_MODEL,
                data_hash=data_hash, example_count=0, heldout_count=0, path=str(folder),
                metrics={"rank": float(rank)} | measured,
                base_adapter=start.id if start else None, sources=sorted(signals),
                feedback_ids=feedback_ids, soup_weights=wanted, speaker=start.speaker if start else "",
                heldout_ids=list(start.heldout_ids) if start else [],
                trained_through=start.trained_through if start else now(),
                reason="style soup " + ", ".join(f"{k} {v:+.2f}" for k, v in sorted(wanted.items()))
                + (f" on adapter {start.id}" if start else " on the base model"),
            ))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        replaced = []
        for old in memory.adapters(scope, adapter_kind="lora", status="registered"):
            if old.objective == "soup" and old.id != record.id:
                memory.delete_adapter(scope, old.id)
                replaced.append(old.id)
    return SoupOutcome(record, wanted, replaced=replaced)

