"""The reflection graph end to end on the real local model (SmolLM2 via transformers), offline.

Slow: each batch is one constrained generation of ~100 tokens on the CPU (10-20 s here).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from personagraph.agents.llm import load_chat_model
from personagraph.graphs.reflection import ReflectionConfig, build_reflection_graph
from personagraph.graphs.reflection.runner import iter_reflect
from personagraph.memory import MiniLMEmbedder, Scope
from personagraph.memory.ingest import read_locomo
from test_cli import _ok

from personagraph import Settings, cli, open_memory

SAMPLE = Path(cli.__file__).parent / "samples" / "demo_conversation.jsonl"
LOCOMO = SHARED_DATA / "locomo" / "locomo_dev.json"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def shared_embedder(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> None:
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)


def test_reflect_the_shipped_sample_on_the_local_model_and_inspect_shows_it(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    data = tmp_path / "data"
    _ok(data, "ingest", str(SAMPLE), "--user", "sam")
    out = _ok(data, "reflect", "sam", "--model", "local:smollm2").stdout
    assert "with local:smollm2" in out

    memory = open_memory(Settings(data_dir=data), embedder=embedder)
    try:
        scope = Scope(user_id="sam")
        facts = memory.facts(scope, status=None)
        runs = memory.reflections(scope)
        events = {e.id: e for e in memory.events(scope)}
    finally:
        memory.close()
    assert runs and all(r.status in ("done", "skipped") for r in runs), [(r.status, r.reason) for r in runs]
    assert all(r.llm_calls <= 2 for r in runs) and all(r.llm_calls == 0 for r in runs if r.status == "skipped")
    assert sum(r.llm_calls for r in runs) >= 1  # the model really ran
    assert any(f.predicate == "allergic_to" and f.object == "peanuts" for f in facts)
    for fact in facts:  # every fact rests on a message Sam (not the assistant) said
        assert fact.sources and all(events[s].role == "user" for s in fact.sources), fact

    shown = json.loads(_ok(data, "inspect", "sam", "--json").stdout)
    assert sorted(f["id"] for f in shown["facts"]) == sorted(f.id for f in facts)


@pytest.mark.skipif(not LOCOMO.exists(), reason=f"LoCoMo dev data not found at {LOCOMO}")
def test_reflect_a_locomo_session_on_the_local_model(memory, embedder: MiniLMEmbedder) -> None:
    sample = read_locomo(LOCOMO)[0]
    session = [e for e in sample.events if e.thread_id.endswith("-s1")]
    scope = Scope(user_id=sample.sample_id)
    memory.add_events(scope, session)
    graph = build_reflection_graph(memory, load_chat_model("local:smollm2"), config=ReflectionConfig(model_name="local:smollm2"))

    reports = [report for _, report in iter_reflect(memory, graph, scope, batch_size=8)]

    assert len(reports) == -(-len(session) // 8)
    assert all(r["status"] in ("done", "skipped") for r in reports)
    assert all(r["llm_calls"] <= 2 for r in reports)
    session_ids = {e.id for e in session}
    facts = memory.facts(scope)
    assert facts and all(set(f.sources) <= session_ids for f in facts)
    assert memory.unreflected_events(scope) == []
