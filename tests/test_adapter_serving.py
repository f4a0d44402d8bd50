"""Serving per-user adapters on one base model: mixed batches, soft prompts, the adapter pool
and the batching generator, on the real SmolLM2.

Exactness checks run on a float32 runtime of their own (greedy bfloat16 may flip a token
between a batch and a single row); the adapters are made here, on a tiny copy of the
architecture, since they only touch attention (LoRA) or the input embeddings (soft prompt).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from personagraph.agents.adapters.serving import (
    AdapterPool,
    BatchingGenerator,
    adapter_handle,
)
from personagraph.agents.llm import UnknownAdapterError
from personagraph.agents.llm.runtime import (
    ChatRuntime,
    GenerationRequest,
    shared_runtime,
)
from personagraph.agents.llm.weights import model_dir
from personagraph.memory.errors import ConfigurationError

QUESTIONS = ["What is the capital of France?", "Name a fruit.", "Tell me about cats.", "Hi"]
TOKENS = 6


def _tiny_base() -> torch.nn.Module:
    """SmolLM2's attention shapes with an 8-token vocabulary and MLP: adapters made on it fit."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir(), vocab_size=8, intermediate_size=8)
    return AutoModelForCausalLM.from_config(config)


def _save_lora(base: torch.nn.Module, out: Path, seed: int) -> torch.nn.Module:
    """A q/v LoRA with random A and B (peft zeroes B, which would change nothing); gives back
    `base` without it."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(out, save_embedding_layers=False)
    return model.unload()


def _save_prompt(base: torch.nn.Module, out: Path, seed: int) -> None:
    """A prompt-tuning adapter of 6 random virtual tokens."""
    from peft import PromptTuningConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6))
    model.save_pretrained(out, save_embedding_layers=False)


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    base = _tiny_base()
    for i in range(4):
        base = _save_lora(base, root / f"lora{i}", seed=i)
    for i in range(2):
        _save_prompt(base, root / f"prompt{i}", seed=i)
    return {p.name: p for p in root.iterdir()}


@pytest.fixture(scope="session")
def runtime() -> ChatRuntime:
    return ChatRuntime.load(model_dir(), "float32")


@pytest.fixture(scope="session")
def prompts(runtime: ChatRuntime) -> list[list[int]]:
    chats = [[{"role": "user", "content": q}] for q in QUESTIONS]
    return [list(runtime.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]) for c in chats]


@pytest.fixture(scope="session")
def base_answers(runtime: ChatRuntime, prompts: list[list[int]]) -> list[list[int]]:
    """Each prompt's greedy reply from the base model before any adapter was loaded."""
    assert runtime.adapters() == []
    return [runtime.generate(p, max_new_tokens=TOKENS) for p in prompts]


@pytest.fixture(scope="session")
def soft_prompts(adapter_dirs: dict[str, Path]) -> list[torch.Tensor]:
    from safetensors.torch import load_file

    return [load_file(adapter_dirs[f"prompt{i}"] / "adapter_model.safetensors")["prompt_embeddings"] for i in range(2)]


@pytest.fixture(scope="session")
def loaded(runtime: ChatRuntime, adapter_dirs: dict[str, Path], base_answers: list[list[int]]) -> list[str]:
    """LoRAs "a" and "b" in the float32 runtime (after `base_answers` was taken)."""
    runtime.load_adapter("a", adapter_dirs["lora0"])
    runtime.load_adapter("b", adapter_dirs["lora1"])
    return ["a", "b"]


# --- runtime.generate_batch -----------------------------------------------------------------


def test_mixed_batch_rows_equal_each_row_generated_alone(
    runtime: ChatRuntime, prompts: list[list[int]], loaded: list[str], soft_prompts: list[torch.Tensor], base_answers: list[list[int]]
) -> None:
    soft_prompt, other_soft_prompt = soft_prompts
    requests = [
        GenerationRequest(prompts[0], max_new_tokens=TOKENS),
        GenerationRequest(prompts[0], adapter="a", max_new_tokens=TOKENS),
        GenerationRequest(prompts[0], adapter="b", max_new_tokens=TOKENS),
        GenerationRequest(prompts[1], adapter="a", max_new_tokens=3),
        GenerationRequest(prompts[2], adapter="b", soft_prompt=soft_prompt, max_new_tokens=TOKENS),
        GenerationRequest(prompts[3], soft_prompt=soft_prompt, max_new_tokens=TOKENS),
        GenerationRequest(prompts[3], max_new_tokens=TOKENS),
        GenerationRequest(prompts[3], soft_prompt=other_soft_prompt[:2], max_new_tokens=TOKENS),
    ]
    alone = [runtime.generate_batch([r])[0] for r in requests]
    assert runtime.generate_batch(requests) == alone
    assert len(alone[3]) <= 3
    assert len({tuple(a) for a in alone[:3]}) == 3  # base, a and b each answer differently
    assert alone[0] == base_answers[0] and alone[6] == base_answers[3]  # base rows ignore loaded adapters
    assert alone[5] != base_answers[3] and alone[7] != alone[5]  # soft prompts change the reply


def test_base_rows_in_an_adapter_batch_are_unaffected(
    runtime: ChatRuntime, prompts: list[list[int]], loaded: list[str], base_answers: list[list[int]]
) -> None:
    requests = [GenerationRequest(p, adapter=a, max_new_tokens=TOKENS) for p, a in zip(prompts, ["a", None, "b", None], strict=True)]
    out = runtime.generate_batch(requests)
    assert out[1] == base_answers[1] and out[3] == base_answers[3]


def test_generate_takes_a_soft_prompt_and_matches_a_full_forward_greedy(
    runtime: ChatRuntime, prompts: list[list[int]], soft_prompts: list[torch.Tensor], loaded: list[str]
) -> None:
    """What prompt tuning trains on: the virtual tokens before the prompt, no KV cache."""
    soft_prompt = soft_prompts[0]
    ids = runtime.generate(prompts[3], max_new_tokens=5, soft_prompt=soft_prompt)
    embed = runtime.model.get_input_embeddings()
    sequence, expected = list(prompts[3]), []
    with torch.no_grad():
        for _ in range(5):
            embeds = torch.cat([soft_prompt, embed(torch.tensor(sequence))])[None]
            token = int(runtime.model(inputs_embeds=embeds, adapter_names=["__base__"]).logits[0, -1].argmax())
            expected.append(token)
            sequence.append(token)
    assert ids == expected


def test_an_unknown_adapter_is_refused(runtime: ChatRuntime, prompts: list[list[int]], loaded: list[str]) -> None:
    with pytest.raises(UnknownAdapterError):
        runtime.generate_batch([GenerationRequest(prompts[0], adapter="a", max_new_tokens=2), GenerationRequest(prompts[0], adapter="nope", max_new_tokens=2)])
    with pytest.raises(UnknownAdapterError):
        runtime.generate(prompts[0], max_new_tokens=2, adapter="nope")


def test_requests_are_validated(runtime: ChatRuntime) -> None:
    assert runtime.generate_batch([]) == []
    with pytest.raises(ValueError, match="prompt_ids or a soft_prompt"):
        runtime.generate_batch([GenerationRequest([], max_new_tokens=2)])
    with pytest.raises(ValueError, match="at least 1"):
        runtime.generate_batch([GenerationRequest([1], max_new_tokens=0)])


# --- adapter names --------------------------------------------------------------------------


def test_adapter_handles_are_peft_safe_deterministic_and_distinct_per_owner() -> None:
    handle = adapter_handle("user.one@example.com", "v1.2")
    assert handle == adapter_handle("user.one@example.com", "v1.2")
    assert "." not in handle and handle.replace("_", "").isalnum() and handle != "__base__"
    others = {adapter_handle("user.two@example.com", "v1.2"), adapter_handle("user.one@example.com", "v1_2"), adapter_handle("a", "b\x00c"), adapter_handle("a\x00b", "c")}
    assert handle not in others and len(others) == 4
    assert adapter_handle("u", "...").startswith("u_")


# --- AdapterPool ----------------------------------------------------------------------------


def test_pool_loads_lazily_hits_and_evicts_the_least_recently_used(runtime: ChatRuntime, adapter_dirs: dict[str, Path], loaded: list[str]) -> None:
    pool = AdapterPool(runtime, max_adapters=2)
    names = [adapter_handle("owner", f"lora{i}") for i in range(3)]
    assert pool.loaded() == [] and pool.stats()["loads"] == 0
    try:
        first = pool.acquire(names[0], adapter_dirs["lora0"], "lora")
        assert first.kind == "lora" and first.nbytes > 0 and names[0] in runtime.adapters()
        pool.acquire(names[1], adapter_dirs["lora1"], "lora")
        assert pool.acquire(names[0], adapter_dirs["lora0"], "lora") is first  # a hit: no reload
        for name in names[:2]:
            pool.release(name)
        pool.release(names[0])
        pool.acquire(names[2], adapter_dirs["lora2"], "lora")  # over the bound: names[1] is the LRU
        pool.release(names[2])
        assert pool.loaded() == [names[0], names[2]]
        assert names[1] not in runtime.adapters() and set(loaded) <= set(runtime.adapters())
        stats = pool.stats()
        assert (stats["loads"], stats["hits"], stats["evictions"]) == (3, 1, 1)
        assert len(stats["load_ms"]) == 3 and stats["bytes"] == 2 * first.nbytes and stats["pinned"] == 0
    finally:
        for name in names:
            pool.evict(name)
    assert pool.loaded() == [] and runtime.adapters() == loaded


def test_pool_never_evicts_a_pinned_adapter_and_shrinks_on_release(runtime: ChatRuntime, adapter_dirs: dict[str, Path], loaded: list[str]) -> None:
    pool = AdapterPool(runtime, max_adapters=1)
    names = [adapter_handle("owner", f"pinned{i}") for i in range(2)]
    try:
        pool.acquire(names[0], adapter_dirs["lora0"], "lora")
        pool.acquire(names[1], adapter_dirs["lora1"], "lora")
        assert pool.loaded() == names  # both in use: over the bound rather than break a batch
        pool.release(names[0])
        assert pool.loaded() == [names[1]] and names[0] not in runtime.adapters()
    finally:
        for name in names:
            pool.evict(name)


def test_pool_byte_bound(runtime: ChatRuntime, adapter_dirs: dict[str, Path]) -> None:
    pool = AdapterPool(runtime, max_bytes=1)  # room for nothing unpinned
    served = pool.acquire("soft", adapter_dirs["prompt0"], "prompt")
    assert pool.loaded() == ["soft"]
    pool.release("soft")
    assert pool.loaded() == [] and pool.stats()["evictions"] == 1 and served.nbytes == 6 * 576 * 4


def test_pool_reload_from_a_new_path_replaces_and_evict_forgets(
    runtime: ChatRuntime, adapter_dirs: dict[str, Path], prompts: list[list[int]], loaded: list[str]
) -> None:
    pool = AdapterPool(runtime)
    name = adapter_handle("owner", "retrained")
    served = pool.acquire(name, adapter_dirs["lora2"], "lora")
    pool.release(name)
    before = runtime.generate_batch([served.request(prompts[0], max_new_tokens=TOKENS)])[0]
    retrained = pool.acquire(name, adapter_dirs["lora3"], "lora")
    pool.release(name)
    assert retrained.path == adapter_dirs["lora3"] and pool.stats()["loads"] == 2 and pool.loaded() == [name]
    after = runtime.generate_batch([retrained.request(prompts[0], max_new_tokens=TOKENS)])[0]
    assert after != before
    assert pool.evict(name) and not pool.evict(name)
    with pytest.raises(UnknownAdapterError):
        runtime.generate_batch([retrained.request(prompts[0], max_new_tokens=2)])
    assert pool.loaded() == [] and runtime.adapters() == loaded


def test_pool_serves_soft_prompts_in_the_runtime_dtype_and_checks_the_kind(adapter_dirs: dict[str, Path]) -> None:
    bf16 = shared_runtime(model_dir())
    pool = AdapterPool(bf16)
    served = pool.acquire("soft", adapter_dirs["prompt0"], "prompt")
    assert served.soft_prompt is not None and served.soft_prompt.dtype == torch.bfloat16 and served.nbytes == 6 * 576 * 2
    assert bf16.adapters() == []  # a soft prompt leaves the model as it is
    with pytest.raises(ConfigurationError, match="prompt adapter, not lora"):
        pool.acquire("wrong", adapter_dirs["prompt0"], "lora")
    with pytest.raises(ConfigurationError, match="not a readable peft adapter"):
        pool.acquire("missing", adapter_dirs["prompt0"] / "nowhere", "prompt")


# --- BatchingGenerator ----------------------------------------------------------------------


def test_concurrent_submissions_share_batches_and_each_caller_gets_its_row(
    runtime: ChatRuntime, prompts: list[list[int]], loaded: list[str], soft_prompts: list[torch.Tensor]
) -> None:
    requests = [
        GenerationRequest(prompts[i % 4], adapter=[None, "a", "b"][i % 3], soft_prompt=soft_prompts[0] if i == 5 else None, max_new_tokens=TOKENS)
        for i in range(6)
    ]
    alone = [runtime.generate_batch([r])[0] for r in requests]
    results: list[list[int] | None] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def call(i: int) -> None:
        start.wait()
        results[i] = generator.submit(requests[i]).result(timeout=120)

    with BatchingGenerator(runtime, max_batch=4, window_ms=300) as generator:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == alone
    assert generator.stats() == {"batches": 2, "rows": 6}
    with pytest.raises(RuntimeError, match="closed"):
        generator.submit(requests[0])


def test_a_row_with_an_unknown_adapter_fails_alone(runtime: ChatRuntime, prompts: list[list[int]], loaded: list[str]) -> None:
    with BatchingGenerator(runtime, window_ms=300) as generator:
        good = generator.submit(GenerationRequest(prompts[3], adapter="a", max_new_tokens=2))
        bad = generator.submit(GenerationRequest(prompts[3], adapter="gone", max_new_tokens=2))
        assert len(good.result(timeout=60)) >= 1
        with pytest.raises(UnknownAdapterError):
            bad.result(timeout=60)
    assert generator.stats() == {"batches": 1, "rows": 1}
