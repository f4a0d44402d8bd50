"""One loaded chat model per process, shared by every `LocalChatModel`, with its LoRA adapters.

A 135M model is small, but loading it twice doubles memory and running two `generate` calls
at once on a 2-core box makes both several times slower: one runtime per (folder, dtype) and
a lock around generation. Adapters are peft LoRA weights injected into that one base model and
picked per call with `adapter_names`, so callers never change shared state to use one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from personagraph.memory.errors import ConfigurationError

from .errors import UnknownAdapterError
from .weights import offline

Dtype = Literal["bfloat16", "float32"]
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


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

    def generate(
        self,
        prompt_ids: list[int],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        adapter: str | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """New token ids after `prompt_ids`; greedy when temperature is 0. `kwargs` go to
        `transformers` `generate` (logits_processor, streamer, stopping_criteria)."""
        import torch

        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with self._lock:
            self.check_adapter(adapter)
            if self._adapters:  # LoRA layers are in the model: say which one, or none, to use
                kwargs["adapter_names"] = [adapter or BASE]
            inputs = torch.tensor([prompt_ids], dtype=torch.long)
            output = self.model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.eos_token_id,
                **sampling,
                **kwargs,
            )
        return output[0, len(prompt_ids):].tolist()

    def check_adapter(self, name: str | None) -> None:
        """Raise UnknownAdapterError unless `name` is None (the base model) or a loaded adapter."""
        if name is not None and name not in self._adapters:
            raise UnknownAdapterError(f"no adapter named {name!r}; loaded: {self.adapters() or 'none'}")


_runtimes: dict[tuple[Path, str], ChatRuntime] = {}
_runtimes_lock = threading.Lock()


def shared_runtime(path: Path, dtype: Dtype = "bfloat16") -> ChatRuntime:
    """The process-wide runtime for the model folder `path` in `dtype`, loaded on first use."""
    key = (Path(path).resolve(), dtype)
    with _runtimes_lock:
        if key not in _runtimes:
            _runtimes[key] = ChatRuntime.load(key[0], dtype)
        return _runtimes[key]
