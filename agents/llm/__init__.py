"""personagraph.agents.llm: chat models for the agents, local (SmolLM2 on the CPU) or hosted."""

from .constrained import bound_schema, repair_prefix
from .errors import SchemaError, UnknownAdapterError
from .local import LocalChatModel
from .registry import load_chat_model, parse_spec
from .runtime import ChatRuntime, shared_runtime
from .weights import model_dir

__all__ = [
    "ChatRuntime", "LocalChatModel", "SchemaError", "UnknownAdapterError", "bound_schema",
    "load_chat_model", "model_dir", "parse_spec", "repair_prefix", "shared_runtime",
]
