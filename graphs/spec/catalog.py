"""The built-in factories, registered on import: respond steps, reflection steps, tool-using chats."""

from . import agent_factories, reflection_factories, respond_factories  # noqa: F401  (they register)
from .registry import NODE_FACTORIES, ROUTER_FACTORIES

__all__ = ["NODE_FACTORIES", "ROUTER_FACTORIES"]
