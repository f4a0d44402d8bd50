"""personagraph: long-term, per-user memory for LLM agents.

The public API is what this module exports; everything else is private and may change.
"""

import os

# Before torch loads: OpenMP threads that spin while waiting made 2-thread CPU training 5-10x
# slower whenever another process shared the cores (measured here); passive waiting does not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    NamespaceLayout,
    PersonagraphError,
    PersonaStore,
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
    "InvalidRecordError", "InvalidScopeError", "Memory", "NamespaceLayout", "PersonaStore", "PersonagraphError", "Profile",
    "RecordNotFoundError", "Relation", "RetrievalConfig", "RetrievedItem", "Scope", "SearchResult",
    "Settings", "open_memory",
]
