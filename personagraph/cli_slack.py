"""`personagraph slack`: run the Slack bot over this machine's memory, until stopped.

Tokens come from the environment, never the command line (where shell history and process
lists would keep them): SLACK_BOT_TOKEN always, then SLACK_SIGNING_SECRET for the Events API
over HTTP or SLACK_APP_TOKEN for Socket Mode.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from personagraph.memory.errors import ConfigurationError

from .cli import _state, app, console
from .cli_chat import assistant_session

if TYPE_CHECKING:
    from slack_bolt import App


def _env(name: str, why: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is not set: it holds {why} (see docs/slack.md)")
    return value


@app.command()
def slack(
    ctx: typer.Context,
    socket: Annotated[bool, typer.Option("--socket", help="Socket Mode (needs SLACK_APP_TOKEN): no public URL needed.")] = False,
    host: Annotated[str, typer.Option(help="HTTP mode: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="HTTP mode: the port; Slack posts to /slack/events.")] = 3000,
    model: Annotated[str | None, typer.Option(help='Model that answers: "local:smollm2" or "provider:model". Default: $PERSONAGRAPH_RESPOND_MODEL.')] = None,
) -> None:
    """Answer Slack mentions and direct messages from each person's own memory."""
    bot_token = _env("SLACK_BOT_TOKEN", "the bot token (xoxb-…)")
    app_token = _env("SLACK_APP_TOKEN", "the app-level token for Socket Mode (xapp-…)") if socket else None
    secret = None if socket else _env("SLACK_SIGNING_SECRET", "the signing secret that proves requests come from Slack")
    try:
        from slack_bolt.error import BoltError

        from .bridges.service import ChatService
        from .bridges.slack_app import build_slack_app
    except ImportError as exc:
        raise ConfigurationError(f"the Slack bot needs slack-bolt: pip install 'personagraph[slack]' ({exc})") from exc

    with assistant_session(_state(ctx).settings, model) as assistant:
        try:
            bolt = build_slack_app(ChatService(assistant), token=bot_token, signing_secret=secret)
        except BoltError as exc:
            raise ConfigurationError(f"Slack did not accept the bot token: {exc}") from exc
        except OSError as exc:  # no network, DNS, TLS: Slack could not be asked
            raise ConfigurationError(f"could not reach Slack to check the bot token: {exc}") from exc
        try:
            if app_token is not None:
                from slack_bolt.adapter.socket_mode import SocketModeHandler

                console.print("[bold]personagraph[/] is on Slack (Socket Mode); Ctrl-C stops it.")
                SocketModeHandler(bolt, app_token).start()
            else:
                _serve(bolt, host, port)
        except KeyboardInterrupt:
            console.print("stopped.")


def _serve(bolt: App, host: str, port: int) -> None:
    from .bridges.slack_app import EVENTS_PATH, http_server

    server = http_server(bolt, host, port)
    url = f"http://{host}:{server.server_port}{EVENTS_PATH}"
    console.print(f"[bold]personagraph[/] is listening for Slack at {escape(url)}; Ctrl-C stops it.")
    try:
        server.serve_forever()
    finally:
        server.server_close()
