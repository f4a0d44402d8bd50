"""Log-likelihood of fixed completions after chat prompts: how a model ranks given answers.

Multiple-choice evaluation and preference checks ask which of a few completions a model
finds likeliest after one prompt, so every distinct prompt runs once and its KV cache is
reused by all of its completions: four options cost one prompt pass plus four short rows.

Tokenization: the prompt is the chat template's text with the generation prompt, tokenized
alone, and the completion is tokenized alone and its ids appended (the standard choice: a
BPE merge across the boundary would otherwise move tokens between prompt and completion, and
`tokens` would not be the completion's own count). For ChatML templates such as SmolLM2's,
whose generation prompt ends in a newline, it is also what tokenizing the joined text gives.

Nothing follows the completion, no end-of-turn token: an option is scored as how the reply
starts, not as the whole reply, since real replies go on well past a one-line option.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from personagraph.agents.llm.chat_format import inert, inert_chat, special_texts
from personagraph.memory.errors import InvalidRecordError
from pydantic import BaseModel, ConfigDict


class CompletionScore(BaseModel):
    """`logprob` sums the completion's token log-probabilities; `mean` is per token, so long
    completions are not penalised for their length alone."""

    model_config = ConfigDict(frozen=True)

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        return self.logprob / self.tokens


def completion_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[dict[str, str]]],
    completions: Sequence[str],
    *,
    max_length: int = 1024,
    batch_size: int = 4,
    end_of_turn: bool = False,
) -> list[CompletionScore]:
    """Score `completions[i]` as the assistant's reply to the chat messages `prompts[i]`.

    With `end_of_turn`, the tokenizer's end-of-sequence token (the end of an assistant turn in
    ChatML) follows each completion and is scored with it: the completion as a whole reply,
    the way TRL trains preferences. Without it a prefix of an answer always scores at least
    as high as the answer, whatever the model.

    Too long: the prompt loses its oldest tokens (the question is at its end); completions are
    never cut. Rows with the same prompt share one cut, the one that fits its longest
    completion, so the options of a question are compared on the same context. `model` is a
    causal LM or a LoRA `PeftModel` (not prompt tuning: its virtual tokens bypass the cache);
    it is scored in eval mode without gradients and its mode is put back. `batch_size` is how
    many completions of a prompt run together.
    """
    import torch

    if len(prompts) != len(completions):
        raise InvalidRecordError(f"{len(prompts)} prompts but {len(completions)} completions")
    if batch_size < 1:
        raise InvalidRecordError(f"batch_size must be at least 1, got {batch_size}")
    ending = [tokenizer.eos_token_id] if end_of_turn else []
    specials = special_texts(tokenizer)  # typed text never becomes a template token
    completion_ids = [tokenizer(inert(c, specials), add_special_tokens=False)["input_ids"] + ending for c in completions]
    for i, ids in enumerate(completion_ids):
        if not ids:
            raise InvalidRecordError(f"completion {i} is empty: a score per token needs a token")
    groups: dict[str, list[int]] = {}
    for i, messages in enumerate(prompts):
        if not messages:
            raise InvalidRecordError(f"prompt {i} has no messages")
        text = tokenizer.apply_chat_template(inert_chat(list(messages), tokenizer), tokenize=False, add_generation_prompt=True)
        groups.setdefault(text, []).append(i)

    scores: dict[int, CompletionScore] = {}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for text, rows in groups.items():
                longest = max(len(completion_ids[i]) for i in rows)
                if longest >= max_length:
                    raise InvalidRecordError(
                        f"a completion of {longest} tokens leaves no room for its prompt in max_length {max_length}"
                    )
                prompt = tokenizer(text, add_special_tokens=False)["input_ids"][-(max_length - longest):]
                out = model(input_ids=torch.tensor([prompt]), use_cache=True, logits_to_keep=1)
                first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                for start in range(0, len(rows), batch_size):
                    chunk = rows[start:start + batch_size]
                    sums = _continue(model, out.cache, first, [completion_ids[i] for i in chunk], pad_id)
                    for i, logprob in zip(chunk, sums, strict=True):
                        scores[i] = CompletionScore(logprob=logprob, tokens=len(completion_ids[i]))
    finally:
        model.train(was_training)
    return [scores[i] for i in range(len(completions))]


def _continue(model: Any, cache: Any, first: Any, completions: list[list[int]], pad_id: int) -> list[float]:
    """Summed log-probabilities of right-padded `completions` run on a copy of the prompt's
    cache; `first` holds the log-probabilities the prompt's last position gives the first token."""
    import torch

    rows, width = len(completions), max(len(c) for c in completions)
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, width), dtype=torch.long)
    for row, c in enumerate(completions):
        ids[row, :len(c)] = torch.tensor(c)
        mask[row, :len(c)] = 1
    cache = copy.deepcopy(cache)  # the forward pass appends to it; the prompt's stays clean
    cache.batch_repeat_interleave(rows)
    attention = torch.cat((torch.ones((rows, cache.get_seq_length()), dtype=torch.long), mask), dim=1)
    logits = model(input_ids=ids, attention_mask=attention, cache=cache, use_cache=True).logits
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # position j predicts token j + 1
    sums = []
    for row, c in enumerate(completions):
        rest = logprobs[row, : len(c) - 1].gather(-1, torch.tensor(c[1:]).unsqueeze(-1)).sum()
        sums.append(float(first[c[0]] + rest))
    return sums
