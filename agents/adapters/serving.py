"""Serving many users' adapters on the one shared base model.

`AdapterPool` keeps the adapters that are in use loaded (LoRA weights inside the runtime's
PeftModel, soft prompts as small tensors), loads others lazily from disk and evicts the least
recently used over a count or byte bound. `BatchingGenerator` gathers requests that arrive
within a few milliseconds into one `generate_batch` call, whatever adapters they use: on a
CPU, eight rows cost far less than eight separate calls.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from personagraph.agents.llm.errors import UnknownAdapterError
from personagraph.agents.llm.runtime import ChatRuntime, GenerationRequest
from personagraph.memory.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

AdapterKind = Literal["lora", "prompt"]
_PEFT_TYPES: dict[str, AdapterKind] = {"LORA": "lora", "PROMPT_TUNING": "prompt"}


def adapter_handle(owner_key: str, adapter_id: str) -> str:
    """The runtime name of `owner_key`'s adapter `adapter_id`.

    peft keeps adapters in `ModuleDict`s, whose keys cannot contain "."; user keys can contain
    anything, so the name is a readable slug plus a hash of both parts (distinct per owner even
    when slugs collide, and the same in every process).
    """
    digest = hashlib.sha256(f"{owner_key}\x00{adapter_id}".encode()).hexdigest()[:24]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", adapter_id).strip("_")[:24]
    return f"u_{slug}_{digest}" if slug else f"u_{digest}"


@dataclass(frozen=True, eq=False)
class ServedAdapter:
    """A loaded adapter: what a request needs to use it."""

    name: str
    path: Path
    kind: AdapterKind
    nbytes: int
    soft_prompt: torch.Tensor | None = field(default=None, repr=False)

    def request(self, prompt_ids: list[int], *, max_new_tokens: int) -> GenerationRequest:
        """A generation request that runs `prompt_ids` through this adapter."""
        if self.kind == "lora":
            return GenerationRequest(prompt_ids, adapter=self.name, max_new_tokens=max_new_tokens)
        return GenerationRequest(prompt_ids, soft_prompt=self.soft_prompt, max_new_tokens=max_new_tokens)


@dataclass
class _Slot:
    served: ServedAdapter
    pins: int = 0


class AdapterPool:
    """Loaded adapters on one runtime, least recently used first out.

    `acquire` pins the adapter until the matching `release`: a pinned adapter is never evicted
    to make room (the pool goes over its bound instead, and shrinks on release), since an
    in-flight batch may name it. `evict` is the exception: forgetting a user must win, and a
    request still queued for that adapter then fails with UnknownAdapterError.

    Two locks: `_lock` guards the bookkeeping and is held only briefly, so hits never wait for
    disk; `_load_lock` serialises loads and unloads, which wait on the runtime's own lock
    anyway.
    """

    def __init__(self, runtime: ChatRuntime, *, max_adapters: int = 8, max_bytes: int | None = None) -> None:
        if max_adapters < 1:
            raise ConfigurationError(f"max_adapters must be at least 1, not {max_adapters}")
        self.runtime = runtime
        self.max_adapters = max_adapters
        self.max_bytes = max_bytes
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._loads = self._hits = self._evictions = 0
        self._load_ms: list[float] = []

    def acquire(self, name: str, path: str | Path, kind: AdapterKind) -> ServedAdapter:
        """The adapter `name`, loaded from `path` if it is not loaded from there already; pinned
        until `release(name)`. A new `path` for a loaded name (a retrained adapter) replaces it."""
        path = Path(path)
        if kind not in ("lora", "prompt"):
            raise ConfigurationError(f"unknown adapter kind {kind!r}: 'lora' or 'prompt'")
        if served := self._pin_if_loaded(name, path, kind):
            return served
        with self._load_lock:
            if served := self._pin_if_loaded(name, path, kind):  # loaded while we waited
                return served
            started = time.perf_counter()
            served = self._load(name, path, kind)
            elapsed_ms = (time.perf_counter() - started) * 1000
            with self._lock:
                old = self._slots.pop(name, None)
            if old is not None and old.served.kind == "lora" and kind != "lora":
                self._unload(old.served)  # a LoRA replaced by a soft prompt of the same name
            with self._lock:
                # Callers that pinned the old version release this name: their pins carry over.
                self._slots[name] = _Slot(served, pins=1 + (old.pins if old else 0))
                self._loads += 1
                self._load_ms.append(elapsed_ms)
            self._shrink()
        return served

    def release(self, name: str) -> None:
        """Unpin one `acquire` of `name`; evicts down to the bound if pins held the pool over it."""
        with self._lock:
            slot = self._slots.get(name)
            if slot is None or slot.pins == 0:  # evicted meanwhile, or released twice
                return
            slot.pins -= 1
            if not self._over_bounds():
                return
        with self._load_lock:
            self._shrink()

    def evict(self, name: str) -> bool:
        """Unload `name` now, pinned or not (its user was forgotten or retrained); False if it
        was not loaded."""
        with self._load_lock:
            with self._lock:
                slot = self._slots.pop(name, None)
                if slot is None:
                    return False
                self._evictions += 1
            self._unload(slot.served)
        return True

    def loaded(self) -> list[str]:
        """Loaded adapter names, least recently used first."""
        with self._lock:
            return list(self._slots)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and monitoring; `load_ms` lists every load's time."""
        with self._lock:
            return {
                "loads": self._loads,
                "hits": self._hits,
                "evictions": self._evictions,
                "load_ms": list(self._load_ms),
                "bytes": sum(s.served.nbytes for s in self._slots.values()),
                "loaded": len(self._slots),
                "pinned": sum(1 for s in self._slots.values() if s.pins),
            }

    def _pin_if_loaded(self, name: str, path: Path, kind: AdapterKind) -> ServedAdapter | None:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None or slot.served.path != path or slot.served.kind != kind:
                return None
            self._slots.move_to_end(name)
            slot.pins += 1
            self._hits += 1
            return slot.served

    def _over_bounds(self) -> bool:
        """Whether the pool holds too many adapters or bytes; called with `_lock` held."""
        if len(self._slots) > self.max_adapters:
            return True
        return self.max_bytes is not None and sum(s.served.nbytes for s in self._slots.values()) > self.max_bytes

    def _load(self, name: str, path: Path, kind: AdapterKind) -> ServedAdapter:
        """Read the adapter from disk into the runtime (LoRA) or into memory (soft prompt)."""
        found = _peft_kind(path)
        if found != kind:
            raise ConfigurationError(f"{path} holds a {found or 'non-peft'} adapter, not {kind}")
        if kind == "lora":
            self.runtime.load_adapter(name, path)
            return ServedAdapter(name, path, kind, self.runtime.adapter_bytes(name))
        soft_prompt = _read_soft_prompt(path, self.runtime)
        return ServedAdapter(name, path, kind, soft_prompt.numel() * soft_prompt.element_size(), soft_prompt)

    def _unload(self, served: ServedAdapter) -> None:
        if served.kind == "lora" and served.name in self.runtime.adapters():
            self.runtime.unload_adapter(served.name)

    def _shrink(self) -> None:
        """Evict unpinned adapters, least recently used first, until within the bounds.
        Called with `_load_lock` held."""
        victims: list[ServedAdapter] = []
        with self._lock:
            for name, slot in list(self._slots.items()):
                if not self._over_bounds():
                    break
                if slot.pins:
                    continue
                del self._slots[name]
                self._evictions += 1
                victims.append(slot.served)
        for served in victims:
            self._unload(served)


def _peft_kind(path: Path) -> AdapterKind | None:
    """The adapter kind recorded in a peft folder's adapter_config.json."""
    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} is not a readable peft adapter folder: {exc}") from exc
    return _PEFT_TYPES.get(config.get("peft_type", ""))


def _read_soft_prompt(path: Path, runtime: ChatRuntime) -> torch.Tensor:
    """The (n_virtual, hidden) prompt-tuning embeddings, in the runtime's dtype."""
    from safetensors.torch import load_file

    tensors = load_file(path / "adapter_model.safetensors")
    if "prompt_embeddings" not in tensors:
        raise ConfigurationError(f"{path} has no prompt_embeddings tensor")
    soft_prompt = tensors["prompt_embeddings"]
    hidden = runtime.model.get_input_embeddings().embedding_dim
    if soft_prompt.ndim != 2 or soft_prompt.shape[1] != hidden:
        raise ConfigurationError(f"{path}: soft prompt of shape {tuple(soft_prompt.shape)} does not fit hidden size {hidden}")
    return soft_prompt.to(runtime.dtype)


@dataclass
class _Pending:
    request: GenerationRequest
    future: Future[list[int]]


_CLOSE = object()


class BatchingGenerator:
    """Merges concurrent `submit`s into batched `generate_batch` calls on one worker thread.

    The first request of a batch waits at most `window_ms` for others (up to `max_batch` rows);
    requests that arrive while a batch runs are taken at once by the next one. A row naming an
    adapter that is gone fails alone: the rest of its batch still runs.
    """

    def __init__(
        self,
        runtime: ChatRuntime,
        *,
        max_batch: int = 8,
        window_ms: float = 10,
        temperature: float = 0.0,
        repetition_penalty: float = 1.0,
    ) -> None:
        if max_batch < 1:
            raise ConfigurationError(f"max_batch must be at least 1, not {max_batch}")
        self.runtime = runtime
        self.max_batch = max_batch
        self.window_s = window_ms / 1000
        self.temperature = temperature
        # One setting for every row: generate applies it to the whole batch.
        self.options = {"repetition_penalty": repetition_penalty} if repetition_penalty != 1.0 else {}
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._closed = False
        self._submit_lock = threading.Lock()
        self._batches = self._rows = 0
        self._worker = threading.Thread(target=self._run, name="adapter-batching", daemon=True)
        self._worker.start()

    def submit(self, request: GenerationRequest) -> Future[list[int]]:
        """Queue `request`; the future gives its new token ids (or the error of its batch)."""
        future: Future[list[int]] = Future()
        with self._submit_lock:
            if self._closed:
                raise RuntimeError("BatchingGenerator is closed")
            self._queue.put(_Pending(request, future))
        return future

    def close(self) -> None:
        """Finish what was submitted, then stop the worker."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_CLOSE)
        self._worker.join()

    def stats(self) -> dict[str, int]:
        return {"batches": self._batches, "rows": self._rows}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            if first is _CLOSE:
                return
            batch = [first]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _CLOSE:
                    closing = True
                    break
                batch.append(item)
            self._serve([p for p in batch if isinstance(p, _Pending) and p.future.set_running_or_notify_cancel()])

    def _serve(self, batch: list[_Pending]) -> None:
        """Run `batch` as one call; rows whose adapter is unknown fail alone, and are dropped
        and the rest retried if one was unloaded between the check and the call."""
        while batch:
            runnable = []
            for pending in batch:
                try:
                    self.runtime.check_adapter(pending.request.adapter)
                except UnknownAdapterError as exc:
                    pending.future.set_exception(exc)
                else:
                    runnable.append(pending)
            batch = runnable
            if not batch:
                return
            try:
                outputs = self.runtime.generate_batch([p.request for p in batch], temperature=self.temperature, **self.options)
            except UnknownAdapterError:
                continue  # unloaded after the check: the next round fails just those rows
            except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
                for pending in batch:
                    pending.future.set_exception(exc)
                return
            self._batches += 1
            self._rows += len(batch)
            for pending, ids in zip(batch, outputs, strict=True):
                pending.future.set_result(ids)
            return
