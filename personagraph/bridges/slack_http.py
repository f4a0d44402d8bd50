"""Requests Bolt should never see: the HTTP front of the Slack app refuses them with a 4xx.

Bolt parses the body before it checks the signature, and answers a body it cannot parse, a
timestamp that is not a number, or an event of the wrong shape with an exception (a 500 behind
the WSGI adapter). Found by the reliability suite's fuzzing; each case is a client error, so it
gets 400 (a malformed body) or 401 (a request that cannot be verified) and nothing runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

_EVENT_TEXT_FIELDS = ("text", "user", "channel", "channel_type", "ts", "thread_ts", "reaction", "subtype", "bot_id")
_COMMAND_FIELDS = ("command", "user_id", "team_id", "channel_id", "response_url")


def _header(headers: Mapping[str, str | Sequence[str]], name: str) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == name), None)
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value  # type: ignore[return-value]


def _shape_problem(body: Any) -> str | None:
    """Why a parsed body cannot be a Slack request Bolt can route, or None."""
    if not isinstance(body, dict):
        return "the body is not an object"
    if body.get("type") == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "an event callback without an event object"
        if any(k in event and not isinstance(event[k], str | None) for k in _EVENT_TEXT_FIELDS):
            return "an event whose text, user, channel or timestamps are not strings"
    elif "command" in body and not all(isinstance(body.get(f), str) and body.get(f) for f in _COMMAND_FIELDS):
        return "a slash command without its command, user, team, channel and response URL"
    return None


def checked_dispatch(app: App, body: str, headers: Mapping[str, str | Sequence[str]], query: str = "") -> BoltResponse:
    """`app.dispatch` for a request from the network: a malformed one gets a 4xx instead of a crash."""
    timestamp = _header(headers, "x-slack-request-timestamp")
    if timestamp is not None and not (timestamp.strip().isascii() and timestamp.strip().isdigit()):
        return BoltResponse(status=401, body={"error": "invalid request"})
    try:
        request = BoltRequest(body=body, query=query, headers=dict(headers))  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError, KeyError):
        return BoltResponse(status=400, body={"error": "malformed body"})
    if problem := _shape_problem(request.body):
        return BoltResponse(status=400, body={"error": problem})
    return app.dispatch(request)


class CheckedRequestHandler(SlackRequestHandler):
    """Bolt's WSGI handler, dispatching through `checked_dispatch`."""

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        return checked_dispatch(self.app, request.get_body(), request.get_headers(), request.query_string)
