"""Perplexity of a user's held-out messages, the measure that says whether an adapter helps.

Only target tokens count (the prompt is given, not predicted), weighted by token so long
messages weigh what they hold. A soft prompt is prepended to the input embeddings exactly
as peft's prompt tuning does in training, the same way serving will use it on the shared base.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from personagraph.agents.llm.chat_format import inert, inert_chat, special_texts
from personagraph.agents.llm.errors import UnknownAdapterError
from personagraph.agents.llm.runtime import BASE
from personagraph.memory.errors import InvalidRecordError
from pydantic import BaseModel

from .examples import SFTExample

IGNORE = -100  # label of positions that are not predicted (prompt, padding, virtual tokens)


class PerplexityReport(BaseModel):
    """`ppl` = exp(`mean_nll`) over all `tokens`; `per_example` holds each example's own perplexity."""

    ppl: float
    mean_nll: float
    tokens: int
    per_example: list[float]


def encode_example(tokenizer: Any, example: SFTExample, max_length: int = 256) -> tuple[list[int], list[int]]:
    """Token ids of prompt + target + end of turn, and labels that mask the prompt.

    Too long: the prompt loses its oldest tokens first (the target is what is measured); a
    target that alone does not fit keeps its start and a few prompt tokens (the assistant header).
    """
    if max_length < 8:
        raise InvalidRecordError(f"max_length must be at least 8, got {max_length}")
    prompt_text = tokenizer.apply_chat_template(inert_chat(example.messages, tokenizer), tokenize=False, add_generation_prompt=True)
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    target = tokenizer(inert(example.target, special_texts(tokenizer)) + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    keep_prompt = min(len(prompt), max(max_length - len(target), 4))
    prompt = prompt[len(prompt) - keep_prompt:]
    target = target[:max_length - len(prompt)]
    return prompt + target, [IGNORE] * len(prompt) + target


def pad_batch(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded (input_ids, attention_mask, labels) tensors."""
    import torch

    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    for row, (x, y) in enumerate(encoded):
        ids[row, :len(x)] = torch.tensor(x)
        mask[row, :len(x)] = 1
        labels[row, :len(y)] = torch.tensor(y)
    return ids, mask, labels


def with_soft_prompt(model: Any, ids: Any, mask: Any, labels: Any, soft_prompt: Any) -> dict[str, Any]:
    """Model inputs with `soft_prompt` (n_virtual, hidden) before every row, as peft prompt
    tuning builds them: embeddings first, attention 1 and label IGNORE on the virtual tokens."""
    import torch

    batch, n_virtual = ids.shape[0], soft_prompt.shape[0]
    embeds = model.get_input_embeddings()(ids)
    prompt = soft_prompt.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
    return {
        "inputs_embeds": torch.cat((prompt, embeds), dim=1),
        "attention_mask": torch.cat((torch.ones((batch, n_virtual), dtype=mask.dtype), mask), dim=1),
        "labels": torch.cat((torch.full((batch, n_virtual), IGNORE, dtype=labels.dtype), labels), dim=1),
    }


def target_nll(model: Any, inputs: dict[str, Any], labels: Any, n_virtual: int = 0, **kwargs: Any) -> tuple[Any, Any]:
    """Negative log-likelihood of every target token, and the batch row each belongs to.

    Logits are computed only at the positions that predict a target (`logits_to_keep` as a
    mask): the 49k-word output layer over every prompt token was a large share of the work.
    `n_virtual` positions that the model prepends itself (peft prompt tuning) are skipped.
    """
    import torch
    import torch.nn.functional as F

    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = labels[:, 1:] != IGNORE
    keep = torch.cat((torch.zeros((labels.shape[0], n_virtual), dtype=torch.bool), predicts), dim=1)
    logits = model(**inputs, logits_to_keep=keep, **kwargs).logits  # (target tokens, vocab), row-major
    nll = F.cross_entropy(logits.float(), labels[:, 1:][predicts[:, :-1]], reduction="none")
    return nll, predicts.nonzero()[:, 0]


def _adapter_kwargs(model: Any, adapter: str | None, batch: int) -> dict[str, Any]:
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        if adapter is not None:
            raise UnknownAdapterError(f"adapter {adapter!r} asked of a model without adapters")
        return {}
    if adapter is not None and adapter not in model.peft_config:
        raise UnknownAdapterError(f"no adapter named {adapter!r}; loaded: {sorted(model.peft_config)}")
    # Per-call selection, never set_adapter: the model may be shared with other callers.
    return {"adapter_names": [adapter or BASE] * batch}


def perplexity(
    model: Any,
    tokenizer: Any,
    examples: Sequence[SFTExample],
    *,
    batch_size: int = 8,
    max_length: int = 256,
    adapter: str | None = None,
    soft_prompt: Any = None,
) -> PerplexityReport:
    """Token-weighted perplexity of the examples' targets.

    `model` is a causal LM or a peft LoRA `PeftModel`; on the latter `adapter=None` measures
    the base. `soft_prompt` is a (n_virtual, hidden) tensor from `load_soft_prompt`.
    """
    import torch

    if not examples:
        raise InvalidRecordError("perplexity needs at least one example")
    if soft_prompt is not None and soft_prompt.dim() != 2:
        raise InvalidRecordError(f"soft_prompt must be (n_virtual, hidden), got shape {tuple(soft_prompt.shape)}")
    encoded = [encode_example(tokenizer, x, max_length) for x in examples]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # less padding per batch
    nll_sum = [0.0] * len(encoded)
    counts = [0] * len(encoded)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                ids, mask, labels = pad_batch([encoded[i] for i in rows], pad_id)
                if soft_prompt is not None:
                    inputs = with_soft_prompt(model, ids, mask, labels, soft_prompt)
                else:
                    inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
                labels = inputs.pop("labels")
                nll, row_of = target_nll(model, inputs, labels, **_adapter_kwargs(model, adapter, len(rows)))
                sums = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, row_of, nll.double())
                per_row = torch.bincount(row_of, minlength=len(rows))
                for row, i in enumerate(rows):
                    nll_sum[i] = sums[row].item()
                    counts[i] = int(per_row[row])
    finally:
        model.train(was_training)
    tokens = sum(counts)
    mean_nll = sum(nll_sum) / tokens
    return PerplexityReport(
        ppl=math.exp(mean_nll),
        mean_nll=mean_nll,
        tokens=tokens,
        per_example=[math.exp(s / c) for s, c in zip(nll_sum, counts, strict=True)],
    )
