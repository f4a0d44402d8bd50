"""A scripted chat model for deterministic tests of graph logic (never what a feature runs on).

Each call takes the next item of the script: a dict becomes a call of the bound tool with
those arguments (how langchain's default `with_structured_output` asks for structure), a str
becomes plain content (no tool call: the structured parse finds nothing), an exception is
raised. Every prompt is recorded so tests can check what the model was shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    script: list[Any] = Field(default_factory=list)
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self.bind(tool_names=names, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        if not self.script:
            raise AssertionError("the scripted model was called more often than scripted")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, dict):
            name = kwargs.get("tool_names", ["answer"])[0]
            message = AIMessage(content="", tool_calls=[{"name": name, "args": item, "id": f"call_{len(self.prompts)}"}])
        else:
            message = AIMessage(content=str(item))
        return ChatResult(generations=[ChatGeneration(message=message)])

    @property
    def calls(self) -> int:
        return len(self.prompts)
