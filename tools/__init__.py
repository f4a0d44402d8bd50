"""personagraph.tools: LangChain tools over memory for any agent.

`memory_tools(memory, feedback=None)` gives search_memory, remember, forget, get_profile,
query_graph, explain (and record_feedback with a recorder). Each call acts for the user the
run names (`scope_from_run`: runtime context or config), never one the model names.
"""

from .feedback import FeedbackRecorder, ReplyProvenance, record_feedback_tool
from .memory_tools import memory_tools
from .run_scope import ScopeConflictError, ScopeNotConfiguredError, scope_from_run

__all__ = [
    "FeedbackRecorder", "ReplyProvenance", "ScopeConflictError", "ScopeNotConfiguredError",
    "memory_tools", "record_feedback_tool", "scope_from_run",
]
