"""Context steering on the real SmolLM2 (loaded once for the module): λ = 0 is plain greedy
decoding, λ > 0 pushes the next token towards what the personal context supports, the neutral
KV cache tracks the generated tokens, adapters apply to both passes, and misuse fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from langchain_core.messages import BaseMessage, HumanMessage
from personagraph.agents.contrastive import ContrastiveLogitsProcessor, ContrastSpec
from personagraph.agents.llm import LocalChatModel, weights
from personagraph.agents.llm.runtime import ChatRuntime
from personagraph.agents.prompting import build_personal_prompt
from personagraph.memory.errors import ConfigurationError
from personagraph.memory.models import Profile, ProfileValue
from pydantic import BaseModel, ValidationError

PROMPT = build_personal_prompt(
    "What is my name?", profile=Profile(name=ProfileValue(value="Zorblax", fact_ids=["fct_name"])), items=[],
)


@pytest.fixture(scope="module")
def chat() -> LocalChatModel:
    model = LocalChatModel(max_new_tokens=12)
    model.runtime  # noqa: B018 - load once, up front
    return model


def ids(chat: LocalChatModel, messages: list[BaseMessage], reply_start: str = "") -> list[int]:
    """The chat-template prompt, optionally with the start of the assistant's reply already written."""
    runtime = chat.runtime
    extra = runtime.tokenizer.encode(reply_start, add_special_tokens=False) if reply_start else []
    return chat._prompt(runtime, messages, None) + extra


def next_logits(runtime: ChatRuntime, prompt: list[int], **kwargs: object) -> torch.Tensor:
    with torch.no_grad():
        return runtime.model(input_ids=torch.tensor([prompt]), **kwargs).logits[:, -1].float()


def steer(chat: LocalChatModel, strength: float, reply_start: str = "", adapter: str | None = None) -> torch.Tensor:
    """Log-probabilities of the first steered step after the personal and the neutral prompt."""
    runtime = chat.runtime
    personal, neutral = ids(chat, PROMPT.messages, reply_start), ids(chat, PROMPT.neutral_messages, reply_start)
    extra = {"adapter_names": [adapter]} if adapter else {}
    processor = ContrastiveLogitsProcessor(runtime.model, neutral, strength, adapter=adapter)
    out = processor(torch.tensor([personal]), next_logits(runtime, personal, **extra))
    return torch.log_softmax(out, dim=-1)[0]


def test_strength_zero_reproduces_plain_greedy_decoding_token_for_token(chat: LocalChatModel) -> None:
    runtime = chat.runtime
    personal, neutral = ids(chat, PROMPT.messages), ids(chat, PROMPT.neutral_messages)
    plain = runtime.generate(personal, max_new_tokens=12)
    steered = runtime.generate(personal, max_new_tokens=12, logits_processor=[ContrastiveLogitsProcessor(runtime.model, neutral, 0.0)])
    assert steered == plain and len(plain) >= 3

    reply = chat.invoke(PROMPT.messages, contrast=ContrastSpec(neutral_messages=PROMPT.neutral_messages, strength=0))
    assert reply.content == runtime.tokenizer.decode(plain, skip_special_tokens=True)
    assert "Zorblax" in reply.content
    assert reply.response_metadata["contrast_strength"] == 0.0


def test_a_positive_strength_raises_the_context_specific_token(chat: LocalChatModel) -> None:
    zorblax = chat.runtime.tokenizer.encode(" Zorblax", add_special_tokens=False)[0]
    plain = steer(chat, 0.0, "Your name is")[zorblax]
    for strength in (1.0, 3.0):
        assert steer(chat, strength, "Your name is")[zorblax] > plain + 0.3
    assert steer(chat, -0.5, "Your name is")[zorblax] < plain  # a negative strength damps the context


def test_strength_minus_one_is_the_neutral_distribution(chat: LocalChatModel) -> None:
    runtime = chat.runtime
    neutral = torch.log_softmax(next_logits(runtime, ids(chat, PROMPT.neutral_messages)), dim=-1)[0]
    assert torch.allclose(steer(chat, -1.0), neutral, atol=1e-3)


def test_the_neutral_cache_follows_the_generated_tokens(chat: LocalChatModel) -> None:
    """With λ = -1 each step's output is the neutral pass's own distribution: compare it, step by
    step, with a fresh forward over the neutral prompt plus the tokens generated so far. In
    float32 (a private copy): in bfloat16 cached and uncached passes differ by up to ~0.5 nats."""
    runtime = ChatRuntime.load(weights.model_dir(), "float32")
    personal, neutral = ids(chat, PROMPT.messages), ids(chat, PROMPT.neutral_messages)
    processor = ContrastiveLogitsProcessor(runtime.model, neutral, -1.0)
    generated: list[int] = []
    for _ in range(5):
        sequence = personal + generated
        scores = next_logits(runtime, sequence)
        out = processor(torch.tensor([sequence]), scores)
        fresh = next_logits(runtime, neutral + generated)
        assert torch.allclose(torch.log_softmax(out, -1), torch.log_softmax(fresh, -1), atol=1e-3)
        generated.append(int(scores.argmax()))  # follow the personal greedy path
    with pytest.raises(RuntimeError, match="one generation"):
        processor(torch.tensor([personal]), next_logits(runtime, personal))


def test_a_batch_is_refused(chat: LocalChatModel) -> None:
    runtime = chat.runtime
    prompt = ids(chat, [HumanMessage("hi")])
    processor = ContrastiveLogitsProcessor(runtime.model, prompt, 1.0)
    with pytest.raises(ValueError, match="one sequence at a time"):
        processor(torch.tensor([prompt, prompt]), torch.zeros(2, runtime.model.config.vocab_size))


def test_stream_with_contrast_matches_invoke_and_reports_the_strength(chat: LocalChatModel) -> None:
    spec = ContrastSpec(neutral_messages=PROMPT.neutral_messages, strength=1.0)
    reply = chat.invoke(PROMPT.messages, contrast=spec)
    chunks = list(chat.bind(contrast=spec).stream(PROMPT.messages))
    assert "".join(c.content for c in chunks) == reply.content and "Zorblax" in reply.content
    assert chunks[-1].response_metadata["contrast_strength"] == 1.0
    assert chat.invoke("hi", max_new_tokens=2).response_metadata["contrast_strength"] is None


class Name(BaseModel):
    name: str


def test_contrast_refuses_structured_output_tools_and_other_types(chat: LocalChatModel) -> None:
    spec = ContrastSpec(neutral_messages=PROMPT.neutral_messages, strength=1.0)
    with pytest.raises(ConfigurationError, match="free-text replies only"):
        chat.with_structured_output(Name).invoke(PROMPT.messages, contrast=spec)

    def lookup(query: str) -> str:
        """Look something up."""
        return query

    with pytest.raises(ConfigurationError, match="free-text replies only"):
        chat.bind_tools([lookup]).invoke(PROMPT.messages, contrast=spec)
    with pytest.raises(TypeError, match="ContrastSpec"):
        chat.invoke(PROMPT.messages, contrast={"strength": 1.0})
    with pytest.raises(ValidationError):
        ContrastSpec(neutral_messages=PROMPT.neutral_messages, strength=float("nan"))
    with pytest.raises(ValueError, match="empty"):
        ContrastiveLogitsProcessor(chat.runtime.model, [], 1.0)


@pytest.fixture(scope="module")
def lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA on the attention projections, saved from a narrow copy of SmolLM2's
    architecture (vocabulary and MLP shrunk: the adapter's tensors only touch attention)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(weights.model_dir(), vocab_size=8, intermediate_size=8)
    model = get_peft_model(AutoModelForCausalLM.from_config(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # initialised to zero, which would make the adapter a no-op
                param.normal_()
    path = tmp_path_factory.mktemp("contrast-lora")
    model.save_pretrained(path, save_embedding_layers=False)
    return path


def test_the_neutral_pass_runs_the_same_adapter(chat: LocalChatModel, lora: Path) -> None:
    """Steering the personal prompt against itself changes nothing only if both passes use the
    same weights: with the adapter named for both it is a no-op, with the base model it is not."""
    runtime = chat.runtime
    runtime.load_adapter("contrast-lora", lora)
    try:
        prompt = ids(chat, PROMPT.messages)
        scores = next_logits(runtime, prompt, adapter_names=["contrast-lora"])
        same = ContrastiveLogitsProcessor(runtime.model, prompt, 2.0, adapter="contrast-lora")(torch.tensor([prompt]), scores)
        base = ContrastiveLogitsProcessor(runtime.model, prompt, 2.0)(torch.tensor([prompt]), scores)
        plain = torch.log_softmax(scores, -1)
        assert (torch.log_softmax(same, -1) - plain).abs().max() < 1e-3
        assert (torch.log_softmax(base, -1) - plain).abs().max() > 1.0
        spec = ContrastSpec(neutral_messages=PROMPT.messages, strength=2.0)
        tuned = chat.invoke(PROMPT.messages, adapter="contrast-lora", max_new_tokens=6)
        assert chat.invoke(PROMPT.messages, adapter="contrast-lora", max_new_tokens=6, contrast=spec).content == tuned.content
    finally:
        runtime.unload_adapter("contrast-lora")
