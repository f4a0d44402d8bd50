"""The inspector's knowledge graph as inline SVG, laid out here so the page needs no script.

Entities are circles coloured by type; relations are arrows labelled with their predicate.
A closed relation (its fact superseded or retracted) keeps its arrow, dashed and grey, with its
validity interval in the hover title: the graph shows what changed, not only what holds now.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from html import escape

import networkx as nx

from personagraph.memory import Entity, Fact, Relation

WIDTH, HEIGHT, MARGIN_X, MARGIN_Y = 1160, 580, 110, 60
RADIUS = 18
BEND = 46  # how far apart parallel edges between one pair of entities curve
MAX_NODES = 120  # past this a drawing is unreadable; the entity table below lists them all
TYPE_COLOURS = {
    "person": "#3b82f6", "place": "#10b981", "organization": "#f59e0b", "pet": "#ef4444",
    "thing": "#8b5cf6", "event": "#ec4899", "missing": "#9ca3af",
}
OTHER_COLOURS = ("#06b6d4", "#84cc16", "#f43f5e", "#6366f1", "#14b8a6", "#a855f7")

Point = tuple[float, float]


def node_colour(entity_type: str) -> str:
    """A fixed colour per entity type, so one user's pages always look alike."""
    if entity_type in TYPE_COLOURS:
        return TYPE_COLOURS[entity_type]
    return OTHER_COLOURS[int(hashlib.sha256(entity_type.encode()).hexdigest(), 16) % len(OTHER_COLOURS)]


def _day(value: object) -> str:
    return f"{value:%Y-%m-%d}" if value else "…"


def drawn_entities(entities: list[Entity], relations: list[Relation]) -> tuple[list[Entity], int]:
    """The entities to draw and how many there are: all of them (plus a stand-in for a relation
    end no record names), or the MAX_NODES with most relations when there are more."""
    known = {e.id: e for e in entities}
    for end in sorted({i for r in relations for i in (r.subject_id, r.object_id)} - known.keys()):
        known[end] = Entity(id=end, name=end, entity_type="missing")
    if len(known) <= MAX_NODES:
        return list(known.values()), len(known)
    degree = Counter(i for r in relations for i in (r.subject_id, r.object_id))
    return sorted(known.values(), key=lambda e: (-degree[e.id], e.name.lower()))[:MAX_NODES], len(known)


def layout(entity_ids: list[str], relations: list[Relation]) -> dict[str, Point]:
    """Spring layout (seeded, so a page is reproducible) scaled into the drawing's box."""
    graph = nx.Graph()
    graph.add_nodes_from(entity_ids)
    graph.add_edges_from((r.subject_id, r.object_id) for r in relations if r.subject_id in graph and r.object_id in graph)
    raw = nx.spring_layout(graph, seed=7) if len(graph) > 1 else {i: (0.0, 0.0) for i in graph}
    xs, ys = [p[0] for p in raw.values()], [p[1] for p in raw.values()]

    def fit(value: float, low: float, high: float, size: int, margin: int) -> float:
        return size / 2 if high - low < 1e-9 else margin + (value - low) / (high - low) * (size - 2 * margin)

    return {i: (fit(x, min(xs), max(xs), WIDTH, MARGIN_X), fit(y, min(ys), max(ys), HEIGHT, MARGIN_Y)) for i, (x, y) in raw.items()}


def _towards(start: Point, target: Point, distance: float) -> Point:
    dx, dy = target[0] - start[0], target[1] - start[1]
    length = math.hypot(dx, dy) or 1.0
    return start[0] + dx / length * distance, start[1] + dy / length * distance


def _curve(p: Point, q: Point, control: Point) -> tuple[str, Point]:
    """A quadratic arrow from circle edge to circle edge, and the curve's midpoint for the label."""
    start, end = _towards(p, control, RADIUS), _towards(q, control, RADIUS + 3)
    label = (0.25 * p[0] + 0.5 * control[0] + 0.25 * q[0], 0.25 * p[1] + 0.5 * control[1] + 0.25 * q[1])
    return f"M{start[0]:.1f},{start[1]:.1f} Q{control[0]:.1f},{control[1]:.1f} {end[0]:.1f},{end[1]:.1f}", label


def _loop(p: Point, size: float) -> tuple[str, Point]:
    """A relation from an entity to itself: a loop above the circle."""
    x, y = p
    top = y - RADIUS - size
    return (f"M{x - 8:.1f},{y - RADIUS + 2:.1f} C{x - 40:.1f},{top:.1f} {x + 40:.1f},{top:.1f} {x + 9:.1f},{y - RADIUS - 1:.1f}",
            (x, top + 8))


def _paths(relations: list[Relation], pos: dict[str, Point]) -> dict[str, tuple[str, Point]]:
    """Relation id -> (SVG path, label point); parallel edges of a pair curve apart."""
    pairs: dict[tuple[str, str], list[Relation]] = defaultdict(list)
    for relation in relations:
        pairs[tuple(sorted((relation.subject_id, relation.object_id)))].append(relation)  # type: ignore[index]
    out: dict[str, tuple[str, Point]] = {}
    for (a, b), group in pairs.items():
        group.sort(key=lambda r: (r.valid_from or r.created_at, r.id))
        for n, relation in enumerate(group):
            if a == b:
                out[relation.id] = _loop(pos[a], 45 + 22 * n)
                continue
            (ax, ay), (bx, by) = pos[a], pos[b]
            length = math.hypot(bx - ax, by - ay) or 1.0
            bend = (n - (len(group) - 1) / 2) * BEND * 2  # the curve reaches half its control's offset
            control = ((ax + bx) / 2 - (by - ay) / length * bend, (ay + by) / 2 + (bx - ax) / length * bend)
            out[relation.id] = _curve(pos[relation.subject_id], pos[relation.object_id], control)
    return out


def _edge_title(relation: Relation, names: dict[str, str], facts: dict[str, Fact]) -> str:
    fact = facts.get(relation.fact_id or "")
    lines = [f"{names[relation.subject_id]} —{relation.predicate}→ {names[relation.object_id]}",
             f"valid {_day(relation.valid_from)} → {_day(relation.valid_to)}"]
    if relation.valid_to is not None:
        lines.append(f"closed: fact {fact.status}" if fact and fact.status != "active" else "closed")
    if fact:
        lines.append(f"fact: {fact.text}")
    return escape("\n".join(lines))


def _legend(entities: list[Entity]) -> str:
    types = sorted({e.entity_type for e in entities})
    swatches = "".join(f'<span><i style="background:{node_colour(t)}"></i>{escape(t)}</span>' for t in types)
    return f'<div class="legend">{swatches}<span><em class="line"></em>current</span><span><em class="line closed"></em>closed (superseded or retracted)</span></div>'


def graph_svg(entities: list[Entity], relations: list[Relation], facts: list[Fact]) -> str:
    """The graph as an <svg> plus its legend; a note says so when no entity exists yet."""
    drawn, total = drawn_entities(entities, relations)
    if not drawn:
        return '<p class="muted">no entities yet: reflection makes them from facts with a subject and an object</p>'
    names = {e.id: e.name for e in drawn}
    shown = [r for r in relations if r.subject_id in names and r.object_id in names]
    pos = layout(list(names), shown)
    paths = _paths(shown, pos)
    by_id = {f.id: f for f in facts}
    edges = []
    for relation in shown:
        path, (lx, ly) = paths[relation.id]
        state = "current" if relation.valid_to is None else "closed"
        edges.append(
            f'<g class="edge {state}" data-relation="{escape(relation.id)}"><title>{_edge_title(relation, names, by_id)}</title>'
            f'<path d="{path}" marker-end="url(#arrow-{state})"/>'
            f'<text x="{lx:.1f}" y="{ly + 4:.1f}">{escape(relation.predicate)}</text></g>'
        )
    nodes = []
    for entity in drawn:
        x, y = pos[entity.id]
        aliases = f"\naliases: {', '.join(entity.aliases)}" if entity.aliases else ""
        title = escape(f"{entity.name} ({entity.entity_type}){aliases}\n{len(entity.sources)} source messages")
        nodes.append(
            f'<g class="node" data-entity="{escape(entity.id)}"><title>{title}</title>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{RADIUS}" fill="{node_colour(entity.entity_type)}"/>'
            f'<text x="{x:.1f}" y="{y + RADIUS + 14:.1f}">{escape(entity.name)}</text></g>'
        )
    arrows = "".join(
        f'<marker id="arrow-{state}" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="{colour}"/></marker>'
        for state, colour in (("current", "#4b5563"), ("closed", "#9aa3af"))
    )
    capped = (f'<p class="muted">showing the {len(drawn)} entities with most relations of {total}</p>'
              if len(drawn) < total else "")
    return (
        f'<svg class="graph" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="knowledge graph">'
        f'<defs>{arrows}</defs><g class="edges">{"".join(edges)}</g><g class="nodes">{"".join(nodes)}</g></svg>'
        f"{_legend(drawn)}{capped}"
    )
