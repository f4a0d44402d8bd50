"""`personagraph inspect USER --html FILE`: the page's content, its escaping and isolation, the
command, and the page as headless Chromium draws it."""

from __future__ import annotations

import math
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from personagraph.memory import (
    Entity,
    Episode,
    Event,
    Fact,
    InvalidScopeError,
    Memory,
    MiniLMEmbedder,
    Relation,
    Scope,
)
from PIL import Image
from test_cli import BOB_CHAT, _ok, _run, _write_jsonl

from personagraph import cli, inspect_graph
from personagraph.inspect_graph import RADIUS, drawn_entities, graph_svg, node_colour
from personagraph.inspect_page import render_page, take_snapshot, write_page

HOSTILE = '<script>alert("pwned")</script> Alice likes jazz'
HOSTILE_OBJECT = "<img src=x onerror=alert(1)>"


def _day(day: int, hour: int = 9) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


@pytest.fixture
def alice_memory(memory: Memory, alice: Scope, bob: Scope) -> Memory:
    """Alice moved from Leeds to Bristol (a superseded fact), dropped a plan (retracted), has a
    sister, an episode, and typed a script tag; Bob, in the same store, loves opera."""
    memory.add_events(alice, [
        Event(id="a-01", speaker="Alice", text="I live in Leeds, it rains a lot.", time=_day(3)),
        Event(id="a-02", speaker="Alice", text="My sister Nadia is visiting.", time=_day(4)),
        Event(id="a-03", speaker="Alice", text="Thinking of a trip to Lisbon.", time=_day(5)),
        Event(id="a-04", speaker="Alice", text="Moved to Bristol today!", time=_day(20)),
        Event(id="a-05", speaker="Alice", text=f"{HOSTILE} <b>a lot</b>", time=_day(21)),
    ])
    for name, kind in (("Alice", "person"), ("Nadia", "person"), ("Leeds", "place"), ("Bristol", "place")):
        memory.upsert_entity(alice, Entity(name=name, entity_type=kind))
    memory.add_fact(alice, Fact(id="fct_leeds", text="Alice lives in Leeds.", subject="Alice", predicate="lives_in",
                                object="Leeds", valid_from=_day(3), sources=["a-01"]))
    memory.supersede_fact(alice, "fct_leeds", Fact(id="fct_bristol", text="Alice moved to Bristol.", subject="Alice",
                                                   predicate="lives_in", object="Bristol", valid_from=_day(20), sources=["a-04"]))
    memory.add_fact(alice, Fact(id="fct_sister", text="Nadia is Alice's sister.", fact_kind="relationship", subject="Alice",
                                predicate="sister", object="Nadia", valid_from=_day(4), sources=["a-02"]))
    memory.add_fact(alice, Fact(id="fct_lisbon", text="Alice plans a trip to Lisbon.", fact_kind="plan", subject="Alice",
                                predicate="plans_trip_to", object="Lisbon", valid_from=_day(5), sources=["a-03"]))
    memory.retract_fact(alice, "fct_lisbon")
    memory.add_fact(alice, Fact(id="fct_jazz", text=HOSTILE, fact_kind="preference", subject="Alice", predicate="likes",
                                object=HOSTILE_OBJECT, valid_from=_day(21), sources=["a-05"]))
    memory.add_episode(alice, Episode(id="epi_move", summary="Alice talked about moving house.", start=_day(3), end=_day(20),
                                      sources=["a-01", "a-04"]))
    memory.add_event(bob, Event(id="b-01", speaker="Bob", text="I secretly love opera.", time=_day(6)))
    memory.add_fact(bob, Fact(id="fct_opera", text="Bob loves opera.", fact_kind="preference", subject="Bob",
                              predicate="loves", object="Opera", sources=["b-01"]))
    return memory


@pytest.fixture
def page(alice_memory: Memory, alice: Scope) -> str:
    return render_page(take_snapshot(alice_memory, alice))


def test_the_graph_draws_every_entity_and_relation(page: str, alice_memory: Memory, alice: Scope) -> None:
    for entity in alice_memory.records.list(alice, "entity"):
        assert f'data-entity="{entity.id}"' in page
    for relation in alice_memory.records.list(alice, "relation"):
        assert f'data-relation="{relation.id}"' in page
    assert page.count('<g class="node"') == 6  # Alice, Leeds, Bristol, Nadia, Lisbon, the hostile object
    assert page.count('<g class="edge ') == 5


def test_superseded_and_retracted_edges_are_drawn_closed_with_their_interval(page: str) -> None:
    assert '<g class="edge closed" data-relation="rel_fct_leeds"><title>Alice —lives_in→ Leeds\nvalid 2025-03-03 → 2025-03-20\nclosed: fact superseded' in page
    assert '<g class="edge closed" data-relation="rel_fct_lisbon"><title>' in page and "closed: fact retracted" in page
    assert '<g class="edge current" data-relation="rel_fct_bristol"><title>Alice —lives_in→ Bristol\nvalid 2025-03-20 → …' in page
    assert "6 entities · 3 current and 2 closed relations" in page


def test_the_profile_names_each_fields_facts_and_quotes_their_sources(page: str) -> None:
    profile = page.split('<section id="profile">')[1].split("</section>")[0]
    location = profile.split('<th scope="row">location</th>')[1].split("</tr>")[0]
    assert '<td class="value">Bristol</td>' in location and "fct_bristol" in location
    assert "<blockquote>Moved to Bristol today!</blockquote>" in location and "2025-03-20 09:00" in location
    assert "Leeds" not in location  # the superseded fact no longer backs the field
    assert "<blockquote>My sister Nadia is visiting.</blockquote>" in profile  # relationships


def test_the_timeline_orders_episodes_and_facts_and_marks_closed_facts(page: str) -> None:
    timeline = page.split('<section id="timeline">')[1].split("</section>")[0]
    markers = ("moving house", *(f"<code>{i}</code>" for i in ("fct_leeds", "fct_sister", "fct_lisbon", "fct_bristol", "fct_jazz")))
    order = [timeline.index(marker) for marker in markers]
    assert order == sorted(order)
    assert 'class="entry fact superseded"' in timeline and "superseded on 2025-03-20 by “Alice moved to Bristol.”" in timeline
    assert 'class="entry fact retracted"' in timeline and "retracted on" in timeline


def test_memory_text_is_escaped_and_the_page_runs_no_script(page: str) -> None:
    assert "<script" not in page.lower() and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page  # shown as text, in the timeline and profile
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the node label
    assert "default-src 'none'" in page  # and a CSP, in case some string ever slipped through


def test_another_users_memory_is_absent(page: str) -> None:
    assert "opera" not in page.lower() and "b-01" not in page and "Bob" not in page


def test_a_malformed_scope_is_a_typed_error(alice_memory: Memory, alice: Scope, tmp_path: Path) -> None:
    with pytest.raises(InvalidScopeError):
        write_page(alice_memory, alice.model_copy(update={"user_id": "../bob"}), tmp_path / "page.html")
    assert not (tmp_path / "page.html").exists()


def test_an_empty_user_gets_a_page_that_says_so(memory: Memory) -> None:
    page = render_page(take_snapshot(memory, Scope(user_id="carol")))
    assert "no entities yet" in page and "no profile yet" in page and "no episodes or facts yet" in page


def test_parallel_edges_curve_apart_and_loops_and_unknown_ends_are_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Entity(name="A"), Entity(name="B")
    relations = [Relation(id="r1", subject_id=a.id, predicate="knows", object_id=b.id),
                 Relation(id="r2", subject_id=b.id, predicate="knows", object_id=a.id),
                 Relation(id="r3", subject_id=a.id, predicate="is", object_id=a.id),
                 Relation(id="r4", subject_id=a.id, predicate="met", object_id="ent_gone")]
    svg = graph_svg([a, b], relations, [])
    paths = [svg.split(f'data-relation="{r}"')[1].split('d="')[1].split('"')[0] for r in ("r1", "r2", "r3")]
    assert len(set(paths)) == 3 and paths[2].startswith("M") and " C" in paths[2]
    assert 'data-entity="ent_gone"' in svg  # a relation end without a record is still drawn
    monkeypatch.setattr(inspect_graph, "MAX_NODES", 2)
    drawn, total = drawn_entities([a, b, Entity(name="C")], relations)
    assert [e.id for e in drawn] == [a.id, b.id] and total == 4
    assert "showing the 2 entities with most relations of 4" in graph_svg([a, b, Entity(name="C")], relations, [])


@pytest.fixture
def cli_embedder(monkeypatch: pytest.MonkeyPatch, embedder: MiniLMEmbedder) -> None:
    monkeypatch.setattr(cli, "_embedder", lambda model_path: embedder)


def test_the_command_writes_the_page(tmp_path: Path, cli_embedder: None) -> None:
    data = tmp_path / "data"
    _ok(data, "ingest", str(_write_jsonl(tmp_path / "bob.jsonl", BOB_CHAT)), "--user", "bob")
    _ok(data, "reflect", "bob", "--model", "none")
    out = _ok(data, "inspect", "bob", "--html", str(tmp_path / "bob.html")).stdout
    page = (tmp_path / "bob.html").read_text(encoding="utf-8")
    assert f"wrote {tmp_path / 'bob.html'}" in " ".join(out.split())
    assert "tea" in page and "<blockquote>I prefer tea over coffee in the morning.</blockquote>" in page


def test_the_command_rejects_a_bad_user_and_mixed_formats(tmp_path: Path, cli_embedder: None) -> None:
    bad = _run(tmp_path / "data", "inspect", "../bob", "--html", str(tmp_path / "x.html"))
    assert bad.exit_code == 2 and "invalid user_id" in bad.stderr and "Traceback" not in bad.output
    both = _run(tmp_path / "data", "inspect", "bob", "--json", "--html", str(tmp_path / "x.html"))
    assert both.exit_code == 2 and "choose one of --json and --html" in both.output
    assert not (tmp_path / "x.html").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH: apt-get install -y chromium")
def test_headless_chromium_draws_the_nodes(alice_memory: Memory, alice: Scope, tmp_path: Path) -> None:
    snapshot = write_page(alice_memory, alice, tmp_path / "page.html")
    shot = tmp_path / "page.png"
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,900",
         (tmp_path / "page.html").as_uri()],
        check=True, capture_output=True, timeout=120, cwd=tmp_path,
    )
    pixels = Image.open(shot).convert("RGB")
    counts = {"#{:02x}{:02x}{:02x}".format(*rgb): n for n, rgb in pixels.getcolors(pixels.width * pixels.height)}
    assert len(counts) > 50, "the screenshot is blank"
    drawn, _ = drawn_entities(snapshot.entities, snapshot.relations)
    disc = math.pi * (RADIUS - 2) ** 2  # a circle's inside, less its anti-aliased rim
    for entity_type in {e.entity_type for e in drawn}:
        nodes = sum(e.entity_type == entity_type for e in drawn)
        assert counts.get(node_colour(entity_type), 0) >= nodes * disc * 0.8, f"{entity_type} nodes are not drawn"
