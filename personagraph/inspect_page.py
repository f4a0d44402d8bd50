"""`personagraph inspect USER --html FILE`: one self-contained page picturing a user's memory.

The page is for people auditing what an agent believes about someone: the knowledge graph
(closed edges kept, drawn dashed, so a change of mind stays visible), a timeline of episodes
and facts, and the profile with the facts and quoted messages behind every field. It needs no
network and runs no script: the graph is laid out here and drawn as inline SVG. Every string
from memory is untrusted (users type it) and is HTML-escaped before it reaches the page.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from personagraph.memory import (
    Entity,
    Episode,
    Event,
    Fact,
    Memory,
    Profile,
    ProfileValue,
    Relation,
    Scope,
)
from personagraph.memory.models import now
from personagraph.memory.profile import derive_profile, profile_owners

from .inspect_graph import graph_svg


@dataclass(frozen=True)
class Snapshot:
    """Everything the page shows, read from one scope only."""

    scope: Scope
    entities: list[Entity]
    relations: list[Relation]
    facts: list[Fact]
    episodes: list[Episode]
    events: dict[str, Event]  # the messages facts and episodes cite, by id
    profile: Profile
    taken_at: datetime


def take_snapshot(memory: Memory, scope: Scope) -> Snapshot:
    """Read the user's records; a malformed scope raises InvalidScopeError before any read."""
    facts = memory.facts(scope, status=None)  # checks the scope
    episodes: list[Episode] = memory.records.list(scope, "episode")  # type: ignore[assignment]
    cited = {s for record in [*facts, *episodes] for s in record.sources}
    events: dict[str, Event] = memory.records.get_many(scope, "event", sorted(cited))  # type: ignore[assignment]
    return Snapshot(
        scope=scope,
        entities=sorted(memory.records.list(scope, "entity"), key=lambda e: e.name.lower()),  # type: ignore[attr-defined]
        relations=sorted(memory.records.list(scope, "relation"), key=lambda r: r.id),  # type: ignore[arg-type]
        facts=facts, episodes=episodes, events=events, taken_at=now(),
        profile=derive_profile([f for f in facts if f.status == "active"], profile_owners(scope.user_id, events.values())),
    )


def write_page(memory: Memory, scope: Scope, path: Path) -> Snapshot:
    """Write the page for `scope` to `path` (UTF-8) and return what it shows."""
    snapshot = take_snapshot(memory, scope)
    page = render_page(snapshot).encode()
    # Personal data: readable by its owner only, as the memory's own files are.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(page)
    return snapshot


# ====================================================================== sections
def _day(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value else "…"


def _stamp(value: datetime) -> str:
    return f'<time datetime="{value.isoformat()}">{value:%Y-%m-%d %H:%M}</time>'


def _fact_time(fact: Fact) -> datetime:
    return fact.valid_from or fact.created_at


def _quote(event_id: str, events: dict[str, Event]) -> str:
    """A cited message as a quote with who said it and when, or a note that it is gone."""
    event = events.get(event_id)
    if event is None:
        return f'<li class="source missing">message <code>{escape(event_id)}</code> is not stored</li>'
    return (
        f'<li class="source"><blockquote>{escape(event.text)}</blockquote>'
        f"<cite>{escape(event.speaker)}, {_stamp(event.time)} · <code>{escape(event.id)}</code></cite></li>"
    )


def _sources(ids: Iterable[str], events: dict[str, Event]) -> str:
    items = "".join(_quote(i, events) for i in ids)
    return f'<ul class="sources">{items}</ul>' if items else '<p class="muted">no source messages recorded</p>'


def _profile_rows(profile: Profile) -> list[tuple[str, ProfileValue]]:
    """(field, value) for every filled profile field, style fields as `style.x`, in model order."""
    rows: list[tuple[str, ProfileValue]] = []
    for name, value in profile:
        if name == "style":
            rows += [(f"style.{key}", v) for key, v in value if v is not None]
        elif isinstance(value, list):
            rows += [(name, v) for v in value]
        elif value is not None:
            rows.append((name, value))
    return rows


def profile_section(snapshot: Snapshot) -> str:
    """Each profile field with the facts it rests on and those facts' source messages."""
    facts = {f.id: f for f in snapshot.facts}
    rows = []
    for field, value in _profile_rows(snapshot.profile):
        evidence = [
            f'<li class="fact"><p>{escape(facts[i].text)} <code>{escape(i)}</code></p>{_sources(facts[i].sources, snapshot.events)}</li>'
            for i in value.fact_ids  # the profile is derived from these very facts
        ]
        rows.append(
            f'<tr><th scope="row">{escape(field)}</th><td class="value">{escape(value.value)}</td>'
            f'<td><ul class="evidence">{"".join(evidence)}</ul></td></tr>'
        )
    if not rows:
        return '<p class="muted">no profile yet: no active fact sets a field</p>'
    return ('<table class="profile"><thead><tr><th>field</th><th>value</th><th>facts and their sources</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _fact_entry(fact: Fact, facts: dict[str, Fact]) -> str:
    badge = ""
    if fact.status != "active":
        newer = facts.get(fact.superseded_by or "")
        by = f" by “{escape(newer.text)}”" if newer else ""
        badge = f'<span class="status">{escape(fact.status)} on {_day(fact.valid_to)}{by}</span>'
    triple = (f'<span class="triple">{escape(fact.subject or "")} —{escape(fact.predicate)}→ {escape(fact.object or "")}</span>'
              if fact.predicate else "")
    return (
        f'<li class="entry fact {escape(fact.status)}" data-status="{escape(fact.status)}">{_stamp(_fact_time(fact))}'
        f'<div><span class="kind">{escape(fact.fact_kind)}</span> <span class="text">{escape(fact.text)}</span> {triple} {badge}'
        f'<small>valid {_day(fact.valid_from)} → {_day(fact.valid_to)} · sources: '
        f'{escape(", ".join(fact.sources) or "none")} · <code>{escape(fact.id)}</code></small></div></li>'
    )


def _episode_entry(episode: Episode) -> str:
    return (
        f'<li class="entry episode">{_stamp(episode.start)}'
        f'<div><span class="kind">episode</span> {escape(episode.summary)}'
        f"<small>{episode.start:%Y-%m-%d %H:%M} → {episode.end:%Y-%m-%d %H:%M} · thread "
        f"{escape(episode.thread_id)} · {len(episode.sources)} messages</small></div></li>"
    )


def timeline_section(snapshot: Snapshot) -> str:
    """Episodes and facts in the order they happened or became true; closed facts marked."""
    facts = {f.id: f for f in snapshot.facts}
    dated = [(e.start, 0, e.id, _episode_entry(e)) for e in snapshot.episodes]
    dated += [(_fact_time(f), 1, f.id, _fact_entry(f, facts)) for f in snapshot.facts]
    if not dated:
        return '<p class="muted">no episodes or facts yet: run <code>personagraph reflect</code></p>'
    return f'<ol class="timeline">{"".join(entry for *_, entry in sorted(dated))}</ol>'


def entities_section(snapshot: Snapshot) -> str:
    rows = "".join(
        f"<tr><td>{escape(e.name)}</td><td>{escape(e.entity_type)}</td><td>{escape(', '.join(e.aliases))}</td>"
        f"<td>{len(e.sources)}</td></tr>"
        for e in snapshot.entities
    )
    if not rows:
        return ""
    return ('<table class="entities"><thead><tr><th>entity</th><th>type</th><th>aliases</th><th>sources</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


# ====================================================================== page
STYLE = """
:root{--ink:#1d2330;--muted:#6b7280;--line:#d8dde6;--card:#fff;--bg:#f4f6f9;--accent:#2f6fdb;--closed:#9aa3af}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
header{padding:18px 28px;background:#1d2330;color:#fff}header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#c9d1dd}
main{max-width:1240px;margin:0 auto;padding:18px 20px}section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin-bottom:16px}
h2{margin:0 0 10px;font-size:16px}.muted{color:var(--muted)}code{font-size:11px;color:var(--muted)}
svg.graph{width:100%;height:auto;display:block}.graph .node circle{stroke:#fff;stroke-width:2}
.graph .node text{font-size:12px;fill:var(--ink);text-anchor:middle;paint-order:stroke;stroke:#fff;stroke-width:3px}
.graph .edge path{fill:none;stroke:#4b5563;stroke-width:1.6}.graph .edge text{font-size:11px;fill:#374151;text-anchor:middle;paint-order:stroke;stroke:#fff;stroke-width:3px}
.graph .edge.closed path{stroke:var(--closed);stroke-dasharray:6 4}.graph .edge.closed text{fill:var(--closed);font-style:italic}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin-top:8px;color:var(--muted);font-size:12px}.legend span{display:inline-flex;align-items:center;gap:5px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:50%}.legend .line{display:inline-block;width:26px;border-top:2px solid #4b5563}.legend .line.closed{border-top:2px dashed var(--closed)}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}thead th{font-size:12px;color:var(--muted)}
.profile th[scope=row]{white-space:nowrap}.profile .value{font-weight:600}
ul.evidence,ul.sources{list-style:none;margin:0;padding:0}ul.evidence>li{margin-bottom:6px}ul.evidence p{margin:0}
.source blockquote{margin:4px 0 0;padding:3px 10px;border-left:3px solid var(--accent);background:#f1f5fc}.source cite{display:block;font-size:11px;color:var(--muted);font-style:normal}
.timeline{list-style:none;margin:0;padding:0}.timeline .entry{display:grid;grid-template-columns:130px 1fr;gap:10px;padding:6px 0;border-bottom:1px solid var(--line)}
.timeline time{color:var(--muted);font-variant-numeric:tabular-nums}.timeline small{display:block;color:var(--muted)}
.kind{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#e6edf8;color:#264a85}.episode .kind{background:#efe6f8;color:#5b2d85}
.triple{color:var(--muted);font-size:12px}.status{font-size:12px;color:#9a3412;background:#fff1e6;padding:0 6px;border-radius:8px}
.fact.superseded>div,.fact.retracted>div{opacity:.75}
.fact.superseded :is(.text,.triple),.fact.retracted :is(.text,.triple){text-decoration:line-through;text-decoration-color:#9aa3af}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}.grid section{margin:0}@media(max-width:900px){.grid{grid-template-columns:1fr}}
"""


def render_page(snapshot: Snapshot) -> str:
    """The whole page as one HTML string: inline CSS and SVG, no script, nothing fetched."""
    who = escape(snapshot.scope.user_id)
    current = sum(r.valid_to is None for r in snapshot.relations)
    counts = (f"{len(snapshot.entities)} entities · {current} current and {len(snapshot.relations) - current} closed relations · "
              f"{len(snapshot.facts)} facts · {len(snapshot.episodes)} episodes")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>personagraph · {who}</title><style>{STYLE}</style></head>
<body><header><h1>What personagraph remembers about {who}</h1>
<p>tenant {escape(snapshot.scope.tenant)} · {counts} · taken {snapshot.taken_at:%Y-%m-%d %H:%M} UTC</p></header>
<main>
<section id="graph"><h2>Knowledge graph</h2>{graph_svg(snapshot.entities, snapshot.relations, snapshot.facts)}</section>
<div class="grid">
<section id="profile"><h2>Profile and its sources</h2>{profile_section(snapshot)}</section>
<section id="timeline"><h2>Timeline: episodes and facts</h2>{timeline_section(snapshot)}</section>
</div>
<section id="entities"><h2>Entities</h2>{entities_section(snapshot) or '<p class="muted">none yet</p>'}</section>
</main></body></html>
"""
