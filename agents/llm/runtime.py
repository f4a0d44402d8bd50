"""One loaded chat model per process, shared by every `LocalChatModel`, with its LoRA adapters.

A 135M model is small, but loading it twice doubles memory and running two `generate` calls
at once on a 2-core box makes both several times slower: one runtime per (folder, dtype) and
a lock around generation. Adapters are peft LoRA weights injected into that one base model and
picked per call with `adapter_names`, so callers never change shared state to use one.
Soft prompts (prompt tuning) need no model state at all: their virtual-token embeddings are
put in front of the row's own input embeddings. `generate_batch` runs rows with different
adapters and soft prompts as one left-padded batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from personagraph.memory.errors import ConfigurationError

from .errors import UnknownAdapterError
from .weights import offline

if TYPE_CHECKING:
    import torch

Dtype = Literal["bfloat16", "float32"]
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass
class GenerationRequest:
    """One row of a batch: its prompt, and the LoRA (`adapter`) and/or soft prompt to use.

    `soft_prompt` is an (n_virtual, hidden) tensor of virtual-token embeddings placed before
    `prompt_ids`, as peft's prompt tuning does.
    """

    prompt_ids: list[int]
    adapter: str | None = None
    soft_prompt: torch.Tensor | None = None
    max_new_tokens: int = 256


class ChatRuntime:
    """A causal LM and its tokenizer, loaded once; `generate` runs one call at a time."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self._lock = threading.Lock()
        self._adapters: dict[str, Path] = {}

    @classmethod
    def load(cls, path: Path, dtype: Dtype = "bfloat16") -> ChatRuntime:
        offline()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # One thread: decoding speed is the same with two, and two threads next to any other
        # CPU-bound work were several times slower. Set once here, at load, not per call.
        torch.set_num_threads(1)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), local_files_only=True)
        model.eval()
        return cls(model, tokenizer)

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Add a peft LoRA adapter saved at `path` under `name` (replacing one of that name)."""
        if not name or name == BASE:
            raise ConfigurationError(f"invalid adapter name {name!r}")
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise ConfigurationError("LoRA adapters need peft: pip install peft") from exc
        with self._lock:
            if name in self._adapters:
                self.model.delete_adapter(name)
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            self.model.eval()
            self._adapters[name] = Path(path)

    def unload_adapter(self, name: str) -> None:
        with self._lock:
            self.check_adapter(name)
            del self._adapters[name]
            if self._adapters:
                self.model.delete_adapter(name)
            else:  # peft cannot run with no adapter left: take the LoRA layers out again
                self.model = self.model.unload()

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the input embeddings, which soft prompts are cast to."""
        return self.model.get_input_embeddings().weight.dtype

    def adapter_bytes(self, name: str) -> int:
        """Memory held by the LoRA weights of adapter `name` (peft may keep them in float32)."""
        with self._lock:
            self.check_adapter(name)
            marker = f".{name}."
            return sum(p.numel() * p.element_size() for n, p in self.model.named_parameters() if marker in n)

    def generate(
        self,
        prompt_ids: list[int],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        adapter: str | None = None,
        soft_prompt: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """New token ids after `prompt_ids`; greedy when temperature is 0. `kwargs` go to
        `transformers` `generate` (logits_processor, streamer, stopping_criteria)."""
        request = GenerationRequest(prompt_ids, adapter=adapter, soft_prompt=soft_prompt, max_new_tokens=max_new_tokens)
        return self.generate_batch([request], temperature=temperature, **kwargs)[0]

    def generate_batch(
        self, requests: list[GenerationRequest], *, temperature: float = 0.0, **kwargs: Any
    ) -> list[list[int]]:
        """Each row's new token ids (through its first eos), from ONE `generate` call.

        Rows are left-padded to a common length, so every row's next token sits in the last
        column. Rows may name different LoRA adapters (peft's mixed batch, `"__base__"` for
        none) and carry soft prompts; with any soft prompt the batch goes in as
        `inputs_embeds`. The batch runs to the largest `max_new_tokens`; a row that reaches
        its own limit is stopped (and its output cut) there. `kwargs` go to `generate`.
        """
        if not requests:
            return []
        for request in requests:
            if request.max_new_tokens < 1:
                raise ValueError(f"max_new_tokens must be at least 1, not {request.max_new_tokens}")
            if not request.prompt_ids and request.soft_prompt is None:
                raise ValueError("a request needs prompt_ids or a soft_prompt")
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        limits = [r.max_new_tokens for r in requests]
        with self._lock:
            for request in requests:
                self.check_adapter(request.adapter)
            if self._adapters:  # LoRA layers are in the model: say which one, or none, each row uses
                kwargs["adapter_names"] = [r.adapter or BASE for r in requests]
            inputs = self._batch_inputs(requests)
            # From embeddings, generate's token sequence starts empty; from ids, with the prompt.
            start = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0
            if len(set(limits)) > 1:
                kwargs["stopping_criteria"] = [*kwargs.get("stopping_criteria", []), _RowLimits(limits, start)]
            output = self.model.generate(
                **inputs,
                max_new_tokens=max(limits),
                pad_token_id=self.tokenizer.eos_token_id,
                **sampling,
                **kwargs,
            )
        return [self._cut(row[start:].tolist(), limit) for row, limit in zip(output, limits, strict=True)]

    def _batch_inputs(self, requests: list[GenerationRequest]) -> dict[str, torch.Tensor]:
        """Left-padded `input_ids` (or `inputs_embeds` when a row has a soft prompt) and the mask."""
        import torch

        lengths = [len(r.prompt_ids) + (0 if r.soft_prompt is None else r.soft_prompt.shape[0]) for r in requests]
        width = max(lengths)
        mask = torch.zeros(len(requests), width, dtype=torch.long)
        for i, length in enumerate(lengths):
            mask[i, width - length:] = 1
        if all(r.soft_prompt is None for r in requests):
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            ids = torch.full((len(requests), width), pad, dtype=torch.long)
            for i, request in enumerate(requests):
                ids[i, width - len(request.prompt_ids):] = torch.tensor(request.prompt_ids, dtype=torch.long)
            return {"input_ids": ids, "attention_mask": mask}
        embedding = self.model.get_input_embeddings()
        dtype = embedding.weight.dtype
        embeds = torch.zeros(len(requests), width, embedding.embedding_dim, dtype=dtype)
        with torch.no_grad():
            for i, request in enumerate(requests):
                parts = [] if request.soft_prompt is None else [request.soft_prompt.to(dtype)]
                if request.prompt_ids:
                    parts.append(embedding(torch.tensor(request.prompt_ids, dtype=torch.long)))
                embeds[i, width - lengths[i]:] = torch.cat(parts)
        return {"inputs_embeds": embeds, "attention_mask": mask}

    def _cut(self, ids: list[int], limit: int) -> list[int]:
        """A row's tokens up to its own limit and through its first eos (what follows is padding)."""
        ids = ids[:limit]
        eos = self.tokenizer.eos_token_id
        return ids[: ids.index(eos) + 1] if eos in ids else ids

    def check_adapter(self, name: str | None) -> None:
        """Raise UnknownAdapterError unless `name` is None (the base model) or a loaded adapter."""
        if name is not None and name not in self._adapters:
            raise UnknownAdapterError(f"no adapter named {name!r}; loaded: {self.adapters() or 'none'}")


class _RowLimits:
    """A stopping criterion that finishes each row at its own `max_new_tokens`."""

    def __init__(self, limits: list[int], start: int) -> None:
        self._limits = limits
        self._start = start

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        made = input_ids.shape[1] - self._start
        return torch.tensor([made >= limit for limit in self._limits], dtype=torch.bool, device=input_ids.device)


_runtimes: dict[tuple[Path, str], ChatRuntime] = {}
_runtimes_lock = threading.Lock()


def shared_runtime(path: Path, dtype: Dtype = "bfloat16") -> ChatRuntime:
    """The process-wide runtime for the model folder `path` in `dtype`, loaded on first use."""
    key = (Path(path).resolve(), dtype)
    with _runtimes_lock:
        if key not in _runtimes:
            _runtimes[key] = ChatRuntime.load(key[0], dtype)
        return _runtimes[key]
