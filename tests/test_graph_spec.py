"""Graph specs are read and checked without running anything: the examples are valid, YAML and
JSON read the same, and every kind of mistake is one precise error naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from personagraph.graphs.spec import (
    GraphSpec,
    SpecError,
    compile_spec,
    load_spec,
    parse_spec,
    spec_json_schema,
)
from personagraph.graphs.spec.catalog import NODE_FACTORIES, ROUTER_FACTORIES
from personagraph.memory.errors import PersonagraphError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

BASE = """\
version: 1
name: t
state:
  schemas: [respond]
entry: context
finish: [record]
nodes:
  - id: context
    uses: memory.context
  - id: plan
    uses: planner.plan
  - id: recall
    uses: memory.recall
  - id: answer
    uses: prompting.generate
  - id: record
    uses: memory.record
edges:
  - {from: context, to: plan}
  - {from: plan, to: recall}
  - {from: answer, to: record}
branches:
  - from: recall
    router: planner.backend
    routes: {prompting: answer}
    default: answer
"""


def _error(text: str, name: str = "x.yaml") -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, name, is_json=name.endswith(".json"))
    return str(caught.value)


def _edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def test_the_base_spec_and_every_example_are_valid() -> None:
    spec = parse_spec(BASE, "x.yaml")
    assert [n.id for n in spec.nodes] == ["context", "plan", "recall", "answer", "record"]
    assert spec.branches[0].source == "recall" and spec.edges[0].target == "plan"
    assert {path.stem for path in EXAMPLES} >= {"personal_assistant", "slack_helper", "reflection_only"}
    for path in EXAMPLES:
        assert load_spec(path).name == path.stem


def test_json_reads_as_yaml_does_and_names_json_lines(tmp_path: Path) -> None:
    for path in EXAMPLES:
        as_json = tmp_path / f"{path.stem}.json"
        as_json.write_text(json.dumps(yaml.safe_load(path.read_text()), indent="\t"))
        assert load_spec(as_json).model_dump() == load_spec(path).model_dump()
    data = yaml.safe_load(BASE)
    data["edges"][1]["to"] = "recal"
    text = json.dumps(data, indent=2)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if '"recal"' in row)
    assert _error(text, "x.json").startswith(f"x.json:{line}: edges[1].to: unknown node 'recal'; did you mean 'recall'?")


def test_json_past_yamls_key_limit_is_read_without_lines() -> None:
    data = yaml.safe_load(BASE)
    long_name = "f" * 1100  # YAML's simple keys end at 1024 characters; JSON's do not
    data["state"]["fields"] = {long_name: "str"}
    assert long_name in parse_spec(json.dumps(data, indent=2), "x.json", is_json=True).state.fields
    data["edges"][1]["to"] = "recal"
    assert _error(json.dumps(data, indent=2), "x.json").startswith("x.json: edges[1].to: unknown node 'recal'")
    doubled = json.dumps(data, indent=2).replace('"version": 1,', '"version": 1, "version": 1,')
    assert _error(doubled, "x.json") == "x.json: duplicate key 'version'"


def test_errors_are_personagraph_errors_listing_every_problem() -> None:
    text = _edited("  - id: plan\n", "  - id: context\n").replace("uses: memory.recall", "uses: memory.recal")
    with pytest.raises(PersonagraphError) as caught:
        parse_spec(text, "x.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0] == "x.yaml:10: nodes[1].id: duplicate node id 'context' (first at nodes[0])"
    assert lines[1].startswith("x.yaml:13: nodes[2].uses: unknown node factory 'memory.recal'; did you mean 'memory.recall'? (known: ")
    assert len(caught.value.issues) > 2  # the edges to the missing `plan` too


SYNTAX_AND_SHAPE = [
    ("yaml syntax", "version: 1\nnodes: [a\nentry: x\n", "x.yaml:3: invalid YAML: "),
    ("json syntax", '{"version": 1,\n  "nodes": [}\n', "x.json:2: invalid JSON: Expecting value (column 13)"),
    ("not a mapping", "- version: 1\n", "x.yaml:1: a spec is a mapping with version, state, entry, finish and nodes"),
    ("empty file", "", "x.yaml: a spec is a mapping"),
    ("missing field", _edited("entry: context\n", ""), "x.yaml:1: entry: required, but missing"),
    ("unknown top key", _edited("edges:", "edge:"), "x.yaml:18: edge: unknown key 'edge'; did you mean 'edges'? (allowed: version, name, description, state, entry, finish, nodes, edges, branches)"),
    ("unknown node key", _edited("    uses: planner.plan", "    usse: planner.plan"), "x.yaml:10: nodes[1].uses: required, but missing\nx.yaml:11: nodes[1].usse: unknown key 'usse'; did you mean 'uses'? (allowed: id, uses, params)"),
    ("unknown edge key", _edited("{from: answer, to: record}", "{from: answer, too: record}"), "x.yaml:21: edges[2].to: required, but missing\nx.yaml:21: edges[2].too: unknown key 'too'; did you mean 'to'? (allowed: from, to)"),
    ("missing node field", _edited("  - id: recall\n    uses: memory.recall\n", "  - id: recall\n"), "x.yaml:12: nodes[2].uses: required, but missing"),
    ("wrong type", _edited("finish: [record]", "finish: record"), "x.yaml:6: finish: input should be a valid list (got 'record')"),
    ("bad version", _edited("version: 1", "version: 2"), "x.yaml:1: version: input should be 1 (got 2)"),
    ("bad node id", _edited("  - id: answer", "  - id: an swer"), "x.yaml:14: nodes[3].id: string should match pattern"),
    ("yaml boolean as value", _edited("    default: answer", "    default: no"), "x.yaml:26: branches[0].default: input should be a valid string (got False); YAML reads yes/no/on/off/true/false as booleans: quote it"),
    ("yaml boolean as key", _edited("routes: {prompting: answer}", "routes: {yes: answer}"), "x.yaml:25: branches[0].routes: key True is not a string (YAML reads yes/no/on/off/true/false as booleans: quote it)"),
    ("duplicate key", _edited("entry: context\n", "entry: context\nentry: plan\n"), "x.yaml:6: entry: duplicate key 'entry'"),
    ("unknown state schema", _edited("schemas: [respond]", "schemas: [respnd]"), "x.yaml:4: state.schemas[0]: input should be 'respond', 'reflection' or 'messages' (got 'respnd')"),
    ("recursive alias", "version: 1\nnodes: &x [*x]\n", "x.yaml:2: nodes[0]: a recursive alias: the anchored value contains itself"),
    ("recursive alias in a mapping", "version: 1\nstate:\n  fields: &x {f: *x}\n", "x.yaml:3: state.fields.f: a recursive alias"),
    ("empty nodes", "version: 1\nstate: {schemas: [respond]}\nentry: a\nfinish: [a]\nnodes: []\n", "x.yaml:5: nodes: list should have at least 1 item after validation, not 0 (got [])"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in SYNTAX_AND_SHAPE], ids=[case[0] for case in SYNTAX_AND_SHAPE])
def test_syntax_and_shape_errors(text: str, expected: str) -> None:
    name = "x.json" if expected.startswith("x.json") else "x.yaml"
    assert _error(text, name).startswith(expected)


MEANING = [
    ("unknown factory", _edited("uses: memory.recall", "uses: recal"), "x.yaml:13: nodes[2].uses: unknown node factory 'recal' (known: adapter.generate, "),
    ("unknown router", _edited("router: planner.backend", "router: planner.backnd"), "x.yaml:24: branches[0].router: unknown router 'planner.backnd'; did you mean 'planner.backend'?"),
    ("params typo", _edited("    uses: planner.plan\n", "    uses: planner.plan\n    params: {recal_k: 3}\n"), "x.yaml:12: nodes[1].params.recal_k: unknown key 'recal_k'; did you mean 'recall_k'? (allowed: min_adapter_gain, "),
    ("params value", _edited("    uses: memory.context\n", "    uses: memory.context\n    params:\n      history_turns: -1\n"), "x.yaml:11: nodes[0].params.history_turns: input should be greater than or equal to 0 (got -1)"),
    ("params on a factory without any", _edited("    uses: memory.recall\n", "    uses: memory.recall\n    params: {k: 3}\n"), "x.yaml:14: nodes[2].params.k: unknown key 'k' (allowed: none)"),
    ("router params", _edited("    router: planner.backend\n", "    router: planner.backend\n    params: {x: 1}\n"), "x.yaml:25: branches[0].params.x: unknown key 'x'"),
    ("duplicate node id", _edited("  - id: answer", "  - id: recall"), "x.yaml:14: nodes[3].id: duplicate node id 'recall' (first at nodes[2])"),
    ("reserved node id", _edited("  - id: answer", "  - id: END"), "x.yaml:14: nodes[3].id: 'END' is reserved; name the node otherwise"),
    ("unknown entry", _edited("entry: context", "entry: contxt"), "x.yaml:5: entry: unknown node 'contxt'; did you mean 'context'? (known: answer, context, plan, recall, record)"),
    ("unknown finish", _edited("finish: [record]", "finish: [recrd]"), "x.yaml:6: finish[0]: unknown node 'recrd'; did you mean 'record'?"),
    ("edge from unknown", _edited("{from: plan, to: recall}", "{from: plann, to: recall}"), "x.yaml:20: edges[1].from: unknown node 'plann'"),
    ("edge to unknown", _edited("{from: plan, to: recall}", "{from: plan, to: recal}"), "x.yaml:20: edges[1].to: unknown node 'recal'"),
    ("branch from unknown", _edited("  - from: recall", "  - from: recalll"), "x.yaml:23: branches[0].from: unknown node 'recalll'"),
    ("route to unknown", _edited("routes: {prompting: answer}", "routes: {prompting: anwser}"), "x.yaml:25: branches[0].routes.prompting: unknown node 'anwser'; did you mean 'answer'? (known: answer, context, plan, recall, record) or END"),
    ("default to unknown", _edited("default: answer", "default: nowhere"), "x.yaml:26: branches[0].default: unknown node 'nowhere'"),
    ("route is not an outcome", _edited("routes: {prompting: answer}", "routes: {prompt: answer}"), "x.yaml:25: branches[0].routes.prompt: 'prompt' is not an outcome of 'planner.backend' (outcomes: prompting, adapter, adapter+memory)"),
    ("outcome without route", _edited("    default: answer\n", ""), "x.yaml:25: branches[0].routes: no route for 'adapter', 'adapter+memory' and no default"),
    ("node on another state", _edited("uses: memory.recall", "uses: reflection.load"), "x.yaml:13: nodes[2].uses: 'reflection.load' works on the 'reflection' state, which this spec's state lacks (state.schemas: respond)"),
    ("router on another state", _edited("router: planner.backend", "router: tools.has_calls"), "x.yaml:24: branches[0].router: 'tools.has_calls' works on the 'messages' state"),
    ("clashing schemas", _edited("schemas: [respond]", "schemas: [respond, reflection]"), "x.yaml:4: state.schemas[1]: 'respond' and 'reflection' both have a field 'prompt', of different types"),
    ("field clash", _edited("  schemas: [respond]\n", "  schemas: [respond]\n  fields: {query: int}\n"), "x.yaml:5: state.fields.query: 'query' is already a field of the 'respond' state"),
    ("bad field type", _edited("  schemas: [respond]\n", "  schemas: [respond]\n  fields: {mood: string}\n"), "x.yaml:5: state.fields.mood: input should be 'str', 'int', 'float', 'bool', 'list', 'dict' or 'any' (got 'string')"),
    ("default never taken", _edited("routes: {prompting: answer}", "routes: {prompting: answer, adapter: answer, adapter+memory: answer}"),
     "x.yaml:26: branches[0].default: default is never taken: every outcome of 'planner.backend' has a route"),
    ("no way on", _edited("  - {from: answer, to: record}\n", ""), "x.yaml:14: nodes[3].id: 'answer' has no way on: add an edge or a branch from it, or list it in finish"),
    ("two ways on", _edited("  - {from: answer, to: record}\n", "  - {from: answer, to: record}\n  - {from: recall, to: answer}\n"), "x.yaml:24: branches[0].from: 'recall' already continues by edges[3]; a node continues one way"),
    ("edge after finish", _edited("  - {from: answer, to: record}\n", "  - {from: answer, to: record}\n  - {from: record, to: context}\n"), "x.yaml:22: edges[3].from: 'record' is in finish, so nothing may follow it"),
    ("unreachable node", _edited("{from: context, to: plan}", "{from: context, to: recall}").replace("  - {from: plan, to: recall}\n", "  - {from: plan, to: record}\n"), "x.yaml:10: nodes[1].id: 'plan' is unreachable from the entry 'context'"),
    ("finish unreachable", _edited("  - {from: answer, to: record}\n", "  - {from: answer, to: context}\n"), "x.yaml:6: finish[0]: finish node 'record' is unreachable from the entry 'context'"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in MEANING], ids=[case[0] for case in MEANING])
def test_meaning_errors(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_a_loop_with_no_way_out_is_named() -> None:
    text = _edited("    default: answer\n", "    default: spin\n").replace(
        "  - id: record\n", "  - id: spin\n    uses: memory.recall\n  - id: record\n",
    ).replace("edges:\n", "edges:\n  - {from: spin, to: spin}\n")
    assert _error(text) == "x.yaml:16: nodes[4].id: 'spin' never reaches the end: every way on from it loops"


def test_a_default_that_no_outcome_takes_is_named_not_counted_as_a_way_on() -> None:
    """`r` is reachable only by the default, which never applies: `a` and `t` would loop forever."""
    text = (
        "version: 1\nstate: {schemas: [messages]}\nentry: a\nfinish: [r]\nnodes:\n  - {id: a, uses: agent.chat}\n"
        "  - {id: t, uses: tools.run}\n  - {id: r, uses: memory.store}\nedges:\n  - {from: t, to: a}\nbranches:\n"
        "  - from: a\n    router: tools.has_calls\n    routes: {calls: t, answer: t}\n    default: r\n"
    )
    assert _error(text) == "x.yaml:15: branches[0].default: default is never taken: every outcome of 'tools.has_calls' has a route"


def test_routes_may_end_the_graph() -> None:
    text = _edited("routes: {prompting: answer}", "routes: {prompting: answer, adapter: END}")
    assert parse_spec(text, "x.yaml").branches[0].routes["adapter"] == "END"


def test_specs_built_in_code_are_checked_when_compiled(memory) -> None:  # type: ignore[no-untyped-def]
    from personagraph.graphs.spec import SpecRuntime

    data = yaml.safe_load(BASE)
    data["edges"][1]["to"] = "nowhere"
    spec = GraphSpec.model_validate(data)
    with pytest.raises(SpecError, match=r"^<spec t>: edges\[1\]\.to: unknown node 'nowhere'"):
        compile_spec(spec, SpecRuntime(memory))


def test_compiling_names_the_node_whose_needs_the_runtime_cannot_meet(memory) -> None:  # type: ignore[no-untyped-def]
    from personagraph.graphs.spec import SpecRuntime

    with pytest.raises(SpecError) as caught:
        compile_spec(parse_spec(BASE, "x.yaml"), SpecRuntime(memory))
    assert str(caught.value) == "x.yaml:15: nodes[3].uses: this node needs a chat model, and the runtime has none"


def test_only_generating_nodes_need_a_chat_model(memory) -> None:  # type: ignore[no-untyped-def]
    from personagraph.graphs.spec import SpecRuntime

    text = (
        "version: 1\nstate: {schemas: [respond]}\nentry: context\nfinish: [record]\nnodes:\n"
        "  - {id: context, uses: memory.context}\n  - {id: plan, uses: planner.plan}\n"
        "  - {id: recall, uses: memory.recall}\n  - {id: record, uses: memory.record}\nedges:\n"
        "  - {from: context, to: plan}\n  - {from: plan, to: recall}\n  - {from: recall, to: record}\n"
    )
    assert set(compile_spec(parse_spec(text, "x.yaml"), SpecRuntime(memory)).get_graph().nodes) >= {"context", "plan", "recall", "record"}
    adapter = BASE.replace("uses: prompting.generate", "uses: adapter.generate")
    with pytest.raises(SpecError, match=r"^x\.yaml:15: nodes\[3\]\.uses: this node needs a chat model"):
        compile_spec(parse_spec(adapter, "x.yaml"), SpecRuntime(memory))


def test_the_published_json_schema_is_current_and_checks_params() -> None:
    published = json.loads((ROOT / "schemas" / "graph-spec.schema.json").read_text())
    assert published == spec_json_schema(), "regenerate: personagraph graph schema > schemas/graph-spec.schema.json"
    rules = {rule["if"]["properties"]["uses"]["const"]: rule["then"] for rule in published["$defs"]["NodeSpec"]["allOf"]}
    assert set(rules) == set(NODE_FACTORIES)
    assert rules["planner.plan"]["properties"]["params"]["additionalProperties"] is False
    outcomes = {rule["if"]["properties"]["router"]["const"]: rule["then"]["properties"]["routes"]["propertyNames"]["enum"]
                for rule in published["$defs"]["BranchSpec"]["allOf"]}
    assert outcomes == {name: list(router.outcomes) for name, router in ROUTER_FACTORIES.items()}


def test_the_docs_list_every_factory_and_router() -> None:
    docs = (ROOT / "docs" / "graph-specs.md").read_text()
    missing = [name for name in [*NODE_FACTORIES, *ROUTER_FACTORIES] if f"`{name}`" not in docs]
    assert not missing, missing
