"""Build a Memory from Settings: the one place that picks backends."""

from __future__ import annotations

from personagraph.memory import Memory, MiniLMEmbedder, RecordStore
from personagraph.memory.embedding import Embedder
from personagraph.memory.errors import StoreInUseError
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

    return EdgeIndex(settings.index_path, owner_of=settings.data_dir)  # one process per data dir


def open_memory(settings: Settings | None = None, embedder: Embedder | None = None) -> Memory:
    """Open (creating if needed) the memory the settings describe; repairs unfinished writes.

    The index opens first: the embedded one is what refuses a second process, and refusing
    before the records are opened leaves the first process's files untouched."""
    settings = settings or Settings()
    embedder = embedder or MiniLMEmbedder(settings.embedding_model_path)
    try:
        index = open_index(settings)
    except StoreInUseError as exc:
        raise StoreInUseError(in_use_message(settings)) from exc
    try:
        records = open_records(settings)
    except BaseException:
        index.close()
        raise
    try:
        return Memory(records, index, embedder, redactor=settings.redactor())
    except BaseException:
        index.close()
        records.close()
        raise


def in_use_message(settings: Settings) -> str:
    """What to tell a second process that opens an embedded data dir already in use."""
    return (
        f"the data dir {settings.data_dir} is open in another process: the embedded stack "
        "(SQLite + Qdrant Edge) takes one process per data dir. Stop the other process, give "
        "this one its own PERSONAGRAPH_DATA_DIR, or share memory between processes through "
        "servers: PERSONAGRAPH_QDRANT_URL (Qdrant) and PERSONAGRAPH_POSTGRES_URL (PostgreSQL)"
    )
