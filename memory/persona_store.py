"""`PersonaStore`: personagraph's memory as a LangGraph `BaseStore`.

Drop it wherever LangGraph takes a store (`graph.compile(store=...)`, `langgraph.json`,
LangMem's memory tools). Every namespace is read as a user's scope (`NamespaceLayout`), so
each item lives, is searched, exported and forgotten with the user it belongs to, and a
search with a query runs personagraph's hybrid retrieval (dense + BM25 + fusion) over that
user's items and, below the user label, their facts, events and episodes
(`store_native.py`). Reads in a batch see the state before the batch's writes, and the last
write to a key wins, as in LangGraph's own stores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    get_text_at_path,
    validate_op_namespace,
)
from pydantic import ValidationError

from . import store_native
from .api import Memory
from .errors import InvalidRecordError, shown
from .models import StoreItem, item_id, now
from .scope import Scope
from .store_filters import check_filter, matches, namespace_matches
from .store_namespaces import NATIVE_COLLECTIONS, NamespaceLayout

_MAX_K = 1000
_MAX_TTL_MINUTES = 100 * 365 * 24 * 60  # a century: beyond it a datetime overflows soon enough
_log = logging.getLogger(__name__)


class PersonaStore(BaseStore):
    """A LangGraph store over one `Memory`; thread-safe, and `abatch` runs off the event loop.

    `index_fields` are the value paths search reads when a put does not say (LangGraph's
    path syntax; "$" is every text and number in the value). `allow_unscoped=False` refuses
    searches and listings whose namespace prefix does not name one user.
    """

    supports_ttl = True

    def __init__(
        self,
        memory: Memory,
        *,
        layout: NamespaceLayout | None = None,
        ttl: TTLConfig | None = None,
        index_fields: Sequence[str] = ("$",),
        allow_unscoped: bool = True,
    ) -> None:
        self.memory = memory
        self.layout = layout or NamespaceLayout()
        self.ttl_config = ttl
        self.index_fields = list(index_fields)
        self.allow_unscoped = allow_unscoped
        self._stop_sweeper = threading.Event()
        self._sweeper: threading.Thread | None = None
        interval = (ttl or {}).get("sweep_interval_minutes")
        if interval:
            self._sweeper = threading.Thread(target=self._sweep_every, args=(interval * 60,), daemon=True, name="persona-store-ttl")
            self._sweeper.start()

    # ------------------------------------------------------------------ BaseStore
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:
            _check_op(op)
        results: list[Result] = [None] * len(ops)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                results[i] = self._get(op)
            elif isinstance(op, SearchOp):
                results[i] = self._search(op)
            elif isinstance(op, ListNamespacesOp):
                results[i] = self._list_namespaces(op)
            else:
                puts.pop((op.namespace, op.key), None)
                puts[(op.namespace, op.key)] = op  # the last write to a key wins
        self._apply_puts(list(puts.values()))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """The same work in a worker thread: the stores and the embedder block."""
        return await asyncio.to_thread(self.batch, list(ops))

    def put(self, namespace: tuple[str, ...], key: str, value: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """BaseStore's `put`, after checks it makes too late: it quotes the namespace and turns the
        key into a string first, which fails untyped on a value nested deep enough."""
        _check_put_args(namespace, key)
        super().put(namespace, key, value, *args, **kwargs)

    async def aput(self, namespace: tuple[str, ...], key: str, value: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        _check_put_args(namespace, key)
        await super().aput(namespace, key, value, *args, **kwargs)

    # ------------------------------------------------------------------ reads
    def _get(self, op: GetOp) -> Item | None:
        scope = self.layout.scope_of(op.namespace)
        collection = self.layout.native(op.namespace)
        if collection:
            return store_native.get_item(self.memory, scope, collection, op.namespace, op.key)
        record = self.memory.records.get(scope, "item", item_id(op.namespace, op.key))
        if not isinstance(record, StoreItem) or record.expired() or tuple(record.namespace) != op.namespace:
            return None
        if op.refresh_ttl and record.ttl_minutes:
            record = self.memory.refresh_items(scope, [record.id]).get(record.id)  # None: deleted meanwhile
        return _as_item(record) if record else None

    def _search(self, op: SearchOp) -> list[SearchItem]:
        check_filter(op.filter)
        _check_paging(op.limit, op.offset)
        prefix = tuple(op.namespace_prefix)
        scopes = [self.layout.scope_of(prefix)] if self.layout.pins_scope(prefix) else self._all_scopes("search", prefix)
        query = op.query.strip() if isinstance(op.query, str) else ""
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidRecordError(f"query must be a string, got {type(op.query).__name__}")
        found: list[SearchItem] = []
        for scope in scopes:
            found.extend(self._search_scope(scope, prefix, op, query))
        if query:
            found.sort(key=lambda item: -(item.score or 0.0))
            found += [i for scope in scopes for i in self._unindexed(scope, prefix, op)]  # put without search text: last
        else:
            found.sort(key=lambda item: (item.updated_at, item.namespace, item.key), reverse=True)
        page = found[op.offset: op.offset + op.limit]
        if op.refresh_ttl:
            self._refresh_results(page)
        return page

    def _search_scope(self, scope: Scope, prefix: tuple[str, ...], op: SearchOp, query: str) -> list[SearchItem]:
        natives = self._natives_under(prefix)
        if not query:
            items = [_as_search_item(r) for r in self.memory.items(scope) if _under(r, prefix) and not r.expired() and matches(r.value, op.filter)]
            for collection, namespace in natives.items():
                items += [
                    SearchItem(i.namespace, i.key, i.value, i.created_at, i.updated_at)
                    for i in store_native.list_items(self.memory, scope, collection, namespace) if matches(i.value, op.filter)
                ]
            return items
        kinds = ["item", *(store_native.RECORD_KIND[c] for c in natives if c in store_native.RECORD_KIND)]
        wanted, k = op.offset + op.limit, min(_MAX_K, max(20, 3 * (op.offset + op.limit)))
        while True:
            hits = self.memory.search(scope, query, kinds=kinds, k=k).items  # type: ignore[arg-type]
            found = self._hydrate_hits(scope, prefix, hits, natives, op.filter)
            if len(found) >= wanted or len(hits) < k or k >= _MAX_K:
                return found
            k = min(_MAX_K, 4 * k)

    def _hydrate_hits(self, scope: Scope, prefix: tuple[str, ...], hits: list[Any], natives: dict[str, tuple[str, ...]], filter: Mapping[str, Any] | None) -> list[SearchItem]:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for hit in hits:
            by_kind[hit.kind].append(hit.id)
        records = {(kind, rid): rec for kind, ids in by_kind.items() for rid, rec in self.memory.records.get_many(scope, kind, ids).items()}  # type: ignore[arg-type]
        found = []
        for hit in hits:
            record = records.get((hit.kind, hit.id))
            if isinstance(record, StoreItem):
                if _under(record, prefix) and not record.expired() and matches(record.value, filter):
                    found.append(_as_search_item(record, hit.score))
            elif store_native.visible(record) and matches(record.model_dump(mode="json"), filter):  # type: ignore[union-attr]
                item = store_native.record_item(natives[store_native.COLLECTION_OF[hit.kind]], record)  # type: ignore[arg-type]
                found.append(SearchItem(item.namespace, item.key, item.value, item.created_at, item.updated_at, hit.score))
        return found

    def _unindexed(self, scope: Scope, prefix: tuple[str, ...], op: SearchOp) -> list[SearchItem]:
        return [
            _as_search_item(r) for r in self.memory.items(scope)
            if not r.text and _under(r, prefix) and not r.expired() and matches(r.value, op.filter)
        ]

    def _natives_under(self, prefix: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """Record collections below a prefix that names one user, with their namespaces."""
        if not self.layout.pins_scope(prefix):
            return {}
        base = prefix[: self.layout.scope_depth]
        spaces = {c: (*base, c) for c in NATIVE_COLLECTIONS}
        return {c: ns for c, ns in spaces.items() if ns[: len(prefix)] == prefix}

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        _check_paging(op.limit, op.offset, max_depth=op.max_depth)
        pinned = next((c.path for c in op.match_conditions or () if c.match_type == "prefix" and self.layout.pins_scope(tuple(c.path))
                       and "*" not in c.path[: self.layout.scope_depth]), None)
        scopes = [self.layout.scope_of(tuple(pinned))] if pinned else self._all_scopes("list_namespaces", ())
        spaces = {tuple(r.namespace) for s in scopes for r in self.memory.items(s) if not r.expired()}
        spaces |= self._native_spaces(scopes, tuple(pinned[: self.layout.scope_depth]) if pinned else None)
        spaces = {ns for ns in spaces if namespace_matches(ns, op.match_conditions)}
        if op.max_depth is not None:
            spaces = {ns[: op.max_depth] for ns in spaces}
        return sorted(spaces)[op.offset: op.offset + op.limit]

    def _native_spaces(self, scopes: list[Scope], base: tuple[str, ...] | None) -> set[tuple[str, ...]]:
        """Record collections that hold something; their namespace is known only when the
        layout puts the user first or the listing named the user."""
        out: set[tuple[str, ...]] = set()
        for scope in scopes:
            if base is None and (self.layout.user_at or scope.tenant != self.layout.tenant):
                continue
            prefix = base or (scope.user_id,)
            held = {
                "events": self.memory.records.count(scope, "event") > 0,
                "episodes": self.memory.records.count(scope, "episode") > 0,
                "facts": bool(self.memory.facts(scope)),  # active ones: the only facts the view shows
            }
            held["profile"] = held["facts"]
            out |= {(*prefix, collection) for collection, present in held.items() if present}
        return out

    def _all_scopes(self, what: str, prefix: tuple[str, ...]) -> list[Scope]:
        if not self.allow_unscoped:
            raise InvalidNamespaceError(
                f"{what} over {prefix} spans users; this store only serves prefixes that name one user "
                f"(label {self.layout.user_at})"
            )
        return self.memory.records.scopes()

    # ------------------------------------------------------------------ writes
    def _apply_puts(self, puts: list[PutOp]) -> None:
        """Validate every write of the batch first, then write: bad input writes nothing.
        (Writes to different users are separate transactions, as each user's records are.)"""
        native: list[tuple[Scope, str, PutOp]] = []
        generic: dict[Scope, list[PutOp]] = defaultdict(list)
        for op in puts:
            scope = self.layout.scope_of(op.namespace)
            collection = self.layout.native(op.namespace)
            if collection is None:
                generic[scope].append(op)
                continue
            if op.value is not None:
                if op.ttl not in (None, NOT_PROVIDED):
                    raise InvalidRecordError(f"{collection} are records with their own lifetime: no ttl")
                store_native.check_put(self.memory, scope, collection, op.key, _value(op.value))
            else:
                store_native.check_delete(collection)
            native.append((scope, collection, op))
        writes = []
        for scope, ops in generic.items():
            ids = [item_id(op.namespace, op.key) for op in ops]
            existing = self.memory.records.get_many(scope, "item", ids)
            items = [self._item(op, existing.get(i)) for op, i in zip(ops, ids, strict=True) if op.value is not None]  # type: ignore[arg-type]
            doomed = [i for op, i in zip(ops, ids, strict=True) if op.value is None and i in existing]
            writes.append((scope, items, doomed))
        for scope, collection, op in native:
            if op.value is None:
                store_native.delete_item(self.memory, scope, collection, op.key)  # type: ignore[arg-type]
            else:
                store_native.put_item(self.memory, scope, collection, op.key, _value(op.value))  # type: ignore[arg-type]
        for scope, items, doomed in writes:
            if items or doomed:
                self.memory.put_items(scope, items, doomed)

    def _item(self, op: PutOp, existing: StoreItem | None) -> StoreItem:
        value = _value(op.value)
        ttl = op.ttl if op.ttl is not NOT_PROVIDED else (self.ttl_config or {}).get("default_ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= _MAX_TTL_MINUTES):
            raise InvalidRecordError(f"ttl is a number of minutes above 0 and at most {_MAX_TTL_MINUTES}, got {shown(ttl)}")
        stamp = now()
        created = existing.created_at if existing is not None and not existing.expired(stamp) else stamp
        try:
            return StoreItem(
                namespace=list(op.namespace), key=op.key, value=value, text=self._text(value, op.index)[:20_000],
                created_at=created, updated_at=stamp, ttl_minutes=ttl,
                expires_at=stamp + timedelta(minutes=ttl) if ttl else None,
            )
        except ValidationError as exc:
            raise InvalidRecordError(f"store item {op.namespace}/{shown(op.key)}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc

    def _text(self, value: dict[str, Any], index: Any) -> str:
        if index is False:
            return ""
        fields = self.index_fields if index is None else index
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise InvalidRecordError("index is False, None or a list of field paths")
        parts: list[str] = []
        for field in fields:
            parts.extend(_leaves(value) if field == "$" else get_text_at_path(value, field))
        return "\n".join(p for p in parts if p.strip())

    # ------------------------------------------------------------------ TTL
    def _refresh_results(self, page: list[SearchItem]) -> None:
        by_scope: dict[Scope, list[str]] = defaultdict(list)
        for item in page:
            if self.layout.native(item.namespace) is None:
                by_scope[self.layout.scope_of(item.namespace)].append(item_id(item.namespace, item.key))
        for scope, ids in by_scope.items():
            self.memory.refresh_items(scope, ids)

    def sweep_ttl(self) -> int:
        """Delete every expired item; returns how many went."""
        return sum(self.memory.sweep_items(scope) for scope in self.memory.records.scopes())

    def _sweep_every(self, seconds: float) -> None:
        while not self._stop_sweeper.wait(seconds):
            try:
                self.sweep_ttl()
            except Exception as exc:  # noqa: BLE001  # a failed sweep is retried next time; the thread must not die of it
                _log.error("TTL sweep failed: %s", type(exc).__name__)

    def close(self) -> None:
        """Stop the TTL sweeper (the memory stays open: its owner closes it)."""
        self._stop_sweeper.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)


def _check_op(op: Any) -> None:
    if not isinstance(op, (GetOp, SearchOp, PutOp, ListNamespacesOp)):
        raise InvalidRecordError(f"unknown store operation {type(op).__name__}")
    validate_op_namespace(op)
    if isinstance(op, PutOp):
        if not op.namespace:
            raise InvalidNamespaceError("Namespace cannot be empty.")
        if op.namespace[0] == "langgraph":
            raise InvalidNamespaceError(f'Root label for namespace cannot be "langgraph". Got: {op.namespace}')
    if isinstance(op, (GetOp, PutOp)) and (not isinstance(op.key, str) or not op.key):
        raise InvalidRecordError(f"keys are non-empty strings, got {shown(op.key)}")


def _check_put_args(namespace: Any, key: Any) -> None:
    if not isinstance(namespace, tuple | list) or not all(isinstance(label, str) for label in namespace):
        raise InvalidNamespaceError(f"a namespace is a tuple of string labels, got {shown(namespace)}")
    if isinstance(key, bool) or not isinstance(key, str | int) or key == "":  # BaseStore makes an int a string
        raise InvalidRecordError(f"keys are non-empty strings, got {shown(key)}")


def _value(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRecordError(f"store values are JSON objects (dicts), got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(f"store values must be JSON-serializable: {exc}") from exc
    except RecursionError:
        raise InvalidRecordError("store values may not be nested this deep") from None


def _leaves(value: Any, path: str = "") -> list[str]:
    """Every text and number in a value, each after the key it sits under."""
    if isinstance(value, Mapping):
        return [text for k, v in value.items() for text in _leaves(v, str(k))]
    if isinstance(value, list):
        return [text for v in value for text in _leaves(v, path)]
    if isinstance(value, bool) or value is None:
        return []
    return [f"{path}: {value}" if path else str(value)]


def _under(record: StoreItem, prefix: tuple[str, ...]) -> bool:
    return tuple(record.namespace[: len(prefix)]) == prefix


def _as_item(record: StoreItem) -> Item:
    return Item(value=record.value, key=record.key, namespace=tuple(record.namespace), created_at=record.created_at, updated_at=record.updated_at)


def _as_search_item(record: StoreItem, score: float | None = None) -> SearchItem:
    return SearchItem(tuple(record.namespace), record.key, record.value, record.created_at, record.updated_at, score)


def _check_paging(limit: Any, offset: Any, **optional: Any) -> None:
    """limit and offset (and max_depth, where given) are non-negative integers."""
    for name, value in (("limit", limit), ("offset", offset), *((k, v) for k, v in optional.items() if v is not None)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRecordError(f"{name} must be a non-negative integer, got {shown(value)}")
