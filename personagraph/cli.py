"""The `personagraph` command line: a thin shell over the library for people and scripts.

Every command opens memory, does one thing and closes it again (Qdrant Edge lets one process
own an index, so a command must never keep it open longer than it needs). Errors the library
raises on purpose become one red line and exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer
from rich import box
from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from personagraph.memory import (
    Event,
    Fact,
    ForgetReceipt,
    IngestFormatError,
    Memory,
    MiniLMEmbedder,
    PersonagraphError,
    Profile,
    RetrievedItem,
    Scope,
)
from personagraph.memory.ingest import iter_batches, read_jsonl_messages, read_locomo

from .factory import open_memory
from .graph_checkpoints import forget_checkpoints
from .settings import Settings

BATCH_SIZE = 128
TEXT_LIMIT = 200  # characters of a memory shown in a table row
DEMO_DIR = Path(".personagraph-demo")
DEMO_USER = "sam"
# What a data dir may hold for `demo` to wipe it; anything else means it is not ours to delete.
DEMO_DIR_ENTRIES = {"records.sqlite", "records.sqlite-wal", "records.sqlite-shm", "index", "adapters"}

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class _ReportingGroup(typer.core.TyperGroup):
    """Turns the library's own errors into one red line and exit code 2, with no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PersonagraphError as exc:
            _fail(str(exc))
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            _fail(f"{exc.filename}: {exc.strerror.lower() if exc.strerror else exc}")
        except OSError as exc:  # a port in use, an address that cannot be bound, a network that is down
            _fail(f"{exc.strerror or exc}")


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


app = typer.Typer(
    cls=_ReportingGroup,
    help="Long-term, per-user memory for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold database URLs and keys
)


@dataclass(frozen=True)
class CliState:
    settings: Settings
    data_dir_option: Path | None  # --data-dir as given on the command line, for `demo`


def _state(ctx: typer.Context) -> CliState:
    return ctx.obj


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Where memory lives (default: $PERSONAGRAPH_DATA_DIR or ~/.local/share/personagraph).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant label (default: $PERSONAGRAPH_TENANT or 'default').")] = None,
) -> None:
    """Store, search and forget what users told your agent. Settings come from PERSONAGRAPH_* variables."""
    overrides = {key: value for key, value in {"data_dir": data_dir, "tenant": tenant}.items() if value is not None}
    ctx.obj = CliState(Settings(**overrides), data_dir)


# ====================================================================== plumbing
@functools.cache
def _embedder(model_path: str | None) -> MiniLMEmbedder:
    """One embedder per process: loading the model is most of a short command's run time."""
    return MiniLMEmbedder(model_path)


def _load_model(memory: Memory) -> None:
    """Load the embedding model up front, under a spinner, so rates and timings measure the work."""
    with err_console.status("loading the embedding model…"):
        memory.embedder.embed_query("warm-up")


@contextmanager
def _memory(settings: Settings) -> Iterator[Memory]:
    """Open memory and always close it, so the index is flushed and its lock released."""
    memory = open_memory(settings, embedder=_embedder(settings.embedding_model_path))
    try:
        yield memory
    finally:
        memory.close()


def _scope(settings: Settings, user: str) -> Scope:
    """The scope of `user` in the configured tenant (a bad label raises InvalidScopeError)."""
    return Scope(tenant=settings.tenant, user_id=user)


def _parse_time(value: str | None) -> datetime | None:
    """ISO 8601; a time without a zone is taken as UTC, as the records do."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date or time", param_hint="--as-of") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _short(text: str, limit: int = TEXT_LIMIT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _stages(stages: dict[str, int]) -> str:
    """'bm25:1 dense:3': the stages that found the item, best rank first.

    Recency is left out: it ranks every candidate the other stages found, so it found nothing
    itself (its rank is still in --json).
    """
    found = sorted((rank, stage) for stage, rank in stages.items() if stage != "recency")
    return " ".join(f"{stage}:{rank}" for rank, stage in found)


def _results_table(items: Sequence[RetrievedItem]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("kind", style="cyan", no_wrap=True)
    table.add_column("found by", style="magenta", max_width=15)
    table.add_column("date", style="dim", no_wrap=True)
    table.add_column("text", ratio=1, min_width=30)
    for rank, item in enumerate(items, start=1):
        when = f"{item.time:%Y-%m-%d}" if item.time else ""
        table.add_row(str(rank), f"{item.score:.2f}", item.kind, _stages(item.stages), when, escape(_short(item.text)))
    return table


# ====================================================================== ingest
class InputFormat(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    locomo = "locomo"


class _RateColumn(ProgressColumn):
    """Events per second, so a slow embedder shows while it happens."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = f"{task.completed / elapsed:,.0f}" if elapsed and task.completed else "…"
        return Text(f"{rate} events/s", style="progress.data.speed")


def _detect_format(path: Path) -> InputFormat:
    """`.jsonl` is messages; a JSON list of objects with a `conversation` is LoCoMo."""
    if path.suffix == ".jsonl":
        return InputFormat.jsonl
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        data = None
    if isinstance(data, list) and data and all(isinstance(s, dict) and "conversation" in s for s in data):
        return InputFormat.locomo
    raise IngestFormatError(f"{path}: cannot tell the format; name it .jsonl or pass --format jsonl|locomo")


def _read_events(path: Path, fmt: InputFormat, sample: str | None) -> tuple[list[Event], str]:
    """The events in `path` and a few words saying what they were."""
    if fmt is InputFormat.auto:
        fmt = _detect_format(path)
    if fmt is InputFormat.jsonl:
        if sample is not None:
            raise typer.BadParameter("only LoCoMo files have samples", param_hint="--sample")
        events = read_jsonl_messages(path)
        return events, f"{len(events)} messages"
    samples = read_locomo(path)
    if sample is not None:
        chosen = [s for s in samples if s.sample_id == sample]
        if not chosen:
            known = ", ".join(s.sample_id for s in samples)
            raise IngestFormatError(f"{path}: no sample {sample!r} (it has {known})")
        samples = chosen
    events = [event for s in samples for event in s.events]
    return events, f"{len(events)} turns from {len(samples)} LoCoMo sample{'s' if len(samples) != 1 else ''}"


def _add_with_progress(memory: Memory, scope: Scope, events: list[Event]) -> float:
    """Write events in batches under a progress bar; returns the seconds it took."""
    _load_model(memory)
    started = time.perf_counter()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"ingesting for {scope.user_id}", total=len(events))
        for batch in iter_batches(events, BATCH_SIZE):
            memory.add_events(scope, batch)
            progress.advance(task, len(batch))
    return time.perf_counter() - started


@app.command()
def ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON Lines of messages, or a LoCoMo-format JSON file.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Whose memory the messages go into.")],
    input_format: Annotated[InputFormat, typer.Option("--format", help="Input format; auto looks at the name and content.")] = InputFormat.auto,
    sample: Annotated[str | None, typer.Option(help="LoCoMo only: ingest just this sample_id.")] = None,
) -> None:
    """Add the messages of a file to a user's memory (replaying a file changes nothing)."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    events, what = _read_events(file, input_format, sample)  # parse everything before writing anything
    with _memory(settings) as memory:
        seconds = _add_with_progress(memory, scope, events)
    rate = len(events) / seconds if seconds else 0.0
    console.print(f"[green]✓[/] added {what} to [bold]{escape(user)}[/] in {seconds:.1f} s ({rate:,.0f} events/s)")


# ====================================================================== recall
@app.command()
def recall(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose memory to search.")],
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many memories to return.")] = 10,
    kinds: Annotated[list[str] | None, typer.Option(help="Only these kinds: event, episode, fact (repeat or comma-separate).")] = None,
    as_of: Annotated[str | None, typer.Option(help="Search memory as it stood then (ISO 8601, e.g. 2025-03-15).")] = None,
    budget: Annotated[int | None, typer.Option(help="Most context tokens the results may take.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Search one user's memory: hybrid retrieval, ranked, with the stages that found each item."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    wanted = [kind.strip() for entry in kinds or [] for kind in entry.split(",") if kind.strip()] or None
    when = _parse_time(as_of)
    with _memory(settings) as memory:
        _load_model(memory)
        result = memory.search(scope, query, k=k, kinds=wanted, as_of=when, token_budget=budget)  # type: ignore[arg-type]
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    elif not result.items:
        console.print(f"no memories of [bold]{escape(user)}[/] match that")
    else:
        console.print(_results_table(result.items))
        total = sum(result.timings_ms.values())
        console.print(f"[dim]{len(result.items)} items, {result.tokens} tokens, {total:.0f} ms[/]")


# ====================================================================== forget
def _receipt_table(receipt: ForgetReceipt) -> Table:
    def counts(values: dict[str, int]) -> str:
        return " · ".join(f"{kind} {n}" for kind, n in values.items()) or "nothing"

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("records deleted", counts({kind: n for kind, n in receipt.records_deleted.items() if n}))
    if receipt.records_updated:
        table.add_row("records updated", str(receipt.records_updated))
    table.add_row("index points", str(receipt.index_points_deleted))
    table.add_row("graph", f"{receipt.graph_nodes_deleted} nodes, {receipt.graph_edges_deleted} edges")
    table.add_row("residue", counts(receipt.residue))
    table.add_row("complete", "[green]yes[/]" if receipt.complete else "[bold red]NO[/]")
    return table


@app.command()
def forget(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose memory to delete from.")],
    event: Annotated[str | None, typer.Option(help="Forget only this message and what rests on it alone.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before forgetting a whole user.")] = False,
) -> None:
    """Forget a whole user, or one message, and prove nothing is left (exit 1 if something is)."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    if event is None and not yes:
        typer.confirm(f"Forget everything stored about {user!r}? This cannot be undone", abort=True)
    with _memory(settings) as memory:
        receipt = memory.forget_event(scope, event) if event else memory.forget_user(scope)
    if event is None:  # outside the memory's stores: `graph run` checkpoints and the adapter folder
        receipt = forget_checkpoints(settings, scope, receipt)
        shutil.rmtree(settings.adapters_path / scope.tenant / scope.user_id, ignore_errors=True)
    target = f"message {escape(event)} of user" if event else "user"
    console.print(f"forgot {target} [bold]{escape(user)}[/] (tenant {escape(settings.tenant)})")
    console.print(_receipt_table(receipt))
    if not receipt.complete:
        raise typer.Exit(1)


# ====================================================================== export, stats, reconcile
@app.command()
def export(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose memory to export.")],
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of standard output.")] = None,
) -> None:
    """Everything held on one user, as JSON (records of every kind and the derived profile)."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    with _memory(settings) as memory:
        data = memory.export(scope)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    count = sum(len(records) for records in data["records"].values())
    console.print(f"[green]✓[/] wrote {count} records of [bold]{escape(user)}[/] to {escape(str(out))}")


def _disk_usage(path: Path) -> int:
    """Bytes allocated on disk, not apparent sizes: Qdrant preallocates 32 MB files that are mostly holes."""
    total = 0
    for file in path.rglob("*"):
        if file.is_file():
            info = file.stat()
            total += info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size
    return total


@app.command()
def stats(ctx: typer.Context) -> None:
    """How much is stored: users, records per kind, index points, size on disk."""
    settings = _state(ctx).settings
    with _memory(settings) as memory:
        numbers = memory.stats()
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("users", str(numbers["users"]))
    for kind, count in numbers["records"].items():
        table.add_row(f"{kind} records", f"{count:,}")
    table.add_row("index points", f"{numbers['index_points']:,}")
    for status, count in numbers["reflection_pending"].items():
        table.add_row(f"reflection runs {status}", f"[yellow]{count:,}[/]" if count else "0")
    table.add_row("data dir", f"{decimal(_disk_usage(settings.data_dir))}  [dim]{escape(str(settings.data_dir))}[/]")
    console.print(table)


@app.command()
def reconcile(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Argument(help="One user; default: every user with records.")] = None,
) -> None:
    """Check records against the index and repair the difference (unfinished writes replay on open)."""
    settings = _state(ctx).settings
    with _memory(settings) as memory:
        scopes = [_scope(settings, user)] if user else memory.records.scopes()
        repaired = {scope: memory.reconcile(scope) for scope in scopes}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("tenant/user")
    table.add_column("indexed", justify="right")
    table.add_column("orphans removed", justify="right")
    for scope, counts in repaired.items():
        table.add_row(escape(scope.key), str(counts["indexed"]), str(counts["orphans_removed"]))
    if repaired:
        console.print(table)
    fixed = sum(n for counts in repaired.values() for n in counts.values())
    checked = f"{len(repaired)} user{'s' if len(repaired) != 1 else ''} checked"
    console.print(f"[green]✓[/] {checked}, " + (f"{fixed} repaired" if fixed else "nothing to repair"))


# ====================================================================== demo
DEMO_QUERIES = (
    "Does Sam have any food allergies?",
    "What is the dog's name?",
    "Where does Sam work now?",
    "Who is coming to Lisbon in October?",
    "How should answers be formatted?",
)


def _reset_demo_dir(path: Path) -> None:
    """Wipe the demo's folder so every run starts alike, but only if it holds nothing but memory."""
    if not path.exists():
        return
    if not path.is_dir() or {p.name for p in path.iterdir()} - DEMO_DIR_ENTRIES:
        _fail(f"{path} holds other files; the demo only wipes a folder of its own")
    shutil.rmtree(path)


def _reflect_demo(memory: Memory, scope: Scope, model: str) -> None:
    """Run the reflection graph over the sample chat, as an app would after each conversation."""
    from personagraph.graphs.reflection import ReflectionConfig, build_reflection_graph
    from personagraph.graphs.reflection.runner import iter_reflect

    chat = None
    if model != "none":
        from personagraph.agents.llm import load_chat_model

        with err_console.status(f"loading {model}…"):
            chat = load_chat_model(model)
    graph = build_reflection_graph(memory, chat, config=ReflectionConfig(use_model=chat is not None, model_name=model))
    started = time.perf_counter()
    reports = [report for _, report in iter_reflect(memory, graph, scope, batch_size=8)]
    calls = sum(r.get("llm_calls", 0) for r in reports)
    how = "rules only, no LLM" if chat is None else f"{model}, {calls} model calls"
    console.print(f"[green]✓[/] reflected {len(reports)} batches in {time.perf_counter() - started:.1f} s ({how}); facts:")


def _fact_line(fact: Fact) -> str:
    """'Sam —lives_in→ Leeds  superseded on 2025-03-20': the triple (else the text) and when it held (markup)."""
    triple = f"{fact.subject} —{fact.predicate}→ {fact.object}" if fact.predicate else f'"{_short(fact.text, 80)}"'
    line = escape(triple)
    if fact.status != "active":
        return f"{line}  [dim]{fact.status} on {fact.valid_to:%Y-%m-%d}[/]"
    return f"{line}  [dim]since {fact.valid_from:%Y-%m-%d}[/]" if fact.valid_from else line


def _profile_rows(profile: Profile) -> list[tuple[str, str]]:
    """Non-empty profile fields as (field, value) pairs, nested style fields flattened."""
    rows: list[tuple[str, str]] = []
    for name, value in profile:
        if name == "style":
            rows += [(f"style.{key}", v.value) for key, v in value if v is not None]
        elif isinstance(value, list):
            rows += [(name, v.value) for v in value]
        elif value is not None:
            rows.append((name, value.value))
    return rows


def _show_search(memory: Memory, scope: Scope, query: str, top: int, note: str = "", **options: Any) -> None:
    console.print(f"\n[bold cyan]?[/] [bold]{escape(query)}[/]  [dim]{escape(note)}[/]")
    console.print(_results_table(memory.search(scope, query, k=top, **options).items))


@app.command()
def demo(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help=f"Folder for the demo's memory (wiped first; default ./{DEMO_DIR}).")] = None,
    model: Annotated[str, typer.Option(help='Reflection\'s model: "none" (rules only, instant) or "local:smollm2" (the offline LLM, about a minute).')] = "none",
) -> None:
    """A two-minute tour, offline: ingest a sample chat, reflect on it, recall, time travel, profile."""
    state = _state(ctx)
    folder = data_dir or state.data_dir_option or DEMO_DIR
    _reset_demo_dir(folder)
    # Always embedded and local: the demo must never write to a configured server.
    settings = state.settings.model_copy(update={"data_dir": folder, "postgres_url": None, "qdrant_url": None})
    scope = _scope(settings, DEMO_USER)
    sample = resources.files("personagraph").joinpath("samples/demo_conversation.jsonl")
    with resources.as_file(sample) as path:
        events = read_jsonl_messages(path)

    console.print(Rule("[bold]personagraph demo"))
    with _memory(settings) as memory:
        seconds = _add_with_progress(memory, scope, events)
        console.print(f"[green]✓[/] stored {len(events)} messages from Sam's March chats in {seconds:.1f} s")
        _reflect_demo(memory, scope, model)
        for fact in sorted(memory.facts(scope, status=None), key=lambda f: (f.predicate or "", f.created_at)):
            console.print(f"  • {_fact_line(fact)}")
        for query in DEMO_QUERIES:
            _show_search(memory, scope, query, top=3)

        console.print(Rule("[bold]time travel"))
        _show_search(memory, scope, "Where does Sam live?", top=1, note="now", kinds=["fact"])
        then = datetime(2025, 3, 15, tzinfo=UTC)
        note = f"as of {then:%d %B %Y}, before the move"
        _show_search(memory, scope, "Where does Sam live?", top=1, note=note, kinds=["fact"], as_of=then)

        console.print(Rule("[bold]profile"))
        profile = Table.grid(padding=(0, 2))
        profile.add_column(style="bold")
        profile.add_column()
        for name, value in _profile_rows(memory.profile(scope)):
            profile.add_row(name, escape(value))
        console.print(profile)

        console.print(Rule("[bold]personalized answers"))
        from .cli_chat import show_demo_answers

        show_demo_answers(settings, memory, scope)
    command = f'personagraph --data-dir {folder} recall {DEMO_USER} "your question"'
    console.print(f"\nexplore it: [bold]{escape(command)}[/]", soft_wrap=True)


# These modules register `reflect`, `inspect`, `chat`, `adapters`, `feedback`, `styles`, `graph`, `slack` and `discord` on `app`.
from . import cli_chat, cli_discord, cli_feedback, cli_graph, cli_reflection, cli_slack  # noqa: F401
