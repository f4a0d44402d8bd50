"""personagraph.memory: records, indexes, graph and retrieval. Never calls an LLM."""

from .api import ForgetReceipt, Memory
from .embedding import Bm25Encoder, Embedder, MiniLMEmbedder
from .errors import (
    ConfigurationError,
    IngestFormatError,
    InvalidRecordError,
    InvalidScopeError,
    PersonagraphError,
    RecordNotFoundError,
)
from .models import (
    AdapterRecord,
    Entity,
    Episode,
    Event,
    Fact,
    Feedback,
    Profile,
    ProfileValue,
    Relation,
    StoreItem,
)
from .persona_store import PersonaStore
from .records import RecordStore
from .retrieval import RetrievalConfig
from .scope import Scope
from .search import RetrievedItem, SearchResult
from .store_namespaces import NamespaceLayout

__all__ = [
    "AdapterRecord", "Bm25Encoder", "ConfigurationError", "Embedder", "Entity", "Episode", "Event", "Fact",
    "Feedback", "ForgetReceipt", "IngestFormatError", "InvalidRecordError", "InvalidScopeError", "Memory",
    "MiniLMEmbedder", "NamespaceLayout", "PersonaStore", "PersonagraphError", "Profile", "ProfileValue", "RecordNotFoundError",
    "RecordStore", "Relation", "RetrievalConfig", "RetrievedItem", "Scope", "SearchResult", "StoreItem",
]
