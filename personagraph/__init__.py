"""personagraph: long-term, per-user memory for LLM agents.

The public API is what this module exports; everything else is private and may change.
"""

from personagraph.memory import (
    ConfigurationError,
    Entity,
    Episode,
    Event,
    Fact,
    ForgetReceipt,
    IngestFormatError,
    InvalidRecordError,
    InvalidScopeError,
    Memory,
    PersonagraphError,
    Profile,
    RecordNotFoundError,
    Relation,
    RetrievalConfig,
    RetrievedItem,
    Scope,
    SearchResult,
)

from .factory import open_memory
from .settings import Settings

__all__ = [
    "ConfigurationError", "Entity", "Episode", "Event", "Fact", "ForgetReceipt", "IngestFormatError",
    "InvalidRecordError", "InvalidScopeError", "Memory", "PersonagraphError", "Profile",
    "RecordNotFoundError", "Relation", "RetrievalConfig", "RetrievedItem", "Scope", "SearchResult",
    "Settings", "open_memory",
]
