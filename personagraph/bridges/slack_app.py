"""The Slack bot: a Bolt app over the `ChatService`, for the Events API over HTTP or Socket Mode.

Slack wants every request acknowledged within 3 seconds, and answering can take longer (a local
model, retrieval, storage). Bolt's default (`process_before_response=False`) acknowledges events
before their listener runs in its thread pool, and the listeners only hand answers on to a pool
of their own: Bolt's threads stay free, so even with every answer thread busy, `/memory` (which
acknowledges first and replies through the command's `response_url`) is acknowledged at once.

A person is `(enterprise or team, user)`, taken from the ids Bolt resolved for the actor (in a
Slack Connect channel the actor may come from another organisation; when Bolt cannot tell which,
the message is left unanswered rather than filed under the wrong person). Raw ids only ever reach
Slack and the service, which hashes them into labels.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any, Generic, TypeVar
from wsgiref.simple_server import WSGIServer, make_server

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from personagraph.memory.errors import InvalidRecordError, PersonagraphError

from .service import ChatService, Speaker, receipt_text
from .slack_http import CheckedRequestHandler

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
EXPORT_FILENAME = "personagraph-memory.json"
MEMORY_HELP = (
    "`/memory show`: what I know about you · `/memory export`: all of it as a JSON file, sent to you privately · "
    "`/memory forget confirm`: delete everything I know about you, for good"
)
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#[CG][A-Z0-9]+(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")  # <!channel>, <!subteam^S1|@devs>
_LINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^|>]+)(?:\|([^>]*))?>")
_log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


def build_slack_app(
    service: ChatService, *, signing_secret: str | None, token: str | None = None, client: WebClient | None = None,
    executor: Executor | None = None, answer_executor: Executor | None = None,
) -> App:
    """The Bolt app answering mentions and direct messages in thread, taking 👍/👎 on its
    answers as the asker's feedback and serving `/memory`. `signing_secret=None` is for Socket
    Mode: a random secret then makes sure no HTTP request can ever pass verification.
    The bot token comes as `token`, or inside a Web API `client` of your own (another base URL,
    a proxy). `executor` runs Bolt's listeners (its default: 5 threads), `answer_executor` the
    answers (default: 2 threads, sized to what one local model serves)."""
    answers = answer_executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="slack-answer")
    return _listen(service, answers, App(
        name="personagraph",
        token=token,
        client=client,
        signing_secret=signing_secret or secrets.token_urlsafe(32),
        process_before_response=False,  # ack first, answer in the listener threads
        listener_executor=executor,
    ))


def _listen(service: ChatService, answers: Executor, app: App) -> App:
    """Registers the bot's listeners on `app`."""
    seen = _Recent[str, bool]()
    names = _Names()

    def first_delivery(body: dict[str, Any]) -> bool:
        event_id = body.get("event_id")
        return not event_id or seen.add(event_id, True)  # Slack redelivers an event it thinks was missed

    def answer(body: dict[str, Any], event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        person = _person(context)
        if person is None or event.get("bot_id") or not first_delivery(body):
            return  # an unidentifiable actor, a bot (ourselves included) or a redelivered event
        if not isinstance(event.get("channel"), str) or not isinstance(event.get("ts"), str):
            return  # nowhere to answer: not a message Slack sends
        answers.submit(answer_now, person, event, context.bot_user_id, client)

    def answer_now(person: tuple[str, str], event: dict[str, Any], bot_user_id: str | None, client: WebClient) -> None:
        org = person[0]
        speaker = Speaker(PLATFORM, person, names.of(client, org, person[1]))
        channel, thread = event["channel"], event.get("thread_ts") or event["ts"]
        # A DM is one conversation (its history carries over); in a channel each thread is one.
        conversation = (channel,) if event.get("channel_type") == "im" and not event.get("thread_ts") else (channel, thread)
        text = _plain_text(event.get("text") or "", bot_user_id, lambda user: names.of(client, org, user))
        try:
            reply = service.answer(speaker, text, conversation=conversation)
        except InvalidRecordError as exc:  # a message the service refuses (empty, too long): say why
            client.chat_postMessage(channel=channel, thread_ts=thread, text=f"Sorry, I can't answer that: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a failed model or store: the person hears so
            _log.error("answering a Slack message failed: %s", type(exc).__name__)  # no text: see docs/privacy.md
            client.chat_postMessage(channel=channel, thread_ts=thread, text="Sorry, something went wrong while answering.")
            return
        posted = client.chat_postMessage(channel=channel, thread_ts=thread, text=_escaped(reply.text))
        service.posted(speaker, reply, (channel, str(posted["ts"])))

    @app.event("app_mention")
    def on_mention(body: dict[str, Any], event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        answer(body, event, context, client)

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        """Direct messages only (channel messages reach us as mentions); edits, joins and other
        subtypes are acknowledged and ignored."""
        if event.get("channel_type") == "im" and not event.get("subtype"):
            answer(body, event, context, client)

    @app.event("reaction_added")
    def on_reaction(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        item = event.get("item") or {}
        person = _person(context)
        if person is None or item.get("type") != "message" or not first_delivery(body):
            return
        try:
            service.react(Speaker(PLATFORM, person), (item["channel"], item["ts"]), str(event.get("reaction", "")))
        except PersonagraphError:
            _log.info("reaction not recorded as feedback", exc_info=True)

    @app.command("/memory")
    def on_memory(ack: Any, command: dict[str, Any], context: BoltContext, respond: Any, client: WebClient) -> None:
        words = (command.get("text") or "").lower().split()
        person = _person(context)
        if person is None:
            ack(text="Sorry, I can't tell who you are in this workspace, so I can't show or change any memory.")
        elif words[:1] == ["forget"] and words[1:] != ["confirm"]:
            ack(text="This deletes everything I know about you, for good. To go ahead: `/memory forget confirm`")
        elif words not in (["show"], ["export"], ["forget", "confirm"]):
            ack(text=MEMORY_HELP)
        else:
            ack()  # within Slack's 3 seconds; the work and its answer follow
            if words[0] == "forget":
                names.forget(*person)
            try:
                text = _memory_action(service, person, words[0], client)
            except (PersonagraphError, SlackApiError) as exc:
                text = f"Sorry, that failed: {exc}"
            except Exception as exc:  # noqa: BLE001 - the person hears it failed
                _log.error("/memory %s failed: %s", words[0], type(exc).__name__)
                text = "Sorry, something went wrong; nothing was changed by this message."
            try:
                respond(text=text, response_type="ephemeral")
            except OSError as exc:  # the command's response URL is unreachable: there is no one left to tell
                _log.error("/memory %s: the reply could not be sent: %s", words[0], type(exc).__name__)

    return app


def _memory_action(service: ChatService, person: tuple[str, str], action: str, client: WebClient) -> str:
    speaker = Speaker(PLATFORM, person)
    if action == "show":
        return service.show(speaker)
    if action == "forget":
        return receipt_text(service.forget(speaker))
    # The export goes to the person's direct messages with the bot: never a channel others read.
    dm = client.conversations_open(users=person[1])["channel"]["id"]
    client.files_upload_v2(
        channel=dm, filename=EXPORT_FILENAME, title="What personagraph knows about you",
        content=json.dumps(service.export(speaker), indent=2, ensure_ascii=False),
    )
    return "I sent you everything I know about you as a JSON file, in our direct messages."


def _person(context: BoltContext) -> tuple[str, str] | None:
    """(enterprise or team, user) of whoever acted, as Bolt resolved them (None when it could not)."""
    org = context.actor_enterprise_id or context.actor_team_id
    user = context.actor_user_id
    return (org, user) if org and user else None


def _plain_text(text: str, bot_user_id: str | None, name_of: Callable[[str], str | None]) -> str:
    """Slack's markup as a person reads it: the mention that addressed the bot goes, other
    people become names, channels `#name`, links and groups their label, entities plain
    characters (a raw id in memory would mean nothing to a model, and is not for it to keep)."""
    def named(match: re.Match[str]) -> str:
        return "" if match[1] == bot_user_id else f"@{name_of(match[1]) or 'someone'}"

    text = _MENTION.sub(named, text)
    text = _CHANNEL.sub(lambda m: f"#{m[1] or 'a channel'}", text)
    text = _SPECIAL.sub(lambda m: m[2] or f"@{m[1]}", text)
    text = _LINK.sub(lambda m: m[2] or m[1], text)
    return re.sub(r"[ \t]{2,}", " ", html.unescape(text)).strip()


def _escaped(text: str) -> str:
    """A model's answer as plain text: no `<!channel>` pings, mentions or links it did not mean."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Recent(Generic[K, V]):
    """A bounded, thread-safe map that lets its oldest keys go first."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        with self._lock:
            return (True, self._items[key]) if key in self._items else (False, None)

    def add(self, key: K, value: V) -> bool:
        """Keeps `value` under `key` unless the key is there already (then False)."""
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return True

    def pop(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)


class _Names:
    """People's display names, looked up once each (`users:read`): memory then reads "Alice
    lives in Lisbon". Without the scope, or for someone Slack won't show, None: the person is
    then named by their scope label."""

    def __init__(self) -> None:
        self._names = _Recent[tuple[str, str], str | None]()

    def of(self, client: WebClient, org: str, user: str) -> str | None:
        found, name = self._names.get((org, user))
        if found:
            return name
        try:
            found_user = client.users_info(user=user)["user"]
            profile = found_user.get("profile") or {}
            name = profile.get("display_name") or profile.get("real_name") or found_user.get("real_name") or None
        except SlackApiError:
            name = None
        self._names.add((org, user), name)
        return name

    def forget(self, org: str, user: str) -> None:
        self._names.pop((org, user))


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def http_server(app: App, host: str = "127.0.0.1", port: int = 3000) -> WSGIServer:
    """A threaded HTTP server for the Events API at `/slack/events` (through Bolt's WSGI
    adapter, which keeps signature checks and acks, behind `checked_dispatch`, which answers
    malformed requests with a 4xx); `serve_forever` runs it."""
    return make_server(host, port, CheckedRequestHandler(app, path=EVENTS_PATH), server_class=_ThreadingWSGIServer)
