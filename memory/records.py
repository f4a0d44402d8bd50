"""The durable record store: the truth of every user's memory, on a LangGraph BaseStore.

Namespaces are `("pg", tenant, user_id, kind)`, so a user's records are one namespace
prefix and a whole-user delete is a prefix listing. One logical write is one `batch` call
inside one database transaction, so it lands whole or not at all.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from .errors import InvalidRecordError
from .models import RECORD_KINDS, RECORD_TYPES, Record, RecordKind, is_record_id
from .scope import Scope

ROOT = "pg"
JOURNAL = ("pg_journal",)
_PAGE = 1000
_WRITE_CHUNK = 5000  # PostgreSQL allows 65,535 parameters per statement; a put uses 4


class OuterTransactionSqliteStore(SqliteStore):
    """SqliteStore whose batches run inside the caller's transaction.

    The stock store opens and commits a transaction per batch, and commits even when a
    statement fails; RecordStore instead wraps each logical write (possibly several batches)
    in one transaction that rolls back on any error.
    """

    @contextmanager
    def _cursor(self, *, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        if not self.is_setup:
            self.setup()
        with self.lock:
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()


@contextmanager
def _sqlite_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def namespace(scope: Scope, kind: RecordKind) -> tuple[str, ...]:
    return (ROOT, scope.tenant, scope.user_id, kind)


def _to_record(kind: str, item: Item) -> Record:
    return RECORD_TYPES[kind].model_validate(item.value)


class RecordStore:
    """Typed, scoped access to records on any BaseStore; nothing here reads across scopes."""

    def __init__(
        self,
        store: BaseStore,
        transaction: Callable[[], AbstractContextManager[Any]] | None = None,
        close: Callable[[], None] | None = None,
        compact: Callable[[], object] | None = None,
    ) -> None:
        self.store = store
        self._transaction = transaction or nullcontext
        self._close = close
        self._compact = compact
        self._lock = threading.RLock()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def in_memory(cls) -> RecordStore:
        return cls(InMemoryStore())

    @classmethod
    def sqlite(cls, path: str | Path) -> RecordStore:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")  # forgotten text is overwritten, not left in free pages
        store = OuterTransactionSqliteStore(conn)
        store.setup()
        return cls(
            store, transaction=lambda: _sqlite_transaction(conn), close=conn.close,
            compact=lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"),
        )

    @classmethod
    def postgres(cls, url: str) -> RecordStore:
        import psycopg
        from langgraph.store.postgres import PostgresStore
        from psycopg.rows import dict_row

        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        store = PostgresStore(conn)
        store.setup()
        return cls(store, transaction=conn.transaction, close=conn.close)

    def close(self) -> None:
        if self._close:
            self._close()

    def compact(self) -> None:
        """Push deletions out of side files (SQLite's WAL still holds deleted text until then)."""
        if self._compact:
            with self._lock:
                self._compact()

    # -- writes -------------------------------------------------------------------------
    def write(
        self,
        scope: Scope,
        put: Iterable[Record] = (),
        delete: Iterable[tuple[RecordKind, str]] = (),
        journal: dict[str, Any] | None = None,
        drop_journal: Iterable[str] = (),
    ) -> None:
        """Apply puts and deletes of one logical operation atomically (one transaction)."""
        ops: list[PutOp] = []
        for record in put:
            if not isinstance(record, Record):
                raise InvalidRecordError(f"not a record: {type(record).__name__}")
            ops.append(PutOp(namespace(scope, record.kind), record.id, record.model_dump(mode="json"), index=False))
        ops.extend(PutOp(namespace(scope, kind), rid, None) for kind, rid in delete)
        ops.extend(PutOp(JOURNAL, entry_id, None) for entry_id in drop_journal)
        if journal is not None:
            try:
                json.dumps(journal)
            except (TypeError, ValueError) as exc:
                raise InvalidRecordError(f"journal entry is not JSON: {exc}") from exc
            ops.append(PutOp(JOURNAL, journal["id"], journal, index=False))
        if ops:
            self._batch(ops)

    def clear_journal(self, entry_id: str) -> None:
        self._batch([PutOp(JOURNAL, entry_id, None)])

    def journal(self) -> list[dict[str, Any]]:
        return [item.value for item in self._search(JOURNAL)]

    # -- reads --------------------------------------------------------------------------
    def get(self, scope: Scope, kind: RecordKind, record_id: str) -> Record | None:
        """The record, or None; an id no record could have (not a string, bad characters) finds none."""
        if not is_record_id(record_id):
            return None
        (item,) = self._batch([GetOp(namespace(scope, kind), record_id)])
        return _to_record(kind, item) if item else None

    def get_many(self, scope: Scope, kind: RecordKind, ids: Sequence[str]) -> dict[str, Record]:
        items = self._batch([GetOp(namespace(scope, kind), rid) for rid in ids if is_record_id(rid)])
        return {item.key: _to_record(kind, item) for item in items if item is not None}

    def list(self, scope: Scope, kind: RecordKind, filter: dict[str, Any] | None = None) -> list[Record]:
        return [_to_record(kind, item) for item in self._search(namespace(scope, kind), filter)]

    def count(self, scope: Scope, kind: RecordKind | None = None) -> int:
        kinds = [kind] if kind else RECORD_KINDS
        return sum(len(self._search(namespace(scope, k))) for k in kinds)

    def scopes(self) -> list[Scope]:
        """Every scope that has records (for reindex, reconcile and stats)."""
        (namespaces,) = self._batch([ListNamespacesOp(match_conditions=None, max_depth=3, limit=1_000_000)])
        found = [Scope(tenant=ns[1], user_id=ns[2]) for ns in namespaces if len(ns) == 3 and ns[0] == ROOT]
        # InMemoryStore keeps a namespace once it was read or emptied: only scopes with a record count.
        hits = self._batch([SearchOp((ROOT, s.tenant, s.user_id), limit=1) for s in found]) if found else []
        return [s for s, hit in zip(found, hits, strict=True) if hit]

    # -- plumbing -----------------------------------------------------------------------
    def _search(self, prefix: tuple[str, ...], filter: dict[str, Any] | None = None) -> list[Item]:
        found: list[Item] = []
        while True:
            (page,) = self._batch([SearchOp(prefix, filter=filter, limit=_PAGE, offset=len(found))])
            found.extend(page)
            if len(page) < _PAGE:
                return found

    def _batch(self, ops: list[Any]) -> list[Any]:
        """Run ops in one transaction, in chunks small enough for any backend's limits."""
        with self._lock, self._transaction():
            results: list[Any] = []
            for start in range(0, len(ops), _WRITE_CHUNK):
                results.extend(self.store.batch(ops[start:start + _WRITE_CHUNK]))
            return results
