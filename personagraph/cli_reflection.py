"""`personagraph reflect` and `personagraph inspect`: turn a user's messages into memory, and
show what that memory now holds (facts with validity and sources, entities, relations)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from personagraph.graphs.reflection import (
    LLMBudget,
    ReflectionConfig,
    build_reflection_graph,
)
from personagraph.graphs.reflection.runner import iter_reflect, pending_batches
from personagraph.memory import Memory, Scope

from .cli import _memory, _scope, _short, _state, app, console, err_console
from .inspect_page import write_page

REPORT_COUNTS = ("facts_added", "facts_superseded", "facts_retracted", "facts_updated", "noops", "rejected", "llm_calls")


def _chat_model(spec: str):
    from personagraph.agents.llm import load_chat_model

    with err_console.status(f"loading {spec}…"):
        return load_chat_model(spec)


@app.command()
def reflect(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose unreflected messages to reflect on.")],
    model: Annotated[str | None, typer.Option(help='"local:smollm2", "provider:model", or "none" (deterministic extractor only). Default: $PERSONAGRAPH_CHAT_MODEL.')] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, max=40, help="Messages per batch (one model call each).")] = None,
    thread: Annotated[str | None, typer.Option(help="Only this conversation thread.")] = None,
) -> None:
    """Extract facts, entities, relations and episodes from a user's unreflected messages."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    spec = model or settings.chat_model
    size = batch_size or settings.reflection_batch_size
    with _memory(settings) as memory:
        batches = pending_batches(memory, scope, size, thread)
        if not batches:
            console.print(f"[green]✓[/] nothing to reflect for [bold]{escape(user)}[/]: every message is reflected")
            return
        chat = None if spec == "none" else _chat_model(spec)
        graph = build_reflection_graph(
            memory, chat, config=ReflectionConfig(use_model=chat is not None, model_name=spec),
            budget=LLMBudget(per_user_per_hour=settings.llm_calls_per_user_per_hour),
        )
        totals = dict.fromkeys(REPORT_COUNTS, 0)
        statuses: dict[str, int] = {}
        started = time.perf_counter()
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"reflecting for {user}", total=sum(len(b) for b in batches))
            for batch, report in iter_reflect(memory, graph, scope, size, thread):
                for key in REPORT_COUNTS:
                    totals[key] += report.get(key, 0)
                statuses[report.get("status", "?")] = statuses.get(report.get("status", "?"), 0) + 1
                progress.advance(task, len(batch))
        seconds = time.perf_counter() - started
    runs = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    console.print(f"[green]✓[/] {len(batches)} batches ({runs}) in {seconds:.1f} s with {escape(spec)}")
    console.print("  " + ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in totals.items()))
    if statuses.get("failed") or statuses.get("deferred"):
        console.print("  [yellow]failed or deferred batches stay due: run reflect again to retry them[/]")


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d}" if value else "…"


def _facts_table(memory: Memory, scope: Scope) -> Table:
    table = Table(title="facts", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for name in ("fact", "kind", "subject —predicate→ object", "status", "valid", "sources"):
        table.add_column(name, overflow="fold")
    table.add_column("id", no_wrap=True)
    for fact in sorted(memory.facts(scope, status=None), key=lambda f: (f.status != "active", f.valid_from or f.created_at)):
        triple = f"{fact.subject} —{fact.predicate}→ {fact.object}" if fact.predicate else ""
        style = "" if fact.status == "active" else "dim"
        table.add_row(
            escape(_short(fact.text, 90)), fact.fact_kind, escape(triple), fact.status,
            f"{_when(fact.valid_from)} → {_when(fact.valid_to)}", escape(", ".join(fact.sources)), fact.id, style=style,
        )
    return table


def _graph_tables(memory: Memory, scope: Scope) -> tuple[Table, Table]:
    entities = Table(title="entities", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for name in ("name", "type", "aliases", "sources"):
        entities.add_column(name, overflow="fold")
    known = {e.id: e for e in memory.records.list(scope, "entity")}
    for entity in sorted(known.values(), key=lambda e: e.name.lower()):  # type: ignore[attr-defined]
        entities.add_row(escape(entity.name), entity.entity_type, escape(", ".join(entity.aliases)), str(len(entity.sources)))  # type: ignore[attr-defined]
    relations = Table(title="relations", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for name in ("subject", "predicate", "object", "valid", "fact"):
        relations.add_column(name, overflow="fold")
    for rel in sorted(memory.records.list(scope, "relation"), key=lambda r: (r.valid_to is not None, r.id)):  # type: ignore[attr-defined]
        name_of = lambda eid: known[eid].name if eid in known else eid  # type: ignore[attr-defined]
        relations.add_row(
            escape(name_of(rel.subject_id)), escape(rel.predicate), escape(name_of(rel.object_id)),  # type: ignore[attr-defined]
            f"{_when(rel.valid_from)} → {_when(rel.valid_to)}", rel.fact_id or "",  # type: ignore[attr-defined]
            style="" if rel.valid_to is None else "dim",  # type: ignore[attr-defined]
        )
    return entities, relations


def _inspection(memory: Memory, scope: Scope) -> dict:
    """What `inspect --json` prints: the records behind the tables, as JSON-ready data."""
    return {
        "scope": scope.model_dump(),
        **{f"{kind}s": [r.model_dump(mode="json") for r in memory.records.list(scope, kind)] for kind in ("fact", "entity", "relation")},
        "reflections": [r.model_dump(mode="json") for r in memory.reflections(scope)],
        "messages_due": len(memory.unreflected_events(scope)),
    }


@app.command()
def inspect(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose memory to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (facts, entities, relations, reflection runs) instead of tables.")] = False,
    html: Annotated[Path | None, typer.Option("--html", dir_okay=False, help="Write a self-contained HTML page (graph, timeline, profile with sources) to this file instead.")] = None,
) -> None:
    """Show a user's facts (with validity and sources), entities, relations and reflection runs."""
    if as_json and html:
        raise typer.BadParameter("choose one of --json and --html", param_hint="--html")
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    with _memory(settings) as memory:
        if html:
            shown = write_page(memory, scope, html)
            console.print(f"[green]✓[/] wrote {escape(str(html))}: {len(shown.entities)} entities, "
                          f"{len(shown.relations)} relations, {len(shown.facts)} facts, {len(shown.episodes)} episodes")
            return
        if as_json:
            typer.echo(json.dumps(_inspection(memory, scope), indent=2, ensure_ascii=False))
            return
        console.print(_facts_table(memory, scope))
        for table in _graph_tables(memory, scope):
            console.print()
            console.print(table)
        runs = memory.reflections(scope)
        due = len(memory.unreflected_events(scope))
    by_status: dict[str, int] = {}
    for run in runs:
        by_status[run.status] = by_status.get(run.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none yet"
    console.print(f"\nreflection runs: {summary}; messages still due: {due}")
    for run in runs:
        if not run.reflected:
            console.print(f"  [yellow]{run.status}[/] {run.id}: {escape(_short(run.reason, 160))}")
