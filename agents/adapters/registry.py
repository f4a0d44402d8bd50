"""The per-user adapter lifecycle: train from memory, keep only what beats the base, retrain
when enough new messages arrived, delete with the user.

Records live in the user's memory (`AdapterRecord`, so every read is scoped and forgetting
cascades); weights live under `root/<tenant>/<user>/<adapter id>/`. Training uses its own
float32 copy of the base model, loaded once per registry, never the shared serving model.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personagraph.memory.api import Memory
from personagraph.memory.artifacts import WEIGHTS_MARKER
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import (
    AdapterKind,
    AdapterObjective,
    AdapterRecord,
    Event,
    now,
)
from personagraph.memory.scope import Scope

from .examples import TrainingData, build_training_data, style_examples
from .training import (
    TrainConfig,
    TrainReport,
    evaluate_adapter,
    load_training_base,
    train_adapter,
)

BASE_MODEL = "smollm2-135m-instruct"


@dataclass
class TrainOutcome:
    record: AdapterRecord
    report: TrainReport | None  # None when the same data had been trained on already
    reused: bool = False
    replaced: list[str] = field(default_factory=list)  # ids of the adapters this one replaced (now deleted)

    @property
    def registered(self) -> bool:
        return self.record.status == "registered"


class AdapterRegistry:
    """Trains, registers, looks up and deletes the adapters of the users of one Memory."""

    def __init__(
        self,
        memory: Memory,
        root: str | Path,
        *,
        min_gain: float = 0.0,
        retrain_after: int = 50,
        min_messages: int = 20,
        heldout_fraction: float = 0.2,
        max_train: int | None = 240,
        base: tuple[Any, Any] | None = None,
    ) -> None:
        """`base` is a (float32 model, tokenizer) pair from `load_training_base` to share
        between registries; one is loaded on the first training otherwise."""
        self.memory = memory
        self.root = Path(root)
        self.min_gain = min_gain
        self.retrain_after = retrain_after
        self.min_messages = min_messages
        self.heldout_fraction = heldout_fraction
        self.max_train = max_train
        self._base = base
        self._lock = threading.Lock()  # one training at a time: it uses every core

    # --- lookups ---------------------------------------------------------------------------

    def current(self, scope: Scope, kind: AdapterKind | None = None, objective: AdapterObjective | None = None) -> AdapterRecord | None:
        """The adapter to serve the user: their newest aligned adapter (DPO, KTO or soup) that
        rests on their current plain adapter, else the plain adapter (`sft`) with the best
        held-out gain (a user may have both a LoRA and a soft prompt). Only adapters whose
        weights are in this user's own folder count: a record pointing anywhere else, or at
        weights deleted by hand, is never served."""
        found = [a for a in self.memory.adapters(scope, adapter_kind=kind, status="registered") if self.servable(scope, a)]
        plain = [a for a in found if a.objective == "sft"]
        best_plain = max(plain, key=lambda a: a.gain) if plain else None
        if objective == "sft":
            return best_plain
        # Alignment starts from the plain LoRA: an aligned adapter is current only while it
        # rests on that LoRA (or, built on the base model, while the user has no plain LoRA).
        plain_lora = max((a for a in plain if a.adapter_kind == "lora"), key=lambda a: a.gain, default=None)
        aligned = [  # newest first
            a for a in found if a.aligned and (objective is None or a.objective == objective)
            and a.base_adapter == (plain_lora.id if plain_lora else None)
        ]
        if aligned or objective is not None:
            return aligned[0] if aligned else None
        return best_plain

    def folder(self, scope: Scope, adapter_id: str) -> Path:
        return self.root / scope.tenant / scope.user_id / adapter_id

    def servable(self, scope: Scope, record: AdapterRecord) -> bool:
        """Registered, with its weights on disk in this user's folder."""
        if record.status != "registered" or not record.path:
            return False
        own = self.folder(scope, record.id).resolve()
        return Path(record.path).resolve() == own and (own / WEIGHTS_MARKER).is_file()

    def user_speaker(self, scope: Scope, events: list[Event] | None = None) -> str:
        """Who the user is in their own history: the most frequent speaker of user-role messages
        (of any non-assistant messages when none is marked as the user's, as in imported logs)."""
        events = events if events is not None else self.memory.events(scope)
        counts = Counter(e.speaker for e in events if e.role == "user") or Counter(
            e.speaker for e in events if e.role not in ("assistant", "system")
        )
        if not counts:
            raise InvalidRecordError("this user has no messages of their own to learn from")
        return counts.most_common(1)[0][0]

    def messages_since(self, scope: Scope, record: AdapterRecord | None, speaker: str | None = None) -> int:
        """The user's messages newer than what `record` was trained on (all of them without one)."""
        events = self.memory.events(scope)
        speaker = speaker or self.user_speaker(scope, events)
        since = record.trained_through if record else None
        return sum(1 for e in events if e.speaker == speaker and (since is None or e.time > since))

    def retrain_due(self, scope: Scope, kind: AdapterKind = "lora") -> tuple[bool, str]:
        """Whether training now would use enough new data to be worth minutes of CPU."""
        latest = next((a for a in self.memory.adapters(scope, adapter_kind=kind) if a.objective == "sft"), None)  # rejected ones count too
        fresh = self.messages_since(scope, latest)
        if latest is None:
            due = fresh >= self.min_messages
            return due, f"{fresh} messages, {'enough' if due else 'need'} {self.min_messages} for a first adapter"
        due = fresh >= self.retrain_after
        return due, f"{fresh} new messages since the last training (threshold {self.retrain_after})"

    # --- training ----------------------------------------------------------------------------

    def training_data(self, scope: Scope, speaker: str | None = None) -> tuple[TrainingData, str]:
        events = self.memory.events(scope)
        speaker = speaker or self.user_speaker(scope, events)
        data = build_training_data(
            events, self.memory.facts(scope), speaker, heldout_fraction=self.heldout_fraction, max_train=self.max_train,
        )
        return data, speaker

    def train(
        self,
        scope: Scope,
        *,
        kind: AdapterKind = "lora",
        speaker: str | None = None,
        config: TrainConfig | None = None,
        progress: bool = True,
    ) -> TrainOutcome:
        """Train an adapter on the user's memory and register it if it beats the base model on
        the user's newest, held-out messages; otherwise record why it was rejected."""
        data, speaker = self.training_data(scope, speaker)
        config = config or TrainConfig(kind=kind)
        if config.kind != kind:
            raise InvalidRecordError(f"config is for {config.kind!r} adapters, not {kind!r}")
        with self._lock:
            known = [a for a in self.memory.adapters(scope, adapter_kind=kind) if a.objective == "sft"]
            for record in known:  # the same data again: keep what it gave, unless its weights are gone
                same = record.data_hash == data.data_hash and record.base_model == BASE_MODEL
                if same and (record.status == "rejected" or self.servable(scope, record)):
                    return TrainOutcome(record, None, reused=True)
            record_id = AdapterRecord(
                adapter_kind=kind, status="rejected", base_model=BASE_MODEL, data_hash=data.data_hash,
                example_count=0, heldout_count=0,
            ).id
            folder = self.folder(scope, record_id)
            try:
                record, report = self._train_and_gate(scope, kind, speaker, data, config, folder, progress)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)  # no orphan weights, e.g. when the user was forgotten meanwhile
                raise
            replaced = []
            if record.status == "registered":
                # The new adapter replaces the older plain ones of its kind; a new plain LoRA also
                # makes the aligned adapters stale (built on the old one, or on the base model).
                for old in self.memory.adapters(scope, adapter_kind=kind, status="registered"):
                    stale = old.aligned and kind == "lora"
                    if old.id != record.id and (old.objective == "sft" or stale):
                        self.memory.delete_adapter(scope, old.id)
                        replaced.append(old.id)
        return TrainOutcome(record, report, replaced=replaced)

    def _train_and_gate(
        self, scope: Scope, kind: AdapterKind, speaker: str, data: TrainingData, config: TrainConfig, folder: Path, progress: bool,
    ) -> tuple[AdapterRecord, TrainReport]:
        base, tokenizer = self._training_base()
        report = train_adapter(base, tokenizer, data.train, config, folder, progress=progress)
        base_ppl, adapter_ppl = evaluate_adapter(base, tokenizer, data.heldout, folder, kind)
        gain = 1.0 - adapter_ppl.ppl / base_ppl.ppl
        registered = gain > self.min_gain
        heldout_ids = [x.source_ids[0] for x in data.heldout]
        # Held-out messages were seen (to gate) though not trained on: new data is what came after.
        seen = set(data.event_ids) | {i for x in data.heldout for i in x.source_ids}
        times = [e.time for e in self.memory.events(scope) if e.id in seen]
        record = AdapterRecord(
            id=folder.name, adapter_kind=kind, status="registered" if registered else "rejected",
            base_model=BASE_MODEL, data_hash=data.data_hash, example_count=len(data.train),
            heldout_count=len(data.heldout),
            metrics={
                "base_ppl": base_ppl.ppl, "adapter_ppl": adapter_ppl.ppl, "gain": gain,
                "train_seconds": report.seconds, "steps": float(report.steps), "bytes": float(report.bytes_on_disk),
            },
            path=str(folder) if registered else None,
            sources=sorted(data.event_ids), heldout_ids=heldout_ids, speaker=speaker,
            trained_through=max(times) if times else now(),
            reason=(
                f"held-out perplexity {adapter_ppl.ppl:.2f} vs base {base_ppl.ppl:.2f} ({gain:+.1%}) for speaker {speaker}"
                + ("" if registered else f"; not above the required gain {self.min_gain:.0%}, weights deleted")
            ),
        )
        if not registered:
            shutil.rmtree(folder, ignore_errors=True)
        self.memory.register_adapter(scope, record)
        return record, report

    def evaluate(self, scope: Scope, adapter_id: str) -> dict[str, float]:
        """Held-out perplexity of base and adapter again, on the messages it was gated on."""
        record = next((a for a in self.memory.adapters(scope) if a.id == adapter_id), None)
        if record is None or not self.servable(scope, record):
            raise InvalidRecordError(f"no registered adapter {adapter_id!r} with weights for this user")
        held = set(record.heldout_ids)
        examples = [x for x in style_examples(self.memory.events(scope), record.speaker) if x.source_ids[0] in held]
        if not examples:
            raise InvalidRecordError(f"the held-out messages of adapter {adapter_id!r} are no longer in memory")
        with self._lock:
            base, tokenizer = self._training_base()
            base_ppl, adapter_ppl = evaluate_adapter(base, tokenizer, examples, Path(record.path or ""), record.adapter_kind)
        return {"base_ppl": base_ppl.ppl, "adapter_ppl": adapter_ppl.ppl, "gain": 1.0 - adapter_ppl.ppl / base_ppl.ppl,
                "heldout": float(len(examples))}

    # --- alignment (objective level) -------------------------------------------------------------

    def train_preferences(
        self, scope: Scope, *, config: Any = None, require_heldout: bool = True,
    ) -> Any:
        """Align the user's adapter on their feedback with DPO or KTO (`PreferenceConfig`);
        registered only if held-out preferences improve. See `alignment.align`."""
        from personagraph.agents.alignment.align import train_user_preferences

        return train_user_preferences(self, scope, config, require_heldout=require_heldout)

    def delete(self, scope: Scope, kind: AdapterKind | None = None) -> list[AdapterRecord]:
        """Delete the user's adapters (of `kind`), records and weights."""
        return [self.memory.delete_adapter(scope, a.id) for a in self.memory.adapters(scope, adapter_kind=kind)]

    def remove_user_folder(self, scope: Scope) -> None:
        """Remove whatever is left under the user's adapter folder (after forgetting them)."""
        shutil.rmtree(self.root / scope.tenant / scope.user_id, ignore_errors=True)

    def _training_base(self) -> tuple[Any, Any]:
        if self._base is None:
            self._base = load_training_base()
        return self._base
