"""Completion scoring on the real SmolLM2 base: the cached path matches a plain forward per row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from personagraph.agents.adapters.training import load_training_base
from personagraph.agents.alignment.scoring import completion_logprobs
from personagraph.memory.errors import InvalidRecordError

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
OPTIONS = ["Paris.", "Banana purple seven.", "The capital of France is Paris.", " Lyon"]


@pytest.fixture(scope="module")
def base() -> Iterator[tuple[object, object]]:
    """One thread: on this shared 2-core box two threads were often much slower for short passes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_training_base()
    torch.set_num_threads(threads)


def ids_of(tok: object, messages: list[dict[str, str]]) -> list[int]:
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def naive(model: object, prompt: list[int], completion: list[int]) -> float:
    """One unpadded, uncached forward pass over prompt + completion."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + completion])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(logprobs[len(prompt) - 1 + j, t].item() for j, t in enumerate(completion))


def test_cached_batches_match_plain_forward(base: tuple[object, object]) -> None:
    model, tok = base
    other = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    prompts = [FRANCE] * 4 + [other, other]
    completions = [*OPTIONS, "Blue.", "A colour is a property of light."]
    scores = completion_logprobs(model, tok, prompts, completions, batch_size=3)
    for messages, text, score in zip(prompts, completions, scores, strict=True):
        completion = tok(text, add_special_tokens=False)["input_ids"]
        assert score.tokens == len(completion)
        assert score.logprob == pytest.approx(naive(model, ids_of(tok, messages), completion), abs=1e-3)
        assert score.mean == pytest.approx(score.logprob / score.tokens)


def test_completion_tokens_are_the_completions_own(base: tuple[object, object]) -> None:
    """The chat template's generation prompt ends in a newline, so no merge crosses the boundary."""
    _, tok = base
    prompt_text = tok.apply_chat_template(FRANCE, tokenize=False, add_generation_prompt=True)
    for text in OPTIONS:
        joined = tok(prompt_text + text, add_special_tokens=False)["input_ids"]
        assert joined == ids_of(tok, FRANCE) + tok(text, add_special_tokens=False)["input_ids"]


def test_left_truncation_keeps_the_completion(base: tuple[object, object]) -> None:
    model, tok = base
    long = [{"role": "user", "content": "Some background. " * 200 + "What is the capital of France?"}]
    completions = ["Paris.", "The capital of France is Paris."]
    scores = completion_logprobs(model, tok, [long, long], completions, max_length=64)
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions]
    kept = ids_of(tok, long)[-(64 - max(len(c) for c in ids)):]  # one cut for both: the longest fits
    for score, completion in zip(scores, ids, strict=True):
        assert score.tokens == len(completion)
        assert score.logprob == pytest.approx(naive(model, kept, completion), abs=1e-3)


def test_right_answer_beats_nonsense_and_mode_is_restored(base: tuple[object, object]) -> None:
    model, tok = base
    model.train()
    try:
        right, nonsense = completion_logprobs(model, tok, [FRANCE, FRANCE], ["Paris.", "Banana purple seven."])
        assert model.training
    finally:
        model.eval()
    assert right.mean > nonsense.mean
    assert right.logprob > nonsense.logprob


def test_peft_model_scores_like_its_base(base: tuple[object, object]) -> None:
    """A fresh LoRA adds zero, so a PeftModel must score what its base scores."""
    from peft import LoraConfig, get_peft_model

    model, tok = base
    expected = completion_logprobs(model, tok, [FRANCE] * 2, OPTIONS[:2])
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"]))
    try:
        got = completion_logprobs(peft_model, tok, [FRANCE] * 2, OPTIONS[:2])
    finally:
        peft_model.unload()
    for a, b in zip(expected, got, strict=True):
        assert b.logprob == pytest.approx(a.logprob, abs=1e-4)


@pytest.mark.parametrize(
    ("prompts", "completions", "kwargs"),
    [
        ([FRANCE], [], {}),
        ([FRANCE, FRANCE], ["Paris."], {}),
        ([FRANCE], [""], {}),
        ([[]], ["Paris."], {}),
        ([FRANCE], ["Paris."], {"batch_size": 0}),
        ([FRANCE], ["Paris is the capital of France."], {"max_length": 4}),
    ],
)
def test_bad_input_is_refused(base: tuple[object, object], prompts: list, completions: list, kwargs: dict) -> None:
    model, tok = base
    with pytest.raises(InvalidRecordError):
        completion_logprobs(model, tok, prompts, completions, **kwargs)
