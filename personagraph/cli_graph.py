"""`personagraph graph …`: check, draw and run declarative graph specs (YAML or JSON).

`run` keeps each thread's checkpoints in <data dir>/graphs.sqlite, so a run that stopped to ask
a human (an interrupt) is answered by a later command with `--resume VALUE` on the same thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command
from pydantic_core import to_jsonable_python
from rich.markup import escape

from personagraph.graphs.spec import (
    SpecRuntime,
    compile_spec,
    diagram,
    load_spec,
    spec_json_schema,
    to_mermaid,
)
from personagraph.graphs.spec.state import state_fields
from personagraph.memory import Scope
from personagraph.memory.errors import InvalidRecordError
from personagraph.memory.redaction import redact_value

from .cli import _state, app, console
from .cli_chat import assistant_session
from .graph_checkpoints import checkpoints_path, thread_id

graph_app = typer.Typer(help="Declarative graphs: validate, draw and run YAML/JSON graph specs.", no_args_is_help=True)
app.add_typer(graph_app, name="graph")

SpecFile = Annotated[Path, typer.Argument(help="A graph spec, .yaml or .json.")]
SCOPE_FIELDS = ("tenant", "user_id", "thread_id")  # filled from --user, the tenant and --thread where the state has them


@graph_app.command("validate")
def validate(file: SpecFile) -> None:
    """Check a spec: its shape, factories, params, state and flow (errors name file:line: field)."""
    spec = load_spec(file)
    counts = ", ".join(_count(len(items), word) for items, word in ((spec.nodes, "node"), (spec.edges, "edge"), (spec.branches, "branch")))
    console.print(f"[green]✓[/] {escape(str(file))}: {escape(spec.name or file.stem)}, {counts}, state {'+'.join(spec.state.schemas)}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('ch') else 's'}"


@graph_app.command("schema")
def schema() -> None:
    """Print the spec format's JSON Schema (also in schemas/graph-spec.schema.json)."""
    typer.echo(json.dumps(spec_json_schema(), indent=2))


@graph_app.command("draw")
def draw(
    file: SpecFile,
    out: Annotated[Path, typer.Option(help="Folder for NAME.mmd (Mermaid) and NAME.png.")] = Path("."),
) -> None:
    """Draw a spec as Mermaid and as a PNG rendered on this machine."""
    from personagraph.graphs.spec.png import render_png

    spec = load_spec(file)
    chart = diagram(spec)
    out.mkdir(parents=True, exist_ok=True)
    stem = spec.name or file.stem
    (out / f"{stem}.mmd").write_text(to_mermaid(chart), encoding="utf-8")
    render_png(chart, out / f"{stem}.png")
    console.print(f"[green]✓[/] wrote {escape(str(out / stem))}.mmd and .png")


@graph_app.command("run")
def run(
    ctx: typer.Context,
    file: SpecFile,
    user: Annotated[str, typer.Option("--user", "-u", help="Whose memory the graph works on.")],
    thread: Annotated[str, typer.Option(help="Conversation thread (and the run's checkpoint thread).")] = "default",
    input_json: Annotated[str | None, typer.Option("--input", help="The input state as a JSON object.")] = None,
    query: Annotated[str | None, typer.Option(help="Shorthand for --input '{\"query\": TEXT}'.")] = None,
    resume: Annotated[str | None, typer.Option(help="Answer the thread's pending interrupt (JSON, or plain text).")] = None,
    model: Annotated[str | None, typer.Option(help='Chat model: "local:smollm2" or "provider:model". Default: $PERSONAGRAPH_RESPOND_MODEL.')] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole final state as JSON.")] = False,
) -> None:
    """Run a spec over USER's memory; a run that stops for a human resumes with --resume."""
    settings = _state(ctx).settings
    spec = load_spec(file)
    fields, _ = state_fields(list(spec.state.schemas), dict(spec.state.fields))
    if resume is not None and (input_json is not None or query is not None):
        raise typer.BadParameter("--resume answers a pending run; it takes no --input or --query", param_hint="--resume")
    given = {} if resume is not None else _input(input_json, query, set(fields))
    scope_values = {"tenant": settings.tenant, "user_id": user, "thread_id": thread}
    values = {key: scope_values[key] for key in SCOPE_FIELDS if key in fields} | given
    name = spec.name or file.stem
    config: dict[str, Any] = {"configurable": {
        "thread_id": thread_id(Scope(tenant=settings.tenant, user_id=user), name, thread), "user_id": user, "tenant": settings.tenant,
    }}
    with assistant_session(settings, model) as assistant, SqliteSaver.from_conn_string(str(checkpoints_path(settings))) as saver:
        values = redact_value(assistant.memory.redactor, values)  # the checkpoint keeps the input: no secret in it
        graph = compile_spec(spec, SpecRuntime.from_assistant(assistant), checkpointer=saver)
        pending = graph.get_state(config).interrupts
        if resume is not None and not pending:
            raise InvalidRecordError(f"thread {thread!r} of {name} has nothing waiting to be resumed")
        if resume is None and pending:
            raise InvalidRecordError(f"thread {thread!r} of {name} is waiting for an answer: run again with --resume VALUE")
        if resume is None:
            saver.delete_thread(config["configurable"]["thread_id"])  # a new run starts clean; memory keeps the history
            result = graph.invoke(values, config)
        else:
            result = graph.invoke(Command(resume=_value(resume)), config)
    _show(result, as_json, f"personagraph graph run {file} --user {user} --thread {thread} --resume VALUE")


def _input(input_json: str | None, query: str | None, fields: set[str]) -> dict[str, Any]:
    try:
        given = json.loads(input_json) if input_json is not None else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg} (column {exc.colno})", param_hint="--input") from None
    if not isinstance(given, dict):
        raise typer.BadParameter("the input state is a JSON object", param_hint="--input")
    if named := sorted(set(given) & {"tenant", "user_id"}):
        raise typer.BadParameter(f"{', '.join(named)}: --user and the settings' tenant name the user; the input may not", param_hint="--input")
    if query is not None:
        given["query"] = query
    if unknown := sorted(set(given) - fields):
        raise typer.BadParameter(f"{', '.join(unknown)} not in this graph's state (fields: {', '.join(sorted(fields))})", param_hint="--input")
    return given


def _value(text: str) -> Any:
    """A resume value: JSON when it parses (true, {"approved": false}), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _show(result: dict[str, Any], as_json: bool, resume_hint: str) -> None:
    if interrupts := result.get("__interrupt__"):
        for pending in interrupts:
            console.print(f"[bold yellow]waiting:[/] {escape(json.dumps(to_jsonable_python(pending.value, fallback=str)))}")
        console.print(f"[dim]answer with: {escape(resume_hint)}[/]", soft_wrap=True)
    elif as_json:
        typer.echo(json.dumps(to_jsonable_python(result, fallback=str), indent=2))
    elif "answer" in result:
        console.print(f"[bold cyan]assistant>[/] {escape(str(result['answer']))}")
        if plan := result.get("plan"):
            console.print(f"[dim]plan: {plan.backend} on {plan.generator}[/]")
    else:
        typer.echo(json.dumps(to_jsonable_python(result.get("report", result), fallback=str), indent=2))
