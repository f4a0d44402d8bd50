"""DPO and KTO with TRL on one user's LoRA, on a CPU, within a time budget.

The policy is the user's adapter (or a fresh LoRA of the same shape when they have none) on
the shared float32 training base. The reference is the same network with the adapter
switched off: TRL copies a loaded adapter into a "ref" adapter, which we delete before
training so its reference forward runs with adapters disabled (no second model, no copy).

TRL and the Trainer change the borrowed base in ways `model.unload()` does not undo: the
requires_grad flags, train mode, `use_cache`, model tags and an instance-level `forward`
patched in for a fused LM head. `_borrowed_base` puts all of them back, so the base keeps
serving evaluation and later trainings exactly as before (checked in the tests).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from personagraph.memory.errors import InvalidRecordError
from pydantic import BaseModel, Field

from .preferences import DPOPair, KTORow, assistant_turn
from .scoring import completion_logprobs

Method = Literal["dpo", "kto"]


class PreferenceConfig(BaseModel):
    """How to align one adapter. Defaults were tried on SmolLM2-135M on 2 CPU cores: a DPO
    step of 2 pairs x 256 tokens takes about 4-6 s on an idle box; lr 5e-4 moves held-out
    margins within a minute on a toy task."""

    method: Literal["auto", "dpo", "kto"] = Field("auto", description="auto: DPO when there are pairs, else KTO")
    beta: float = Field(0.1, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    batch_size: int = Field(2, ge=2, description="KTO needs at least 2 rows a batch for its KL estimate")
    max_length: int = Field(256, ge=16)
    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1)
    time_budget_s: float = Field(120.0, gt=0)
    heldout_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    min_pairs: int = Field(2, ge=1, description="fewer pairs and rows than this: nothing to learn from")
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    seed: int = 0
    num_threads: int = Field(2, ge=1)


class PreferenceRun(BaseModel):
    method: Method
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    stopped_by: Literal["epochs", "time_budget", "max_steps"]
    examples: int


class PreferenceScore(BaseModel):
    """Preference accuracy on pairs: the share where the model gives the chosen answer a higher
    log-probability than the rejected one (ties count half), and the mean log-prob margin.
    Each answer is scored as a whole reply, end-of-turn token included.
    `token_accuracy` compares log-probability per token instead: when the two answers differ
    much in length the summed one is settled by length alone and cannot move in a few steps."""

    accuracy: float
    margin: float
    pairs: int
    token_accuracy: float = 0.0


def preference_accuracy(model: Any, tokenizer: Any, pairs: Sequence[DPOPair], *, max_length: int = 512) -> PreferenceScore:
    if not pairs:
        raise InvalidRecordError("no pairs to measure preference accuracy on")
    prompts = [p.prompt for p in pairs for _ in (0, 1)]
    answers = [text for p in pairs for text in (p.chosen, p.rejected)]
    scores = completion_logprobs(model, tokenizer, prompts, answers, max_length=max_length, end_of_turn=True)
    margins = [scores[2 * i].logprob - scores[2 * i + 1].logprob for i in range(len(pairs))]
    per_token = [scores[2 * i].mean - scores[2 * i + 1].mean for i in range(len(pairs))]
    return PreferenceScore(accuracy=_share(margins), margin=sum(margins) / len(margins), pairs=len(pairs),
                           token_accuracy=_share(per_token))


def _share(differences: Sequence[float]) -> float:
    return sum(1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in differences) / len(differences)


@contextmanager
def borrowed_base(base: Any, num_threads: int | None = None) -> Iterator[None]:
    """Give the base back exactly as lent: flags, modes, config, tags, forward and threads."""
    import random

    import numpy as np
    import torch

    flags = {name: p.requires_grad for name, p in base.named_parameters()}
    modes = {name: m.training for name, m in base.named_modules()}
    use_cache, tags = base.config.use_cache, getattr(base, "model_tags", None)
    threads = torch.get_num_threads()
    rng = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())  # the Trainer reseeds all three
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        base.__dict__.pop("forward", None)
        base.config.use_cache = use_cache
        if hasattr(base, "model_tags"):
            base.model_tags = tags
        for name, p in base.named_parameters():
            p.requires_grad_(flags[name])
        for name, m in base.named_modules():
            m.training = modes[name]
        torch.set_num_threads(threads)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.random.set_rng_state(rng[2])


def policy_model(base: Any, config: PreferenceConfig, start_adapter: Path | None) -> Any:
    """The user's adapter, trainable, on `base`; a fresh LoRA when they have none."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if start_adapter is not None:
        return PeftModel.from_pretrained(base, str(start_adapter), is_trainable=True)
    return get_peft_model(base, LoraConfig(
        task_type="CAUSAL_LM", r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.05,
        target_modules=list(config.target_modules), bias="none",
    ))


def _budget_callback(budget_s: float, max_steps: int | None) -> Any:
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        """Stops before a step that would likely overrun the wall-clock budget."""

        def __init__(self) -> None:
            self.start = 0.0
            self.stopped_by: Literal["epochs", "time_budget", "max_steps"] = "epochs"

        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> Any:
            self.start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> Any:
            elapsed = time.perf_counter() - self.start
            if max_steps is not None and state.global_step >= max_steps:
                self.stopped_by, control.should_training_stop = "max_steps", True
            elif elapsed + elapsed / max(state.global_step, 1) > budget_s:
                self.stopped_by, control.should_training_stop = "time_budget", True
            return control

    return Budget()


def _dataset(method: Method, examples: Sequence[DPOPair] | Sequence[KTORow]) -> Any:
    from datasets import Dataset

    reply = assistant_turn
    if method == "dpo":
        pairs: Sequence[DPOPair] = examples  # type: ignore[assignment]
        return Dataset.from_dict({"prompt": [p.prompt for p in pairs], "chosen": [reply(p.chosen) for p in pairs],
                                  "rejected": [reply(p.rejected) for p in pairs]})
    rows: Sequence[KTORow] = examples  # type: ignore[assignment]
    return Dataset.from_dict({"prompt": [r.prompt for r in rows], "completion": [reply(r.completion) for r in rows],
                              "label": [r.label for r in rows]})


def _trainer(method: Method, model: Any, tokenizer: Any, data: Any, config: PreferenceConfig, work_dir: str, callback: Any) -> Any:
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    common = {
        "output_dir": work_dir, "per_device_train_batch_size": config.batch_size, "num_train_epochs": config.epochs,
        "learning_rate": config.learning_rate, "lr_scheduler_type": "constant", "warmup_steps": 0, "beta": config.beta,
        "max_length": config.max_length, "use_cpu": True, "bf16": False, "fp16": False, "activation_checkpointing": False,
        "report_to": "none", "save_strategy": "no", "logging_steps": 1, "disable_tqdm": True, "dataloader_num_workers": 0,
        "seed": config.seed,
    }
    if method == "dpo":
        return DPOTrainer(model=model, ref_model=None, args=DPOConfig(**common), train_dataset=data,
                          processing_class=tokenizer, callbacks=[callback])
    return KTOTrainer(model=model, ref_model=None, args=KTOConfig(**common), train_dataset=data,
                      processing_class=tokenizer, callbacks=[callback])


@contextmanager
def _quiet() -> Iterator[None]:
    """TRL and datasets print progress bars and deprecation notes per call: keep them out of
    the CLI's output (our own progress bar says what happens)."""
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = datasets.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    trl_logger = logging.getLogger("trl")
    trl_level = trl_logger.level
    trl_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # gradient_checkpointing renamed in transformers 5
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            datasets.enable_progress_bars()
        trl_logger.setLevel(trl_level)


def train_preference_adapter(
    base: Any,
    tokenizer: Any,
    method: Method,
    examples: Sequence[DPOPair] | Sequence[KTORow],
    config: PreferenceConfig,
    out_dir: str | Path,
    *,
    start_adapter: Path | None = None,
) -> PreferenceRun:
    """Align the adapter at `start_adapter` (or a fresh LoRA) on `examples` and save the result
    to `out_dir` (peft format). `base` is left as it was."""
    import torch
    from transformers import PrinterCallback

    if method == "kto" and len({r.label for r in examples}) < 2:  # type: ignore[union-attr]
        raise InvalidRecordError("KTO needs both liked and disliked answers")
    if len(examples) < config.batch_size:
        raise InvalidRecordError(f"{len(examples)} examples are fewer than one batch of {config.batch_size}")
    out_dir = Path(out_dir)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # TRL reports trainer use to the Hub otherwise
    work = tempfile.mkdtemp(prefix="pg-align-")
    with borrowed_base(base, config.num_threads), _quiet():
        torch.manual_seed(config.seed)
        model = policy_model(base, config, start_adapter)
        try:
            budget = _budget_callback(config.time_budget_s, config.max_steps)
            trainer = _trainer(method, model, tokenizer, _dataset(method, examples), config, work, budget)
            trainer.remove_callback(PrinterCallback)  # it prints every log line when tqdm is off
            if "ref" in model.peft_config:  # reference = adapters off, not a copy of the start
                model.delete_adapter("ref")
            started = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - started
            losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
            model.eval()
            _save(model, out_dir)
        finally:
            model.unload()
            shutil.rmtree(work, ignore_errors=True)
    return PreferenceRun(
        method=method, steps=trainer.state.global_step, seconds=seconds, first_loss=losses[0] if losses else float("nan"),
        last_loss=losses[-1] if losses else float("nan"), stopped_by=budget.stopped_by, examples=len(examples),
    )


def _save(model: Any, out_dir: Path) -> None:
    """Write the adapter into a temporary sibling, then rename it into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(str(staging), selected_adapters=["default"])
        (staging / "README.md").unlink(missing_ok=True)
        staging.chmod(0o755)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def score_adapter(base: Any, tokenizer: Any, adapter: Path | None, pairs: Sequence[DPOPair], *, max_length: int = 512) -> PreferenceScore:
    """Preference accuracy of the base with `adapter` (the base alone for None); base unchanged."""
    from peft import PeftModel

    if adapter is None:
        return preference_accuracy(base, tokenizer, pairs, max_length=max_length)
    with borrowed_base(base):
        model = PeftModel.from_pretrained(base, str(adapter))
        try:
            return preference_accuracy(model, tokenizer, pairs, max_length=max_length)
        finally:
            model.unload()


def shift_of_adapter(base: Any, tokenizer: Any, before: Path | None, after: Path, rows: Sequence[KTORow]) -> PreferenceScore:
    """`row_shift` between two saved adapters (or the base and an adapter); base unchanged."""
    from peft import PeftModel

    with borrowed_base(base):
        model = PeftModel.from_pretrained(base, str(after), adapter_name="after")
        try:
            if before is not None:
                model.load_adapter(str(before), adapter_name="before")
                model.set_adapter("before")
                old_model: Any = model
            else:
                old_model = None
            return _shift(model, old_model, tokenizer, rows)
        finally:
            model.unload()


def _shift(model: Any, old_model: Any, tokenizer: Any, rows: Sequence[KTORow]) -> PreferenceScore:
    prompts, answers = [r.prompt for r in rows], [r.completion for r in rows]
    if old_model is None:
        with model.disable_adapter():
            old = completion_logprobs(model, tokenizer, prompts, answers, end_of_turn=True)
    else:
        old = completion_logprobs(model, tokenizer, prompts, answers, end_of_turn=True)  # "before" is active
    model.set_adapter("after")
    new = completion_logprobs(model, tokenizer, prompts, answers, end_of_turn=True)
    moves = [(n.logprob - o.logprob) * (1 if r.label else -1) for o, n, r in zip(old, new, rows, strict=True)]
    return PreferenceScore(accuracy=sum(m > 0 for m in moves) / len(moves), margin=sum(moves) / len(moves), pairs=len(rows))
