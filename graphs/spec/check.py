"""What a spec means, checked against the registry: names, params, state, references, flow.

Every problem is reported with its path, so the loader can name its line. The flow rules keep a
spec readable as a state machine: each node continues one way (an edge, a branch, or the end),
every node is reachable from the entry, and every reachable node can reach the end.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from .catalog import NODE_FACTORIES, ROUTER_FACTORIES
from .errors import FieldPath
from .model import END, BranchSpec, GraphSpec
from .state import state_fields

Problem = tuple[FieldPath, str]
RESERVED = frozenset({END, "START", "__start__", "__end__"})


def check_spec(spec: GraphSpec) -> list[Problem]:
    """Every problem of a spec that parsed, in the order they are found."""
    problems = _state(spec) + _nodes(spec) + _branches(spec)
    ids = {node.id for node in spec.nodes} - RESERVED
    problems += _references(spec, ids)
    if not problems:
        problems += _flow(spec)
    return problems


def validation_problems(error: ValidationError, model: type[BaseModel], prefix: FieldPath = ()) -> list[Problem]:
    """pydantic's errors as problems, with the keys a model allows when one is unknown."""
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        path = (*prefix, *err["loc"])
        if err["type"] == "extra_forbidden":
            key, allowed = str(err["loc"][-1]), _allowed_keys(model, err["loc"][:-1])
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append((path, f"unknown key {key!r}{hint} (allowed: {', '.join(allowed) or 'none'})"))
        elif err["type"] == "missing":
            problems.append((path, "required, but missing"))
        else:
            problems.append((path, f"{err['msg'][0].lower()}{err['msg'][1:]} (got {_shown(err['input'])}){_yaml_hint(err)}"))
    return problems


def _state(spec: GraphSpec) -> list[Problem]:
    _, problems = state_fields(list(spec.state.schemas), dict(spec.state.fields))
    return problems


def _nodes(spec: GraphSpec) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for n, node in enumerate(spec.nodes):
        if node.id in RESERVED:
            problems.append((("nodes", n, "id"), f"{node.id!r} is reserved; name the node otherwise"))
        elif node.id in first:
            problems.append((("nodes", n, "id"), f"duplicate node id {node.id!r} (first at nodes[{first[node.id]}])"))
        first.setdefault(node.id, n)
        factory = NODE_FACTORIES.get(node.uses)
        if factory is None:
            problems.append((("nodes", n, "uses"), _unknown("node factory", node.uses, NODE_FACTORIES)))
            continue
        problems += _params(factory.params, node.params, ("nodes", n, "params"))
        problems += _needs_state(spec, factory.name, factory.state, ("nodes", n, "uses"))
    return problems


def _branches(spec: GraphSpec) -> list[Problem]:
    problems: list[Problem] = []
    for b, branch in enumerate(spec.branches):
        at: FieldPath = ("branches", b)
        router = ROUTER_FACTORIES.get(branch.router)
        if router is None:
            problems.append(((*at, "router"), _unknown("router", branch.router, ROUTER_FACTORIES)))
            continue
        problems += _params(router.params, branch.params, (*at, "params"))
        problems += _needs_state(spec, router.name, router.state, (*at, "router"))
        outcomes = ", ".join(router.outcomes)
        for outcome in branch.routes:
            if outcome not in router.outcomes:
                problems.append(((*at, "routes", outcome), f"{outcome!r} is not an outcome of {router.name!r} (outcomes: {outcomes})"))
        missing = [o for o in router.outcomes if o not in branch.routes]
        if branch.default is None and missing:
            problems.append(((*at, "routes"), f"no route for {', '.join(map(repr, missing))} and no default"))
        elif branch.default is not None and not missing:
            problems.append(((*at, "default"), f"default is never taken: every outcome of {router.name!r} has a route"))
    return problems


def _references(spec: GraphSpec, ids: set[str]) -> list[Problem]:
    problems: list[Problem] = []

    def need(path: FieldPath, target: str, *, end_ok: bool = False) -> None:
        if target not in ids and not (end_ok and target == END):
            problems.append((path, _unknown("node", target, ids) + (" or END" if end_ok else "")))

    need(("entry",), spec.entry)
    for n, node in enumerate(spec.finish):
        need(("finish", n), node)
    for e, edge in enumerate(spec.edges):
        need(("edges", e, "from"), edge.source)
        need(("edges", e, "to"), edge.target)
    for b, branch in enumerate(spec.branches):
        need(("branches", b, "from"), branch.source)
        for outcome, target in branch.routes.items():
            need(("branches", b, "routes", outcome), target, end_ok=True)
        if branch.default is not None:
            need(("branches", b, "default"), branch.default, end_ok=True)
    return problems


def _flow(spec: GraphSpec) -> list[Problem]:
    """One way on from each node; everything reachable from the entry; the end reachable from all
    (checked last, as the other problems make it fail everywhere)."""
    problems: list[Problem] = []
    finish = set(spec.finish)
    ways: dict[str, FieldPath] = {}  # node -> the edge or branch it continues by
    nexts: dict[str, set[str]] = {node.id: set() for node in spec.nodes}
    outs: list[tuple[str, FieldPath, set[str]]] = [(e.source, ("edges", n, "from"), {e.target}) for n, e in enumerate(spec.edges)]
    outs += [(b.source, ("branches", n, "from"), set(branch_targets(b).values())) for n, b in enumerate(spec.branches)]
    for source, path, targets in outs:
        if source in finish:
            problems.append((path, f"{source!r} is in finish, so nothing may follow it"))
        elif source in ways:
            why = f"{source!r} already continues by {_name(ways[source])}; a node continues one way (use one branch to choose between several)"
            problems.append((path, why))
        ways.setdefault(source, path)
        nexts[source] |= targets - {END}
    index = {node.id: n for n, node in enumerate(spec.nodes)}
    for node in spec.nodes:
        if node.id not in ways and node.id not in finish:
            problems.append((("nodes", index[node.id], "id"), f"{node.id!r} has no way on: add an edge or a branch from it, or list it in finish"))
    reached = _reachable([spec.entry], nexts)
    for n, node in enumerate(spec.finish):
        if node not in reached:
            problems.append((("finish", n), f"finish node {node!r} is unreachable from the entry {spec.entry!r}"))
    for node in spec.nodes:
        if node.id not in reached and node.id not in finish:
            problems.append((("nodes", index[node.id], "id"), f"{node.id!r} is unreachable from the entry {spec.entry!r}"))
    if problems:  # with a node stuck or the finish unreachable, everything before it would "loop" too
        return problems
    ends = finish | {b.source for b in spec.branches if END in branch_targets(b).values()}
    previous: dict[str, set[str]] = {node: set() for node in nexts}
    for source, targets in nexts.items():
        for target in targets:
            previous[target].add(source)
    ending = _reachable(ends, previous)
    for node in spec.nodes:
        if node.id in reached and node.id not in ending:
            problems.append((("nodes", index[node.id], "id"), f"{node.id!r} never reaches the end: every way on from it loops"))
    return problems


def branch_targets(branch: BranchSpec) -> dict[str, str]:
    """Where each outcome of a branch's (known) router goes: its route, else the default. An
    outcome with neither is left out; a spec that passed `check_spec` has none."""
    outcomes = ROUTER_FACTORIES[branch.router].outcomes
    return {outcome: target for outcome in outcomes if (target := branch.routes.get(outcome, branch.default)) is not None}


def _reachable(start: Iterable[str], nexts: Mapping[str, set[str]]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for target in nexts.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _params(model: type[BaseModel], params: dict[str, Any], at: FieldPath) -> list[Problem]:
    try:
        model.model_validate(params)
    except ValidationError as exc:
        return validation_problems(exc, model, at)
    return []


def _needs_state(spec: GraphSpec, name: str, state: str, at: FieldPath) -> list[Problem]:
    if state in spec.state.schemas:
        return []
    return [(at, f"{name!r} works on the {state!r} state, which this spec's state lacks (state.schemas: {', '.join(spec.state.schemas)})")]


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} (known: {', '.join(names)})"


def _allowed_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys allowed where an unknown key was found, following `loc` through the models."""
    current: Any = model
    for step in loc:  # list indices and dict keys keep the item's model, unwrapped at its field
        if isinstance(step, str) and isinstance(current, type) and issubclass(current, BaseModel):
            current = _unwrap(next((f.annotation for name, f in current.model_fields.items() if step in (name, f.alias)), None))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """The model inside list[Model], dict[str, Model] or Model | None."""
    for arg in reversed(get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _name(path: FieldPath) -> str:
    return f"{path[0]}[{path[1]}]"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _yaml_hint(err: Mapping[str, Any]) -> str:
    if err["type"] == "string_type" and isinstance(err["input"], bool):
        return "; YAML reads yes/no/on/off/true/false as booleans: quote it"
    return ""
