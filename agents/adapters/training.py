"""Train one user's adapter (peft LoRA or prompt tuning) on a float32 copy of the base model.

The serving runtime is bfloat16 and shared, so training gets its own float32 base: bf16
gradients are too coarse for small learning rates, and nothing here may disturb callers of
the runtime. The base is borrowed, never changed: LoRA layers are unloaded (not merged) and
the base's requires_grad flags and mode are put back, so one base trains user after user
and still measures base perplexity. A plain torch loop: the data is a few hundred short
examples on a CPU, and the loop must stop on a wall-clock budget, which it checks every step.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from personagraph.agents.llm.weights import model_dir, offline
from personagraph.memory.errors import InvalidRecordError
from pydantic import BaseModel, Field

from .examples import SFTExample
from .perplexity import (
    PerplexityReport,
    encode_example,
    pad_batch,
    perplexity,
    target_nll,
)

AdapterKind = Literal["lora", "prompt"]
ADAPTER_NAME = "user"  # the name a trained adapter is loaded under while it is evaluated
SOFT_PROMPT_KEY = "prompt_embeddings"  # peft's key for prompt tuning in adapter_model.safetensors


class TrainConfig(BaseModel):
    """How to train one adapter. Defaults were measured on LoCoMo speakers (~170 train
    messages each) on a 2-core CPU: batch 8 x 128 tokens takes ~3.5-4 s a step with two
    threads on an idle box (6 s with one), and LoRA at lr 1e-3 cut held-out perplexity by
    over 15% within the three-minute budget. Two threads slow down badly when other work
    shares the CPU; the time budget bounds that."""

    kind: AdapterKind = "lora"
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    num_virtual_tokens: int = Field(8, ge=1)
    prompt_init_text: str = "Write as this user:"
    lora_lr: float = Field(1e-3, gt=0)
    prompt_lr: float = Field(3e-2, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(128, ge=8)
    time_budget_s: float = Field(180.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    seed: int = 0
    num_threads: int = Field(2, ge=1)

    @property
    def lr(self) -> float:
        return self.lora_lr if self.kind == "lora" else self.prompt_lr


class TrainReport(BaseModel):
    kind: AdapterKind
    steps: int
    epochs_done: float
    seconds: float
    first_loss: float
    last_loss: float
    stopped_by: Literal["epochs", "time_budget", "max_steps"]
    out_dir: Path
    trainable_params: int
    bytes_on_disk: int


def load_training_base(path: str | Path | None = None) -> tuple[Any, Any]:
    """A private float32 base model and its tokenizer, from the converted weights (offline)."""
    offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(path) if path is not None else model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    model.eval()
    return model, tokenizer


@contextmanager
def _borrowed(base: Any, num_threads: int | None = None) -> Iterator[None]:
    """Put back what peft and training change on the base: requires_grad, mode, threads."""
    import torch

    flags = {name: p.requires_grad for name, p in base.named_parameters()}
    was_training = base.training
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        for name, p in base.named_parameters():
            p.requires_grad_(flags[name])
        base.train(was_training)
        torch.set_num_threads(threads)


def _peft_config(config: TrainConfig, tokenizer: Any) -> Any:
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit

    if config.kind == "lora":
        return LoraConfig(
            task_type="CAUSAL_LM",
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules),
            bias="none",
        )
    return PromptTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=config.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT,
        prompt_tuning_init_text=config.prompt_init_text,
        tokenizer_name_or_path=tokenizer.name_or_path,
        tokenizer_kwargs={"local_files_only": True},
    )


def _save_atomically(model: Any, config: TrainConfig, out_dir: Path) -> int:
    """Write into a temporary sibling, then rename into place; returns the bytes written."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    old = None
    try:
        model.save_pretrained(staging)
        (staging / "train_config.json").write_text(config.model_dump_json(indent=1))
        staging.chmod(0o755)
        if out_dir.exists():  # replace a previous adapter: move it aside first, drop it after
            old = out_dir.rename(staging.with_name(staging.name + "-old"))
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())


def _batches(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[list[int]]:
    """Row indices per step: a fresh seeded shuffle each epoch."""
    import torch

    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=order).tolist()
        for first in range(0, n, batch_size):
            yield perm[first:first + batch_size]


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]training[/] loss {task.fields[loss]:.3f}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=True,
    )


def train_adapter(
    base: Any,
    tokenizer: Any,
    train_examples: Sequence[SFTExample],
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> TrainReport:
    """Train an adapter on `train_examples` and save it (peft format) to `out_dir`.

    Stops after `config.epochs`, at `config.max_steps`, or before a step would overrun
    `config.time_budget_s`, whichever comes first. `base` is left as it was.
    """
    import torch
    from peft import get_peft_model

    if not train_examples:
        raise InvalidRecordError("no training examples")
    out_dir = Path(out_dir)
    encoded = [encode_example(tokenizer, x, config.max_length) for x in train_examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    per_epoch = -(-len(encoded) // config.batch_size)
    planned = per_epoch * config.epochs if config.max_steps is None else min(per_epoch * config.epochs, config.max_steps)
    n_virtual = config.num_virtual_tokens if config.kind == "prompt" else 0

    with _borrowed(base, config.num_threads):
        torch.manual_seed(config.seed)
        model = get_peft_model(base, _peft_config(config, tokenizer))
        try:
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
            model.train()
            losses: list[float] = []
            stopped_by: Literal["epochs", "time_budget", "max_steps"] = "epochs"
            start = time.perf_counter()
            with _progress(progress) as bar:
                task = bar.add_task("train", total=planned, loss=float("nan"))
                for rows in _batches(len(encoded), config.batch_size, config.epochs, config.seed):
                    elapsed = time.perf_counter() - start
                    if config.max_steps is not None and len(losses) >= config.max_steps:
                        stopped_by = "max_steps"
                        break
                    if losses and elapsed + elapsed / len(losses) > config.time_budget_s:
                        stopped_by = "time_budget"  # the next step would likely overrun
                        break
                    ids, mask, labels = pad_batch([encoded[i] for i in rows], pad_id)
                    nll, _ = target_nll(model, {"input_ids": ids, "attention_mask": mask}, labels, n_virtual)
                    loss = nll.mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                    losses.append(loss.item())
                    bar.update(task, advance=1, loss=losses[-1])
            seconds = time.perf_counter() - start
            model.eval()
            bytes_on_disk = _save_atomically(model, config, out_dir)
            trainable = sum(p.numel() for p in params)
        finally:
            if config.kind == "lora":
                model.unload()  # takes the LoRA layers out of `base` again, unmerged
    return TrainReport(
        kind=config.kind,
        steps=len(losses),
        epochs_done=len(losses) / per_epoch,
        seconds=seconds,
        first_loss=losses[0],
        last_loss=losses[-1],
        stopped_by=stopped_by,
        out_dir=out_dir,
        trainable_params=trainable,
        bytes_on_disk=bytes_on_disk,
    )


def load_soft_prompt(adapter_dir: str | Path) -> Any:
    """The trained virtual-token embeddings (n_virtual, hidden) of a saved prompt-tuning adapter."""
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text())
        weights = load_file(adapter_dir / "adapter_model.safetensors")
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidRecordError(f"{adapter_dir} is not a saved peft adapter: {exc}") from exc
    if config.get("peft_type") != "PROMPT_TUNING" or SOFT_PROMPT_KEY not in weights:
        raise InvalidRecordError(f"{adapter_dir} holds a {config.get('peft_type')} adapter, not prompt tuning")
    return weights[SOFT_PROMPT_KEY]


def evaluate_adapter(
    base: Any,
    tokenizer: Any,
    heldout: Sequence[SFTExample],
    adapter_dir: str | Path,
    kind: AdapterKind,
    *,
    batch_size: int = 8,
    max_length: int = 256,
) -> tuple[PerplexityReport, PerplexityReport]:
    """Held-out perplexity of the base and of the base with the adapter; `base` is left as it was."""
    base_report = perplexity(base, tokenizer, heldout, batch_size=batch_size, max_length=max_length)
    return base_report, adapter_perplexity(base, tokenizer, heldout, adapter_dir, kind, batch_size=batch_size, max_length=max_length)


def adapter_perplexity(
    base: Any,
    tokenizer: Any,
    examples: Sequence[SFTExample],
    adapter_dir: str | Path,
    kind: AdapterKind,
    *,
    batch_size: int = 8,
    max_length: int = 256,
) -> PerplexityReport:
    """Perplexity of the examples under the saved adapter on `base`; `base` is left as it was."""
    from peft import PeftModel

    if kind == "prompt":
        soft = load_soft_prompt(adapter_dir)
        return perplexity(base, tokenizer, examples, batch_size=batch_size, max_length=max_length, soft_prompt=soft)
    with _borrowed(base):
        model = PeftModel.from_pretrained(base, str(adapter_dir), adapter_name=ADAPTER_NAME)
        try:
            return perplexity(model, tokenizer, examples, batch_size=batch_size, max_length=max_length, adapter=ADAPTER_NAME)
        finally:
            model.unload()
