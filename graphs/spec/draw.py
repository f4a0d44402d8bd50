"""A spec as a diagram: its nodes (id and factory) and its edges (branch edges labelled with the
outcomes that take them), written as Mermaid here and as a PNG by `png.py`. Drawn from the spec,
not the compiled graph, so drawing needs no runtime and shows each node's factory."""

from __future__ import annotations

from dataclasses import dataclass

from .model import END, GraphSpec

START_ID, END_ID = "__start__", "__end__"


@dataclass(frozen=True)
class DiagramNode:
    id: str
    title: str
    detail: str = ""  # the factory, under the id


@dataclass(frozen=True)
class DiagramEdge:
    source: str
    target: str
    label: str = ""
    conditional: bool = False


@dataclass(frozen=True)
class Diagram:
    nodes: list[DiagramNode]
    edges: list[DiagramEdge]


def diagram(spec: GraphSpec) -> Diagram:
    nodes = [DiagramNode(START_ID, "start"), *(DiagramNode(n.id, n.id, n.uses) for n in spec.nodes), DiagramNode(END_ID, "end")]
    edges = [DiagramEdge(START_ID, spec.entry)]
    edges += [DiagramEdge(e.source, e.target) for e in spec.edges]
    for branch in spec.branches:
        by_target: dict[str, list[str]] = {}
        for outcome, target in branch.routes.items():
            by_target.setdefault(target, []).append(outcome)
        if branch.default is not None:
            by_target.setdefault(branch.default, []).append("(default)")
        edges += [DiagramEdge(branch.source, END_ID if target == END else target, " | ".join(outcomes), conditional=True)
                  for target, outcomes in by_target.items()]
    edges += [DiagramEdge(node, END_ID) for node in spec.finish]
    return Diagram(nodes, edges)


def to_mermaid(chart: Diagram) -> str:
    """A Mermaid flowchart (node ids are numbered: a node may be called `end`, Mermaid's keyword)."""
    ids = {node.id: f"n{n}" for n, node in enumerate(chart.nodes)}
    lines = ["flowchart TD"]
    for node in chart.nodes:
        if node.id in (START_ID, END_ID):
            lines.append(f"    {ids[node.id]}([{node.title}])")
        else:
            lines.append(f'    {ids[node.id]}["{node.title}<br/><small>{node.detail}</small>"]')
    for edge in chart.edges:
        arrow = f'-. "{edge.label}" .->' if edge.conditional else "-->"
        lines.append(f"    {ids[edge.source]} {arrow} {ids[edge.target]}")
    return "\n".join(lines) + "\n"
