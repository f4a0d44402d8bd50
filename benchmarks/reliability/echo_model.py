"""A chat model that answers with everything it was shown: the reply is the prompt.

Not a model anyone would deploy. It makes leaks visible: whatever reached the model (another
user's memory, a secret, an injected instruction outside the quoted block) is in the answer,
so the checks read the answer instead of trusting the prompt builder."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class EchoChatModel(BaseChatModel):
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        # The system message (instructions and quoted memories) and the request; every prompt is
        # also kept whole in `prompts`. Echoing the history too would grow each answer without end.
        shown = "\n".join(f"{m.type}: {m.text}" for m in [*messages[:1], *messages[1:][-1:]])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=shown))])
