"""Build a Memory from Settings: the one place that picks backends."""

from __future__ import annotations

from personagraph.memory import Memory, MiniLMEmbedder, RecordStore
from personagraph.memory.embedding import Embedder
from personagraph.memory.index.base import VectorIndex

from .settings import Settings


def open_records(settings: Settings) -> RecordStore:
    if settings.postgres_url:
        return RecordStore.postgres(settings.postgres_url.get_secret_value())
    return RecordStore.sqlite(settings.records_path)


def open_index(settings: Settings) -> VectorIndex:
    if settings.qdrant_url:
        from personagraph.memory.index.server import QdrantServerIndex

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantServerIndex.connect(settings.qdrant_url, key, settings.qdrant_collection)
    from personagraph.memory.index.edge import EdgeIndex

    return EdgeIndex(settings.index_path)


def open_memory(settings: Settings | None = None, embedder: Embedder | None = None) -> Memory:
    """Open (creating if needed) the memory the settings describe; repairs unfinished writes."""
    settings = settings or Settings()
    embedder = embedder or MiniLMEmbedder(settings.embedding_model_path)
    records = open_records(settings)
    try:
        index = open_index(settings)
    except BaseException:
        records.close()
        raise
    try:
        return Memory(records, index, embedder)
    except BaseException:
        index.close()
        records.close()
        raise
