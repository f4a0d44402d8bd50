"""`personagraph discord`: the Discord bot over each person's memory, until Ctrl-C.

The token comes from the environment only (a command-line option would leave it in shell
history and process lists). discord.py is an optional extra, imported when the command runs,
so the rest of the command line works without it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Annotated

import typer
from rich.markup import escape

from .bridges import ChatService
from .cli import _fail, _state, app, console
from .cli_chat import assistant_session

TOKEN_VARIABLE = "DISCORD_BOT_TOKEN"


@app.command("discord")
def discord_command(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help='Model for prompting: "local:smollm2" or "provider:model". Default: $PERSONAGRAPH_RESPOND_MODEL.')] = None,
    prefix: Annotated[str, typer.Option(help="What starts a command, as in `!memory show`.")] = "!",
) -> None:
    """Run the Discord bot: it answers DMs and mentions in each person's own memory (token: $DISCORD_BOT_TOKEN)."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        _fail(f"{TOKEN_VARIABLE} is not set: export the token of your bot from the Discord developer portal (see docs/discord.md)")
    if importlib.util.find_spec("discord") is None:
        _fail("the Discord bot needs discord.py: pip install 'personagraph[discord]'")
    import discord

    from .bridges.discord_bot import build_discord_bot

    settings = _state(ctx).settings
    with assistant_session(settings, model) as assistant:
        bot = build_discord_bot(ChatService(assistant), prefix=prefix)
        console.print(f"Discord bot starting on memory in {escape(str(settings.data_dir))} (tenant {escape(settings.tenant)}); Ctrl-C stops it")
        try:
            bot.run(token)
        except discord.LoginFailure:
            _fail(f"Discord rejected {TOKEN_VARIABLE}: copy the bot's token again from the developer portal")
        except discord.PrivilegedIntentsRequired:
            _fail("switch on the Message Content intent for this bot in the Discord developer portal (Bot → Privileged Gateway Intents)")
