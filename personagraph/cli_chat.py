"""`personagraph chat` and `personagraph adapters …`: talk to a user's personalized assistant,
and train, list, evaluate or delete the user's own adapters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from personagraph.agents.adapters.registry import AdapterRegistry
from personagraph.agents.adapters.training import TrainConfig
from personagraph.memory.errors import PersonagraphError
from personagraph.memory.models import AdapterKind
from personagraph.memory.scope import Scope

from .assistant import Assistant, Reply
from .cli import _memory, _scope, _short, _state, app, console, err_console
from .settings import Settings

CHAT_HELP = ("commands: /plan (show plans) /memories (show memories used) /up /down [comment] (rate the last answer) "
             "/edit TEXT (rewrite it) /more (two other answers) /pick N (choose one) /quit")


def _assistant(settings, memory, model: str | None) -> Assistant:  # type: ignore[no-untyped-def]
    return Assistant(
        memory, chat_model=model or settings.respond_model, reflection_model=settings.chat_model,
        settings=settings,
    )


@contextmanager
def assistant_session(settings: Settings, model: str | None = None) -> Iterator[Assistant]:
    """An assistant over the settings' memory for one command, closed (and the memory with it)
    when the command ends."""
    with _memory(settings) as memory:
        assistant = _assistant(settings, memory, model)
        try:
            yield assistant
        finally:
            assistant.close()


def _show_plan(reply: Reply) -> None:
    plan = reply.plan
    kinds = ", ".join(plan.memory_kinds) or "none"
    console.print(f"[dim]plan: {plan.backend} on {plan.generator} ({plan.policy}); memories: {kinds} k={plan.k}[/]")
    for reason in plan.reasons:
        console.print(f"[dim]  · {escape(reason)}[/]")
    timings = " ".join(f"{k}={v:.0f}ms" for k, v in reply.timings_ms.items())
    console.print(f"[dim]  timings: {timings}[/]")


def _show_memories(reply: Reply) -> None:
    used = {u.record_id: u.reason for u in reply.used}
    if not reply.quotes:
        console.print("[dim]memories: none quoted[/]")
        return
    for quote in reply.quotes:
        mark = f"[green]used ({used[quote.record_id]})[/]" if quote.record_id in used else "[dim]quoted[/]"
        console.print(f"[dim]  [{quote.handle}] {quote.kind} {quote.record_id}[/] {mark} {escape(_short(quote.text, 120))}")


@app.command()
def chat(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Who is talking.")],
    model: Annotated[str | None, typer.Option(help='Model for prompting: "local:smollm2" or "provider:model". Default: $PERSONAGRAPH_RESPOND_MODEL.')] = None,
    message: Annotated[list[str] | None, typer.Option("--message", "-m", help="Send this message and exit (repeatable); no REPL.")] = None,
    thread: Annotated[str, typer.Option(help="Conversation thread the exchange is stored under.")] = "chat",
    plan: Annotated[bool, typer.Option("--plan", help="Show each plan and its reasons.")] = False,
    memories: Annotated[bool, typer.Option("--memories", help="Show the memories quoted and used.")] = False,
    local_only: Annotated[bool, typer.Option("--local-only", help="Nothing leaves this machine: the local model answers.")] = False,
    latency_budget_ms: Annotated[int | None, typer.Option(min=1, help="Latency budget the planner respects.")] = None,
    ids: Annotated[bool, typer.Option("--ids", help="Show each answer's id (for `personagraph feedback add`).")] = False,
) -> None:
    """Chat with USER's personalized assistant; exchanges become memory in the background."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    show = {"plan": plan, "memories": memories}
    with _memory(settings) as memory:
        assistant = _assistant(settings, memory, model)
        last: dict[str, object] = {}
        try:
            def ask(text: str) -> None:
                with err_console.status("thinking…"):
                    reply = assistant.respond(scope, text, thread_id=thread, local_only=local_only, latency_budget_ms=latency_budget_ms)
                console.print(f"[bold cyan]assistant>[/] {escape(reply.answer)}")
                if ids:
                    console.print(f"[dim]  id: {reply.reply_id}[/]")
                last.update(reply=reply, options=[])
                if show["plan"]:
                    _show_plan(reply)
                if show["memories"]:
                    _show_memories(reply)

            if message:
                for text in message:
                    console.print(f"[bold]{escape(user)}>[/] {escape(text)}")
                    ask(text)
                return
            console.print(f"[dim]{CHAT_HELP}[/]")
            while True:
                try:
                    text = console.input(f"[bold]{escape(user)}>[/] ").strip()
                except EOFError:
                    break
                if text in ("/quit", "/exit"):
                    break
                if text in ("/plan", "/memories"):
                    show[text[1:]] = not show[text[1:]]
                    console.print(f"[dim]{text[1:]} {'on' if show[text[1:]] else 'off'}[/]")
                elif text.startswith("/"):
                    _feedback_command(assistant, scope, text, last)
                elif text:
                    ask(text)
        finally:
            busy = assistant.retraining is not None and assistant.retraining.pending()
            note = "saving the conversation to memory and finishing adapter training…" if busy else "saving the conversation to memory…"
            with err_console.status(note):
                assistant.close()


def _feedback_command(assistant: Assistant, scope: Scope, text: str, last: dict[str, Any]) -> None:
    """/up, /down, /edit, /more and /pick on the last answer of the REPL."""
    command, _, rest = text.partition(" ")
    reply = last.get("reply")
    if reply is None or not reply.reply_id:
        console.print("[dim]no answer to give feedback on yet[/]")
        return
    try:
        if command in ("/up", "/down"):
            fb = assistant.thumbs(scope, reply.reply_id, command == "/up", comment=rest.strip() or None)
        elif command == "/edit" and rest.strip():
            fb = assistant.edit(scope, reply.reply_id, rest.strip())
        elif command == "/more":
            with err_console.status("sampling other answers…"):
                sampled = [reply.answer, *assistant.alternatives(scope, reply.reply_id, 2)]
                last["options"] = list({text.strip(): text for text in sampled if text.strip()}.values())  # distinct answers only
            for n, option in enumerate(last["options"]):
                console.print(f"  [bold]{n}[/] {escape(option)}")
            console.print("[dim]choose with /pick N[/]")
            return
        elif command == "/pick" and rest.strip().isdigit() and last.get("options"):
            fb = assistant.choose(scope, reply.reply_id, last["options"], int(rest))
        else:
            console.print(f"[dim]{CHAT_HELP}[/]")
            return
    except PersonagraphError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return
    counts = assistant.preference_data(scope).counts()
    console.print(f"[dim]recorded {fb.feedback_kind} feedback; {counts['dpo_pairs']} pairs, {counts['kto_rows']} thumbs so far[/]")


DEMO_REQUESTS = ("Where do I live now?", "Write a short note to my sister about our trip", "What is the capital of Portugal?")


def show_demo_answers(settings, memory, scope) -> None:  # type: ignore[no-untyped-def]
    """The demo's last part: the planner's choice for three kinds of request, and one answer
    from the local model with the memories it was given and used."""
    demo_settings = settings.model_copy(update={"adapter_auto_train": False})
    assistant = Assistant(memory, chat_model=settings.respond_model, reflection_model="none", settings=demo_settings)
    try:
        for n, text in enumerate(DEMO_REQUESTS):
            console.print(f"[bold]sam>[/] {escape(text)}")
            if n == 0:
                with err_console.status("loading the local model and answering…"):
                    reply = assistant.respond(scope, text, thread_id="demo")
                console.print(f"[bold cyan]assistant>[/] {escape(reply.answer)}")
                _show_plan(reply)
                _show_memories(reply)
                console.print(
                    "[dim](SmolLM2-135M is tiny: the memories above are right, its answer may not be. "
                    "PERSONAGRAPH_RESPOND_MODEL=provider:model answers with a bigger model.)[/]"
                )
                _demo_feedback(assistant, scope, reply)
            else:
                plan = assistant.plan(scope, text)
                console.print(f"[dim]plan: {plan.backend}; memories: {', '.join(plan.memory_kinds) or 'none'} k={plan.k}[/]")
                console.print(f"[dim]  · {escape(plan.reasons[-1])}[/]")
    finally:
        assistant.close()


def _demo_feedback(assistant: Assistant, scope: Scope, reply: Reply) -> None:
    """Sam rewrites the answer: the edit is kept as preference data and teaches an instruction."""
    if not reply.reply_id:
        return
    edited = "You live in Bristol now." if reply.answer.strip() != "You live in Bristol now." else "Bristol."
    assistant.edit(scope, reply.reply_id, edited)
    counts = assistant.preference_data(scope).counts()
    console.print(f"[bold]sam edits the answer to>[/] {escape(edited)}")
    console.print(f"[dim]  kept as preference data: {counts['dpo_pairs']} DPO pair, {counts['sft_examples']} SFT example "
                  "(`personagraph feedback train sam` aligns Sam's adapter on it)[/]")
    for fact in assistant.learned_instructions(scope):
        console.print(f"[dim]  learned instruction: {escape(fact.text)} (now part of every prompt for Sam)[/]")


adapters_app = typer.Typer(help="Train, list, evaluate and delete a user's own adapters.", no_args_is_help=True)
app.add_typer(adapters_app, name="adapters")


@adapters_app.command("train")
def adapters_train(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose adapter to train.")],
    kind: Annotated[str, typer.Option(help="lora, or prompt (a soft prompt of a few virtual tokens).")] = "lora",
    seconds: Annotated[float | None, typer.Option(min=1, help="Training time budget. Default: $PERSONAGRAPH_ADAPTER_TRAIN_SECONDS.")] = None,
    if_due: Annotated[bool, typer.Option("--if-due", help="Only train when enough new messages arrived.")] = False,
) -> None:
    """Train USER's adapter from their memory; it is kept only if it beats the base model."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    adapter_kind = _kind(kind)
    with _memory(settings) as memory:
        assistant = _assistant(settings, memory, None)
        try:
            due, why = assistant.registry.retrain_due(scope, adapter_kind)
            if if_due and not due:
                console.print(f"[green]✓[/] not due: {escape(why)}")
                return
            config = TrainConfig(kind=adapter_kind, time_budget_s=seconds or settings.adapter_train_seconds)
            outcome = assistant.train_adapter(scope, adapter_kind, config=config)
        finally:
            assistant.close()
    record = outcome.record
    if outcome.reused:
        console.print(f"[green]✓[/] already trained on exactly this data: {record.id} ({record.status})")
    elif outcome.registered:
        console.print(f"[green]✓[/] registered {record.adapter_kind} adapter {record.id}: {escape(record.reason)}")
    else:
        console.print(f"[yellow]![/] not registered: {escape(record.reason)}")
    if outcome.report:
        r = outcome.report
        console.print(f"  {r.steps} steps in {r.seconds:.0f} s (stopped by {r.stopped_by}), {len(outcome.record.sources)} messages used")


@adapters_app.command("list")
def adapters_list(ctx: typer.Context, user: Annotated[str, typer.Argument(help="Whose adapters.")]) -> None:
    """USER's adapters, newest first, with their held-out figures."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    with _memory(settings) as memory:
        records = memory.adapters(scope)
        registry = AdapterRegistry(memory, settings.adapters_path)
        fresh = {a.id: registry.messages_since(scope, a, a.speaker or None) for a in records}
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "kind", "objective", "status", "base ppl", "adapter ppl", "gain", "preference acc", "examples", "held out", "created", "fresh msgs"):
        table.add_column(column)
    for a in records:
        m = a.metrics
        prefs = f"{m['pref_acc_before']:.0%} → {m['pref_acc_after']:.0%}" if "pref_acc_after" in m else ""
        table.add_row(
            a.id, a.adapter_kind, a.objective, a.status, f"{m.get('base_ppl', 0):.2f}", f"{m.get('adapter_ppl', 0):.2f}",
            f"{a.gain:+.1%}", prefs, str(a.example_count), str(a.heldout_count), f"{a.created_at:%Y-%m-%d %H:%M}", str(fresh[a.id]),
        )
    console.print(table if records else f"no adapters for {escape(user)}")


@adapters_app.command("eval")
def adapters_eval(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose adapter.")],
    adapter_id: Annotated[str | None, typer.Option("--id", help="Which adapter; default the current one.")] = None,
) -> None:
    """Measure held-out perplexity of base and adapter again."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    with _memory(settings) as memory:
        assistant = _assistant(settings, memory, None)
        try:
            current = assistant.registry.current(scope)
            target = adapter_id or (current.id if current else None)
            if target is None:
                err_console.print(f"[bold red]error:[/] {escape(user)} has no registered adapter")
                raise typer.Exit(2)
            with err_console.status("evaluating…"):
                metrics = assistant.registry.evaluate(scope, target)
        finally:
            assistant.close()
    console.print(
        f"{target}: held-out perplexity {metrics['adapter_ppl']:.2f} vs base {metrics['base_ppl']:.2f} "
        f"({metrics['gain']:+.1%}) on {int(metrics['heldout'])} messages"
    )


@adapters_app.command("delete")
def adapters_delete(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose adapters.")],
    kind: Annotated[str | None, typer.Option(help="Only this kind (lora or prompt).")] = None,
) -> None:
    """Delete USER's adapters: records and weights."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    with _memory(settings) as memory:
        deleted = memory.adapters(scope, adapter_kind=_kind(kind) if kind else None)
        for record in deleted:
            memory.delete_adapter(scope, record.id)
    console.print(f"[green]✓[/] deleted {len(deleted)} adapter(s) of {escape(user)}")


def _kind(value: str) -> AdapterKind:
    if value not in ("lora", "prompt"):
        err_console.print(f"[bold red]error:[/] adapter kind is lora or prompt, not {escape(value)!r}")
        raise typer.Exit(2)
    return value  # type: ignore[return-value]
