"""`personagraph feedback …` and `personagraph styles …`: give feedback on answers, see the
preference data it makes, align a user's adapter on it, and build style soups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from personagraph.agents.alignment.align import PreferenceOutcome
from personagraph.agents.alignment.preferences import preference_data, to_datasets
from personagraph.agents.alignment.style_library import (
    StyleAdapterReport,
    build_style_adapters,
    style_reports,
    user_soup_weights,
)
from personagraph.agents.alignment.trainer import PreferenceConfig

from .cli import _memory, _scope, _short, _state, app, console, err_console
from .cli_chat import assistant_session

feedback_app = typer.Typer(help="Feedback on answers, the preference data it makes, and alignment on it.", no_args_is_help=True)
styles_app = typer.Typer(help="Style adapters (concise ↔ detailed, formal ↔ casual) and per-user soups of them.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")
app.add_typer(styles_app, name="styles")


@feedback_app.command("add")
def feedback_add(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose answer it was.")],
    reply_id: Annotated[str, typer.Argument(help="The answer's id (`chat --ids` shows it).")],
    up: Annotated[bool, typer.Option("--up", help="Thumbs up.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Thumbs down.")] = False,
    edit: Annotated[str | None, typer.Option(help="The answer as the user would have written it.")] = None,
    alt: Annotated[list[str] | None, typer.Option(help="An answer the user chose among (repeat; the reply is not added).")] = None,
    choose: Annotated[int | None, typer.Option(min=0, help="Index of the chosen --alt.")] = None,
    comment: Annotated[str | None, typer.Option(help="What the user said about the answer.")] = None,
) -> None:
    """Record one piece of feedback: --up/--down, --edit TEXT, or --alt A --alt B --choose N."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    given = [up or down, edit is not None, choose is not None]
    if sum(given) != 1 or (up and down):
        err_console.print("[bold red]error:[/] give exactly one of --up, --down, --edit, or --alt … --choose N")
        raise typer.Exit(2)
    with assistant_session(settings) as assistant:
        if edit is not None:
            feedback = assistant.edit(scope, reply_id, edit, comment=comment)
        elif choose is not None:
            feedback = assistant.choose(scope, reply_id, alt or [], choose)
        else:
            feedback = assistant.thumbs(scope, reply_id, up, comment=comment)
        data = assistant.preference_data(scope).counts()
        learned = [f.text for f in assistant.learned_instructions(scope)]
    console.print(f"[green]✓[/] recorded {feedback.feedback_kind} feedback {feedback.id}")
    console.print(f"  preference data now: {data['dpo_pairs']} DPO pairs, {data['kto_rows']} KTO rows, {data['sft_examples']} SFT examples")
    if learned:
        console.print(f"  learned instructions: {escape('; '.join(learned))}")


@feedback_app.command("list")
def feedback_list(ctx: typer.Context, user: Annotated[str, typer.Argument(help="Whose feedback.")]) -> None:
    """USER's feedback, oldest first."""
    settings = _state(ctx).settings
    with _memory(settings) as memory:
        items = memory.feedback(_scope(settings, user))
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "kind", "given", "request", "what", "comment"):
        table.add_column(column)
    for f in items:
        what = f.rating or (f"chose {f.chosen} of {len(f.alternatives)}" if f.feedback_kind == "choice" else _short(f.edited or "", 40))
        table.add_row(f.id, f.feedback_kind, f"{f.created_at:%Y-%m-%d %H:%M}", escape(_short(f.query, 40)), escape(what), escape(f.comment or ""))
    console.print(table if items else f"no feedback from {escape(user)}")


@feedback_app.command("data")
def feedback_data(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose preference data.")],
    export: Annotated[Path | None, typer.Option(help="Write it as a Hugging Face dataset (kto, dpo, sft splits) to this folder.")] = None,
) -> None:
    """What USER's feedback gives to learn from, optionally exported for TRL or the Hub."""
    settings = _state(ctx).settings
    with _memory(settings) as memory:
        data = preference_data(memory.feedback(_scope(settings, user)))
    counts = data.counts()
    console.print(f"{counts['feedback']} feedback → {counts['dpo_pairs']} DPO pairs, {counts['kto_rows']} KTO rows, {counts['sft_examples']} SFT examples")
    if export is not None:
        to_datasets(data).save_to_disk(str(export))
        console.print(f"[green]✓[/] wrote {escape(str(export))} (load with datasets.load_from_disk)")


@feedback_app.command("train")
def feedback_train(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose adapter to align.")],
    method: Annotated[str, typer.Option(help="auto (DPO with pairs, else KTO), dpo or kto.")] = "auto",
    seconds: Annotated[float | None, typer.Option(min=1, help="Time budget. Default: $PERSONAGRAPH_PREFERENCE_TRAIN_SECONDS.")] = None,
) -> None:
    """Align USER's adapter on their feedback; it is served only if held-out preferences improve."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    if method not in ("auto", "dpo", "kto"):
        err_console.print(f"[bold red]error:[/] method is auto, dpo or kto, not {escape(method)!r}")
        raise typer.Exit(2)
    config = PreferenceConfig(method=method, time_budget_s=seconds or settings.preference_train_seconds)  # type: ignore[arg-type]
    with assistant_session(settings) as assistant, err_console.status(f"aligning for up to {config.time_budget_s:.0f} s…"):
        outcome = assistant.train_preferences(scope, config)
    _print_outcome(outcome)


def _print_outcome(outcome: PreferenceOutcome) -> None:
    record = outcome.record
    if outcome.reused:
        console.print(f"[green]✓[/] already aligned on exactly this feedback: {record.id} ({record.status})")
    elif outcome.registered:
        console.print(f"[green]✓[/] registered {record.objective} adapter {record.id}: {escape(record.reason)}")
    else:
        console.print(f"[yellow]![/] not registered: {escape(record.reason)}")
    if outcome.run:
        console.print(f"  {outcome.run.steps} steps in {outcome.run.seconds:.0f} s (stopped by {outcome.run.stopped_by})")


@feedback_app.command("instructions")
def feedback_instructions(ctx: typer.Context, user: Annotated[str, typer.Argument(help="Whose instructions.")]) -> None:
    """What USER's edits and corrections taught about how they want answers."""
    from personagraph.agents.alignment.instructions import instruction_facts

    settings = _state(ctx).settings
    with _memory(settings) as memory:
        facts = instruction_facts(memory, _scope(settings, user))
    for fact in facts:
        console.print(f"  • {escape(fact.text)} [dim]({fact.id}, from {len(fact.sources)} messages, since {fact.created_at:%Y-%m-%d})[/]")
    if not facts:
        console.print(f"nothing learned yet from {escape(user)}'s feedback")


@feedback_app.command("delete")
def feedback_delete(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose feedback.")],
    feedback_id: Annotated[str, typer.Argument(help="Which feedback.")],
) -> None:
    """Delete one piece of feedback and every adapter trained on it."""
    settings = _state(ctx).settings
    with assistant_session(settings) as assistant:
        deleted = assistant.delete_feedback(_scope(settings, user), feedback_id)
    console.print(f"[green]✓[/] deleted {escape(', '.join(deleted))}")


@styles_app.command("build")
def styles_build(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option(min=1, help="Time budget per style adapter.")] = 120.0,
    questions: Annotated[int | None, typer.Option(min=4, help="Use only the first N built-in questions (faster).")] = None,
) -> None:
    """Train the style adapters once (the local model answers our questions; each answer is
    cut into its two poles; one DPO adapter per dimension)."""
    from personagraph.agents.adapters.training import load_training_base
    from personagraph.agents.alignment.soups import STYLE_QUESTIONS

    settings = _state(ctx).settings
    root = settings.styles_path
    with err_console.status("generating answers and training the style adapters…"):
        base, tokenizer = load_training_base()
        reports = build_style_adapters(base, tokenizer, root, config=PreferenceConfig(method="dpo", time_budget_s=seconds),
                                       questions=STYLE_QUESTIONS[:questions] if questions else STYLE_QUESTIONS)
    _style_table(reports)
    console.print(f"[green]✓[/] style adapters in {escape(str(root))}")


@styles_app.command("list")
def styles_list(ctx: typer.Context) -> None:
    """The style adapters built, with what they measured on held-out pairs."""
    reports = style_reports(_state(ctx).settings.styles_path)
    if not reports:
        console.print("no style adapters yet: run `personagraph styles build`")
        return
    _style_table(reports)


def _style_table(reports: list[StyleAdapterReport]) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("dimension", "+ pole", "- pole", "train pairs", "held out", "accuracy", "per-token accuracy", "margin", "steps"):
        table.add_column(column)
    for r in reports:
        table.add_row(r.dimension, r.positive, r.negative, str(r.train_pairs), str(r.heldout_pairs),
                      f"{r.acc_before:.0%} → {r.acc_after:.0%}", f"{r.token_acc_before:.0%} → {r.token_acc_after:.0%}",
                      f"{r.margin_before:+.1f} → {r.margin_after:+.1f}", str(r.steps))
    console.print(table)


@styles_app.command("soup")
def styles_soup(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose soup.")],
    length: Annotated[float | None, typer.Option(min=-1, max=1, help="Override: +1 concise … -1 detailed.")] = None,
    tone: Annotated[float | None, typer.Option(min=-1, max=1, help="Override: +1 formal … -1 casual.")] = None,
) -> None:
    """Merge the style adapters for USER (weights from their profile and feedback, or given)."""
    settings = _state(ctx).settings
    scope = _scope(settings, user)
    with assistant_session(settings) as assistant:
        weights = user_soup_weights(assistant.registry, scope)
        for name, value in (("length", length), ("tone", tone)):
            if value is not None:
                weights[name] = value
        outcome = assistant.build_soup(scope, weights)
    console.print(f"[green]✓[/] {'reused' if outcome.reused else 'registered'} soup {outcome.record.id}: {escape(outcome.record.reason)}")
    console.print(f"  weights: {json.dumps(outcome.weights)}")
