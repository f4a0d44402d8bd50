"""The adapter backend: answer with the shared local base model and one user's own adapter.

Each request loads the user's adapter into the pool if needed (lazily, LRU-evicted under the
pool's bound), pins it while its row is in flight and goes through the batching generator, so
concurrent users share one `generate` call (peft mixed-adapter batches; base rows for users
without an adapter). Adapter names are derived from the scope and the record id, and records
come only from the caller's own scope, so no request can run another user's adapter.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage
from personagraph.agents.llm.chat_format import template_ids, to_chat
from personagraph.agents.llm.runtime import ChatRuntime, GenerationRequest
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.models import AdapterRecord
from personagraph.memory.scope import Scope

from .serving import AdapterPool, BatchingGenerator, adapter_handle


def owner_key(scope: Scope) -> str:
    return f"{scope.tenant}\x1f{scope.user_id}"


class LocalAdapterGenerator:
    """Generation on the local model with a per-request adapter (or the base model)."""

    def __init__(
        self,
        runtime: ChatRuntime,
        *,
        max_adapters: int = 8,
        max_bytes: int | None = None,
        max_batch: int = 8,
        window_ms: float = 10,
        repetition_penalty: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.pool = AdapterPool(runtime, max_adapters=max_adapters, max_bytes=max_bytes)
        self.batcher = BatchingGenerator(runtime, max_batch=max_batch, window_ms=window_ms, repetition_penalty=repetition_penalty)

    def prompt_ids(self, messages: list[BaseMessage]) -> list[int]:
        return template_ids(self.runtime.tokenizer, to_chat(messages))

    def generate(self, scope: Scope, messages: list[BaseMessage], adapter: AdapterRecord | None, *, max_new_tokens: int) -> str:
        ids = self.prompt_ids(messages)
        if adapter is None:
            out = self.batcher.submit(GenerationRequest(ids, max_new_tokens=max_new_tokens)).result()
            return self._decode(out)
        if adapter.status != "registered" or not adapter.path:
            raise InvalidRecordError(f"adapter {adapter.id!r} is {adapter.status}, it has no weights to serve")
        name = adapter_handle(owner_key(scope), adapter.id)
        served = self.pool.acquire(name, adapter.path, adapter.adapter_kind)
        try:
            out = self.batcher.submit(served.request(ids, max_new_tokens=max_new_tokens)).result()
        finally:
            self.pool.release(name)
        return self._decode(out)

    def forget(self, scope: Scope, adapter_ids: list[str]) -> int:
        """Unload these adapters of the user from memory (after deletion or retraining)."""
        return sum(self.pool.evict(adapter_handle(owner_key(scope), aid)) for aid in adapter_ids)

    def stats(self) -> dict[str, Any]:
        return {"pool": self.pool.stats(), "batches": self.batcher.stats()}

    def close(self) -> None:
        self.batcher.close()

    def _decode(self, ids: list[int]) -> str:
        return self.runtime.tokenizer.decode(ids, skip_special_tokens=True).strip()
