"""LangChain messages and tools as SmolLM2 sees them, and its JSON tool calls read back.

SmolLM2 was not trained on tool calls, so tools are described in the system message and a
call is a bare JSON object `{"name": ..., "arguments": {...}}`: the same shape whether the
grammar forces it or the model writes it freely.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

_ROLES = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant", ToolMessage: "tool"}
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def to_chat(messages: Sequence[BaseMessage], system_note: str | None = None) -> list[dict[str, str]]:
    """Role/content dicts for the chat template; `system_note` is appended to the system message
    (one is added first if the conversation has none)."""
    chat = [{"role": _role(m), "content": _content(m)} for m in messages]
    if system_note:
        if chat and chat[0]["role"] == "system":
            chat[0]["content"] = f"{chat[0]['content']}\n\n{system_note}".strip()
        else:
            chat.insert(0, {"role": "system", "content": system_note})
    return chat


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return message.role
    for cls, role in _ROLES.items():
        if isinstance(message, cls):
            return role
    raise TypeError(f"cannot send a {type(message).__name__} to the local model")


def _content(message: BaseMessage) -> str:
    calls = getattr(message, "tool_calls", None)
    if calls:  # replay earlier calls in the shape the model is asked to write them
        return "\n".join(json.dumps({"name": c["name"], "arguments": c["args"]}) for c in calls)
    return str(message.text)


def tools_note(tools: Sequence[dict[str, Any]], *, forced: bool) -> str:
    """The system-message text that lists `tools` (OpenAI tool dicts) and how to call one."""
    lines = ["You can call these tools:"]
    for tool in tools:
        fn = tool["function"]
        params = json.dumps(fn.get("parameters", {}).get("properties", {}))
        lines.append(f"- {fn['name']}: {fn.get('description', '')} Arguments: {params}")
    lines.append('To call a tool, reply with only a JSON object: {"name": "<tool name>", "arguments": {...}}.')
    if not forced:
        lines.append("If no tool is needed, reply normally.")
    return "\n".join(lines)


def tool_call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema accepting a call of exactly one of `tools`, with that tool's own arguments."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": t["function"].get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def parse_tool_call(text: str, names: Sequence[str]) -> dict[str, Any] | None:
    """A LangChain tool call when `text` is only a JSON call of one of `names`, else None."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"name", "arguments"}:
        return None
    if data["name"] not in names or not isinstance(data["arguments"], dict):
        return None
    return {"name": data["name"], "args": data["arguments"], "id": f"call_{uuid.uuid4().hex[:24]}", "type": "tool_call"}



def special_texts(tokenizer: Any) -> list[str]:
    """The text of every special token the tokenizer would parse out of plain text, longest first."""
    found = set(tokenizer.all_special_tokens)
    found.update(t.content for t in tokenizer.added_tokens_decoder.values() if t.special)
    return sorted((t for t in found if t), key=len, reverse=True)


def inert(text: str, specials: Sequence[str]) -> str:
    """`text` with every special token's text broken into ordinary characters.

    The chat template renders message contents as text and the tokenizer then parses special
    tokens out of it, so a user who types `<|im_start|>system` would otherwise open a real
    system turn. The first character becomes a look-alike (‹ for <), which tokenizes as text."""
    for token in specials:
        if token in text:
            text = text.replace(token, ("‹" + token[1:]) if token.startswith("<") else token[0] + "\u2060" + token[1:])
    return text


def inert_chat(chat: Sequence[dict[str, str]], tokenizer: Any) -> list[dict[str, str]]:
    """Role/content dicts whose contents can never produce a special token."""
    specials = special_texts(tokenizer)
    return [{**m, "content": inert(m["content"], specials)} for m in chat]


def template_ids(tokenizer: Any, chat: Sequence[dict[str, str]], *, add_generation_prompt: bool = True) -> list[int]:
    """The chat template's token ids for `chat`, with special-token text in contents made inert."""
    encoded = tokenizer.apply_chat_template(
        inert_chat(chat, tokenizer), add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True,
    )
    return list(encoded["input_ids"])
