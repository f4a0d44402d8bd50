"""Context Steering (CoS; He et al., 2024, arXiv 2405.01768) on a local transformers model.

The context's influence on the next token is the gap between the log-probabilities with the
personal context and without it, F = log P(x | C, P) - log P(x | ∅, P); CoS decodes from
log P(x | C, P) + λ·F, renormalised. λ = 0 is plain decoding with the context, λ > 0 amplifies
the context, -1 < λ < 0 damps it and λ = -1 ignores it. It costs a second forward pass per token:
the neutral sequence (the same request without the context) keeps its own KV cache and is fed
every token the steered decoding picks.
"""

from __future__ import annotations

import math
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, Field, field_validator


class ContrastSpec(BaseModel):
    """Per-call contrastive decoding: the request without personal context and λ."""

    neutral_messages: list[BaseMessage] = Field(min_length=1)
    strength: float = Field(description="λ: 0 plain, > 0 more context influence, < 0 less")

    @field_validator("strength")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("strength must be a finite number")
        return value


class ContrastiveLogitsProcessor:
    """A transformers logits processor (duck-typed, so importing this module does not import
    transformers) that steers scores away from the neutral sequence's.

    Returns `scores + λ·(log_softmax(scores) - log_softmax(neutral))`: its log-softmax is exactly
    CoS's log P(x|C,P) + λ·F renormalised (the two differ by a constant per step), and with λ = 0
    it returns `scores` bit for bit, so greedy decoding is unchanged. One generation per
    instance (it holds the neutral KV cache), batch size 1.
    """

    def __init__(self, model: Any, neutral_prompt_ids: list[int], strength: float, *, adapter: str | None = None) -> None:
        """`model` is the model, or a function returning it: the runtime swaps in a peft
        wrapper when its first adapter loads, so the model is read at the first step, which
        runs under the runtime's lock, never before it."""
        if not neutral_prompt_ids:
            raise ValueError("the neutral prompt is empty")
        if not math.isfinite(strength):
            raise ValueError("strength must be a finite number")
        self._model_source = model if callable(model) and not hasattr(model, "forward") else (lambda: model)
        self.model: Any = None
        self.adapter = adapter
        self.strength = strength
        self._extra: dict[str, Any] = {}
        self._cache: Any = None
        self._seen: int | None = None  # length of the steered sequence already mirrored
        self._pending = list(neutral_prompt_ids)  # what the neutral pass has yet to read

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if input_ids.shape[0] != 1 or scores.shape[0] != 1:
            raise ValueError(f"contrastive decoding runs one sequence at a time, got a batch of {input_ids.shape[0]}")
        length = input_ids.shape[1]
        if self.model is None:
            self.model = self._model_source()
            if _is_peft(self.model):  # the neutral pass must run the same LoRA as the steered one
                from .llm.runtime import BASE

                self._extra["adapter_names"] = [self.adapter or BASE]
        if self._seen is not None:
            if length <= self._seen:
                raise RuntimeError("a ContrastiveLogitsProcessor serves one generation: make a new one per call")
            self._pending = input_ids[0, self._seen :].tolist()  # the tokens picked since the last step
        self._seen = length
        with torch.no_grad():
            neutral = self._forward(self._pending)
        steered = scores.float()
        influence = torch.log_softmax(steered, dim=-1) - torch.log_softmax(neutral, dim=-1)
        # A token an earlier processor masked (-inf) stays masked: -inf times λ <= 0 is not -inf.
        return torch.where(torch.isneginf(steered), steered, steered + self.strength * influence)

    def _forward(self, ids: list[int]) -> Any:
        """Next-token logits of the neutral sequence after `ids`, extending its KV cache."""
        import torch

        output = self.model(
            input_ids=torch.tensor([ids], dtype=torch.long),
            cache=self._cache,
            use_cache=True,
            **self._extra,
        )
        self._cache = output.cache
        return output.logits[:, -1, :].float()


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)
