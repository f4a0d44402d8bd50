"""A diagram rendered to PNG on this machine (Pillow), top to bottom in layers.

LangChain's `draw_mermaid_png` sends the chart to a web service; this never leaves the process.
It is a small layered drawing: edges that close a loop are turned round for the layout, layers
come from the longest path, an edge that spans layers passes through a waypoint in each (so it
crosses no box), and a few barycentre sweeps order each layer to cut crossings.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .draw import END_ID, START_ID, Diagram, DiagramEdge

PAD, GAP_X, GAP_Y, MARGIN, WAYPOINT = 10, 36, 64, 24, 14
INK, MUTED, FILL, TERMINAL, PAPER = (40, 40, 60), (110, 110, 130), (242, 240, 255), (191, 182, 252), (255, 255, 255)
Point = tuple[float, float]
Box = tuple[float, float, float, float]  # left, top, right, bottom


def render_png(chart: Diagram, path: Path) -> None:
    fonts = {size: ImageFont.load_default(size) for size in (15, 11)}
    edges = [e for e in chart.edges if e.source != e.target]
    back = _back_edges(chart.nodes[0].id if chart.nodes else START_ID, edges)
    flows = [(e.target, e.source) if e in back else (e.source, e.target) for e in edges]  # all downward
    rank = _ranks([n.id for n in chart.nodes], flows)
    chains, layers = _waypoints(flows, rank, [n.id for n in chart.nodes])
    _order(layers, chains)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    sizes = {node: (float(WAYPOINT), 0.0) for layer in layers for node in layer}
    for node in chart.nodes:
        widths = [measure.textlength(node.title, font=fonts[15]), measure.textlength(node.detail, font=fonts[11])]
        sizes[node.id] = (max(widths) + 2 * PAD, 42.0 if node.detail else 28.0)
    boxes = _place(layers, sizes)
    right = max(box[2] for box in boxes.values()) + MARGIN
    bottom = max(box[3] for box in boxes.values()) + MARGIN
    image = Image.new("RGB", (int(right), int(bottom)), PAPER)
    draw = ImageDraw.Draw(image)
    for edge, chain in zip(edges, chains, strict=True):
        side = 0.75 if edge in back else 0.5  # a loop leaves and enters off-centre, clear of the edge it returns along
        points = [_port(boxes[chain[0]], side, 3), *(_centre(boxes[w]) for w in chain[1:-1]), _port(boxes[chain[-1]], side, 1)]
        if edge in back:
            points.reverse()
        _edge(draw, points, edge, fonts[11], near_source=edge in back)
    for edge in chart.edges:
        if edge.source == edge.target:
            _self_loop(draw, boxes[edge.source], edge, fonts[11])
    for node in chart.nodes:
        _node(draw, boxes[node.id], node.title, node.detail, fonts, terminal=node.id in (START_ID, END_ID))
    image.save(path, format="PNG")


def _back_edges(start: str, edges: Sequence[DiagramEdge]) -> set[DiagramEdge]:
    """Edges that close a loop, found by a depth-first walk from the start."""
    out: dict[str, list[DiagramEdge]] = {}
    for edge in edges:
        out.setdefault(edge.source, []).append(edge)
    back: set[DiagramEdge] = set()
    state: dict[str, str] = {}

    def visit(node: str) -> None:
        state[node] = "open"
        for edge in out.get(node, []):
            if state.get(edge.target) == "open":
                back.add(edge)
            elif edge.target not in state:
                visit(edge.target)
        state[node] = "done"

    visit(start)
    return back


def _ranks(nodes: list[str], flows: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the longest path to it (the end always alone at the bottom)."""
    rank = dict.fromkeys(nodes, 0)
    for _ in nodes:  # a DAG settles within as many rounds as it has nodes
        for source, target in flows:
            rank[target] = max(rank[target], rank[source] + 1)
    rank[END_ID] = max(r for node, r in rank.items() if node != END_ID) + 1
    return rank


def _waypoints(flows: list[tuple[str, str]], rank: dict[str, int], nodes: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Each edge as a chain of nodes and waypoints one layer apart, and the layers holding them."""
    layers: list[list[str]] = [[] for _ in range(max(rank.values()) + 1)]
    for node in nodes:
        layers[rank[node]].append(node)
    chains = []
    for n, (source, target) in enumerate(flows):
        chain = [source]
        for layer in range(rank[source] + 1, rank[target]):
            waypoint = f"\0{n}:{layer}"
            layers[layer].append(waypoint)
            chain.append(waypoint)
        chains.append([*chain, target])
    return chains, layers


def _order(layers: list[list[str]], chains: list[list[str]]) -> None:
    """Sort each layer by the mean position of its neighbours, down then up, a few times."""
    above: dict[str, list[str]] = {}
    below: dict[str, list[str]] = {}
    for chain in chains:
        for upper, lower in pairwise(chain):
            above.setdefault(lower, []).append(upper)
            below.setdefault(upper, []).append(lower)
    for _ in range(4):
        for sweep, neighbours, step in ((range(1, len(layers)), above, -1), (range(len(layers) - 2, -1, -1), below, 1)):
            for n in sweep:
                where = {node: i for i, node in enumerate(layers[n + step])}
                current = {node: i for i, node in enumerate(layers[n])}
                layers[n].sort(key=lambda node, where=where, current=current, neighbours=neighbours: _mean(
                    [where[m] for m in neighbours.get(node, []) if m in where], current[node],
                ))


def _mean(values: list[int], otherwise: float) -> float:
    return sum(values) / len(values) if values else otherwise


def _place(layers: list[list[str]], sizes: dict[str, tuple[float, float]]) -> dict[str, Box]:
    widths = [sum(sizes[n][0] for n in layer) + GAP_X * (len(layer) - 1) for layer in layers]
    boxes: dict[str, Box] = {}
    y = float(MARGIN)
    for layer, width in zip(layers, widths, strict=True):
        x = MARGIN + (max(widths) - width) / 2
        height = max(sizes[n][1] for n in layer)
        for node in layer:
            w, h = sizes[node]
            top = y + (height - h) / 2
            boxes[node] = (x, top, x + w, top + h) if h else (x, y + height / 2, x + w, y + height / 2)
            x += w + GAP_X
        y += height + GAP_Y
    return boxes


def _centre(box: Box) -> Point:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _port(box: Box, across: float, edge: int) -> Point:
    """A point on the box's top (edge 1) or bottom (edge 3), `across` of the way from its left."""
    return box[0] + (box[2] - box[0]) * across, box[edge]


def _edge(draw: ImageDraw.ImageDraw, points: list[Point], edge: DiagramEdge, font: ImageFont.FreeTypeFont, *, near_source: bool) -> None:
    _line(draw, points, dashed=edge.conditional)
    _arrow_head(draw, points[-2], points[-1])
    if not edge.label:
        return
    if near_source:  # a loop's label: beside its first stretch, to the right, clear of the edges fanning out
        (x0, y0), (x1, y1) = points[0], points[1]
        _label(draw, ((x0 + x1) / 2 + 6, (y0 + y1) / 2), edge.label, font, anchor="lm")
    else:  # just above the target, where edges fanned out from one node are furthest apart
        (x0, y0), (x1, y1) = points[-1], points[-2]
        t = min(0.5, 20 / max(abs(y1 - y0), 1.0))
        _label(draw, (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t), edge.label, font)


def _self_loop(draw: ImageDraw.ImageDraw, box: Box, edge: DiagramEdge, font: ImageFont.FreeTypeFont) -> None:
    _, top, right, bottom = box
    points = [(right, top + 8), (right + 18, top + 8), (right + 18, bottom - 8), (right, bottom - 8)]
    _line(draw, points, dashed=edge.conditional)
    _arrow_head(draw, points[-2], points[-1])
    if edge.label:
        _label(draw, (right + 18, (top + bottom) / 2), edge.label, font)


def _node(draw: ImageDraw.ImageDraw, box: Box, title: str, detail: str, fonts: dict[int, ImageFont.FreeTypeFont], *, terminal: bool) -> None:
    draw.rounded_rectangle(box, radius=14 if terminal else 6, fill=TERMINAL if terminal else FILL, outline=INK)
    cx, cy = _centre(box)
    if detail:
        draw.text((cx, box[1] + 14), title, font=fonts[15], fill=INK, anchor="mm")
        draw.text((cx, box[1] + 31), detail, font=fonts[11], fill=MUTED, anchor="mm")
    else:
        draw.text((cx, cy), title, font=fonts[15], fill=INK, anchor="mm")


def _line(draw: ImageDraw.ImageDraw, points: list[Point], *, dashed: bool) -> None:
    if not dashed:
        draw.line(points, fill=INK, width=2, joint="curve")
        return
    for (x0, y0), (x1, y1) in pairwise(points):
        length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1.0)
        for step in range(0, int(length), 10):
            a, b = step / length, min(step + 6, length) / length
            draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)], fill=INK, width=2)


def _arrow_head(draw: ImageDraw.ImageDraw, start: Point, end: Point) -> None:
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = max((dx * dx + dy * dy) ** 0.5, 1.0)
    ux, uy = dx / length, dy / length
    base = (end[0] - ux * 10, end[1] - uy * 10)
    draw.polygon([end, (base[0] - uy * 5, base[1] + ux * 5), (base[0] + uy * 5, base[1] - ux * 5)], fill=INK)


def _label(draw: ImageDraw.ImageDraw, at: Point, text: str, font: ImageFont.FreeTypeFont, anchor: str = "mm") -> None:
    left, top, right, bottom = draw.textbbox(at, text, font=font, anchor=anchor)
    draw.rectangle((left - 3, top - 2, right + 3, bottom + 2), fill=PAPER)
    draw.text(at, text, font=font, fill=MUTED, anchor=anchor)
