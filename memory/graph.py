"""The knowledge-graph view: a networkx MultiDiGraph per scope, derived from records.

Nodes are entity ids, edges are relations keyed by relation id. A superseded relation keeps
its edge with a closed validity interval, so the as-of view answers "what was true then".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime

import networkx as nx

from .models import Entity, Relation
from .scope import Scope
from .scoped_cache import ScopedCache

_WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


class ScopeGraph:
    """One user's graph plus a name index for spotting entities in a query."""

    def __init__(self, entities: list[Entity], relations: list[Relation]) -> None:
        self.graph = nx.MultiDiGraph()
        self._names: dict[tuple[str, ...], str] = {}
        self._edges: dict[str, tuple[str, str]] = {}  # relation id -> (subject, object)
        for entity in entities:
            self.add_entity(entity)
        for relation in relations:
            self.add_relation(relation)

    def add_entity(self, entity: Entity) -> None:
        if entity.id in self.graph:  # a re-add may drop aliases: forget the old names first
            self._names = {k: v for k, v in self._names.items() if v != entity.id}
        self.graph.add_node(entity.id, name=entity.name, entity_type=entity.entity_type, sources=entity.sources)
        for name in (entity.name, *entity.aliases):
            if toks := _tokens(name):
                self._names[toks] = entity.id

    def remove_entity(self, entity_id: str) -> None:
        if entity_id in self.graph:
            for _, _, key in [*self.graph.in_edges(entity_id, keys=True), *self.graph.out_edges(entity_id, keys=True)]:
                self._edges.pop(key, None)
            self.graph.remove_node(entity_id)
        self._names = {k: v for k, v in self._names.items() if v != entity_id}

    def add_relation(self, relation: Relation) -> None:
        self.remove_relation(relation.id)
        self.graph.add_edge(relation.subject_id, relation.object_id, key=relation.id, relation=relation)
        self._edges[relation.id] = (relation.subject_id, relation.object_id)

    def remove_relation(self, relation_id: str) -> None:
        ends = self._edges.pop(relation_id, None)
        if ends and self.graph.has_edge(*ends, key=relation_id):
            self.graph.remove_edge(*ends, key=relation_id)

    def as_of(self, when: datetime | None) -> nx.MultiDiGraph:
        """The subgraph of relations valid at `when` (None: currently valid)."""
        view = nx.MultiDiGraph()
        view.add_nodes_from(self.graph.nodes(data=True))
        for u, v, key, data in self.graph.edges(keys=True, data=True):
            if data["relation"].valid_at(when):
                view.add_edge(u, v, key=key, **data)
        return view

    def neighbours(self, entity_id: str, when: datetime | None = None, hops: int = 1) -> list[Relation]:
        """Relations within `hops` of an entity, in either direction, valid at `when`."""
        view = self.as_of(when).to_undirected(as_view=True)
        if entity_id not in view or hops < 1:
            return []
        reach = nx.single_source_shortest_path_length(view, entity_id, cutoff=hops - 1)
        seen: dict[str, Relation] = {}
        for node in reach:
            for _, _, data in view.edges(node, data=True):
                seen[data["relation"].id] = data["relation"]
        return list(seen.values())

    def paths(self, source_id: str, target_id: str, when: datetime | None = None, max_hops: int = 4) -> list[list[Relation]]:
        """Every simple path (as relations) between two entities, at most `max_hops` long."""
        view = self.as_of(when)
        undirected = view.to_undirected(as_view=True)
        if source_id not in undirected or target_id not in undirected:
            return []
        out: list[list[Relation]] = []
        for path in nx.all_simple_edge_paths(undirected, source_id, target_id, cutoff=max_hops):
            out.append([undirected.edges[u, v, k]["relation"] for u, v, k in path])
        return out

    def describe(self, relation: Relation, seen_from: str) -> str:
        """The relation as words seen from one end: its predicate and the far end's name."""
        far = relation.object_id if relation.subject_id == seen_from else relation.subject_id
        name = self.graph.nodes[far].get("name", "") if far in self.graph else ""
        return f"{relation.predicate.replace('_', ' ')} {name}"

    def entities_in(self, text: str) -> list[str]:
        """Entity ids whose name or alias appears in `text` as a whole-word sequence."""
        toks = _tokens(text)
        found: list[str] = []
        for size in range(min(6, len(toks)), 0, -1):
            for start in range(len(toks) - size + 1):
                entity_id = self._names.get(toks[start:start + size])
                if entity_id and entity_id not in found:
                    found.append(entity_id)
        return found


class GraphCache(ScopedCache[ScopeGraph]):
    """Per-scope graphs built lazily from entity and relation records."""

    def __init__(self, loader: Callable[[Scope], tuple[list[Entity], list[Relation]]], lock: threading.RLock | None = None) -> None:
        super().__init__(lambda scope: ScopeGraph(*loader(scope)), lock)
