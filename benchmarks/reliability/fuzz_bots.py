"""Fuzzing the bots: signed and unsigned Slack requests to the real Bolt app (its Web API a
loopback stand-in), and junk speakers, conversations and texts straight to the `ChatService`
the Discord bot uses.

Slack must answer every request 2xx or 4xx, never 5xx, and store nothing for a request that is
badly signed or names no usable message. A listener or answer that raises anything but a
`PersonagraphError`, or logs an error with a traceback, is an untyped crash. The service may
raise `PersonagraphError`s only."""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from personagraph.memory import Memory
from personagraph.memory.errors import PersonagraphError
from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from personagraph.assistant import Assistant
from personagraph.bridges import ChatService, Speaker
from personagraph.bridges.slack_app import build_slack_app
from personagraph.bridges.slack_http import checked_dispatch
from personagraph.settings import Settings

from .fuzz_common import Tally
from .fuzz_inputs import junk, strings
from .fuzz_models import FixedModel

SECRET = "fuzz-signing-secret"
BOT = "UBOT"


class _WebApi:
    """Slack's Web API on 127.0.0.1, answering every method with a plausible `ok`."""

    def __init__(self) -> None:
        ts = itertools.count(1)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({
                    "ok": True, "user_id": BOT, "bot_id": "BBOT", "team_id": "T1", "ts": f"1800000000.{next(ts):06d}",
                    "channel": {"id": "DFUZZ"}, "user": {"id": "U1", "profile": {"display_name": "Fuzz"}},
                    "file_id": "F1", "upload_url": "http://127.0.0.1:9/none", "files": [{"id": "F1"}],
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Watched(ThreadPoolExecutor):
    """A one-thread executor that keeps what its tasks raised: background failures are findings."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.raised: list[BaseException] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def watched() -> Any:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                self.raised.append(exc)
                raise
        return super().submit(watched)

    def drain(self) -> None:
        super().submit(lambda: None).result(timeout=120)


class _Errors(logging.Handler):
    """Error log records with a traceback: a listener that failed in the background."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _headers(body: str, content_type: str, rng: random.Random, valid: bool) -> dict[str, str]:
    ts = str(int(time.time()))
    if valid:
        return {"content-type": content_type, "x-slack-request-timestamp": ts,
                "x-slack-signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body) or ""}
    bad = rng.randrange(4)
    stale = str(int(time.time()) - 3600)
    return [
        {"content-type": content_type},
        {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": "v0=" + "0" * 64},
        {"content-type": content_type, "x-slack-request-timestamp": stale,
         "x-slack-signature": SignatureVerifier(SECRET).generate_signature(timestamp=stale, body=body) or ""},
        {"content-type": content_type, "x-slack-request-timestamp": "not-a-time", "x-slack-signature": "v1=abc"},
    ][bad]


def _event(rng: random.Random) -> dict[str, Any]:
    """A Slack message event with junk in up to two fields (a person's odd message may be stored)."""
    event: dict[str, Any] = {"type": rng.choice(("app_mention", "message")), "user": f"U{rng.randrange(3)}", "channel": "C1",
                             "ts": f"1700000000.{rng.randrange(10**6):06d}", "text": f"<@{BOT}> {strings(rng)}", "channel_type": "im"}
    for _ in range(rng.randint(0, 2)):
        key = rng.choice(("user", "channel", "ts", "text", "type", "thread_ts", "bot_id", "subtype", "channel_type"))
        if rng.random() < 0.5:
            event.pop(key, None)
        else:
            event[key] = junk(rng, max_depth=60)
    return event


def _request(rng: random.Random, n: int) -> tuple[str, str, bool, bool]:
    """(body, content type, signed, may store): one fuzzed request. Only a signed event callback
    with a well-formed envelope may store anything."""
    signed = rng.random() < 0.75
    pick = rng.randrange(5)
    if pick == 0:  # not JSON, or JSON of the wrong shape
        body = rng.choice(("{", "[]", "null", "\x00\xff", json.dumps({"type": "event_callback"}), "a=b&c", "x" * 100_000))
        return body, rng.choice(("application/json", "application/x-www-form-urlencoded")), signed, False
    if pick == 1:  # a slash command with junk fields
        fields = {"team_id": "T1", "user_id": f"U{rng.randrange(3)}", "command": rng.choice(("/memory", "/other")),
                  "text": rng.choice(("show", "forget", "forget now", strings(rng).replace("\x00", ""))), "channel_id": "C1",
                  "response_url": "http://127.0.0.1:9/respond", "trigger_id": "1.2"}
        fields.pop(rng.choice(list(fields)))
        return urlencode(fields, errors="surrogatepass"), "application/x-www-form-urlencoded", signed, False
    event = _event(rng)
    outer: dict[str, Any] = {"team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event": event, "event_id": f"Ev{n}",
                             "event_time": int(time.time()),
                             "authorizations": [{"enterprise_id": None, "team_id": "T1", "user_id": BOT, "is_bot": True}]}
    if pick == 2:  # no event to answer: the event or the envelope's type is of the wrong type
        broken = junk(rng, max_depth=60)
        while isinstance(broken, str):
            broken = junk(rng, max_depth=60)
        outer[rng.choice(("event", "type"))] = broken
    return json.dumps(outer, default=str), "application/json", signed, signed and pick != 2


def _stored_events(memory: Memory) -> int:
    return sum(memory.records.count(scope, "event") for scope in memory.records.scopes())


@dataclass
class SlackUnderTest:
    """The real Bolt app over an assistant on `memory`, and what its background work raised or logged."""

    app: App
    listeners: _Watched
    answers: _Watched
    errors: _Errors

    def dispatch(self, body: str, headers: dict[str, str]) -> BoltResponse:
        """One request, and all the background work it caused finished."""
        response = checked_dispatch(self.app, body, headers)  # what http_server runs for each request
        self.listeners.drain()
        self.answers.drain()
        return response


@contextmanager
def running_slack(memory: Memory, folder: Path) -> Iterator[SlackUnderTest]:
    api = _WebApi()
    errors = _Errors()
    loggers = [logging.getLogger(name) for name in ("slack_bolt", "personagraph.bridges.slack_app")]
    for logger in loggers:
        logger.addHandler(errors)
    assistant = Assistant(memory, chat_model=FixedModel(), reflection_model="none",
                          settings=Settings(data_dir=folder, adapter_auto_train=False))
    listeners, answers = _Watched(), _Watched()
    app = build_slack_app(ChatService(assistant), client=WebClient(token="xoxb-fuzz", base_url=api.url),
                          signing_secret=SECRET, executor=listeners, answer_executor=answers)
    try:
        yield SlackUnderTest(app, listeners, answers, errors)
    finally:
        listeners.shutdown(wait=True)
        answers.shutdown(wait=True)
        assistant.reflection.flush()
        assistant.close()
        api.close()
        for logger in loggers:
            logger.removeHandler(errors)


def signed_headers(body: str, content_type: str = "application/json") -> dict[str, str]:
    return _headers(body, content_type, random.Random(0), valid=True)


def fuzz_slack(memory: Memory, folder: Path, cases: int, rng: random.Random) -> Tally:
    """`cases` fuzzed requests dispatched to the real Bolt app."""
    tally = Tally("slack")
    with running_slack(memory, folder) as slack:
        for n in range(cases):
            body, content_type, signed, may_store = _request(rng, n)
            headers = _headers(body, content_type, rng, signed)
            repro = {"body": body, "headers": headers}
            raised = len(slack.listeners.raised) + len(slack.answers.raised)
            before, logged = _stored_events(memory), len(slack.errors.records)
            try:
                response = slack.dispatch(body, headers)
            except Exception as exc:  # noqa: BLE001 - dispatch itself must never raise
                tally.crash(n, "slack dispatch", repro, exc)
                continue
            background = [e for e in (slack.listeners.raised + slack.answers.raised)[raised:] if not isinstance(e, PersonagraphError)]
            new_logs = [r for r in slack.errors.records[logged:] if r.exc_info]
            stored = _stored_events(memory) - before
            if response.status >= 500:
                tally.crash(n, "slack dispatch", repro, f"HTTP {response.status}: {response.body[:200]}")
            elif background:
                tally.crash(n, "slack listener", repro, background[0])
            elif new_logs:
                tally.crash(n, "slack listener", repro, f"logged: {new_logs[0].getMessage()} ({new_logs[0].exc_info[1]!r})")  # type: ignore[index]
            elif stored and not may_store:
                tally.half_written += 1
                tally.crash(n, "slack dispatch", repro, f"stored {stored} events for a badly signed or malformed request")
            elif response.status >= 400 or not stored:
                tally.refused(f"HTTP {response.status}" + ("" if stored else ", nothing stored"))
            else:
                tally.ok()
    return tally


def _service_call(service: ChatService, name: str, speaker: Speaker, conversation: tuple[str, ...], text: str) -> Any:
    if name == "answer":
        return service.answer(speaker, text, conversation=conversation)
    if name == "react":
        return service.react(speaker, conversation, text)
    return service.show(speaker) if name == "show" else service.export(speaker)


def fuzz_service(memory: Memory, folder: Path, cases: int, rng: random.Random) -> Tally:
    """`cases` junk calls to the ChatService (what the Discord bot calls with a message's ids)."""
    tally = Tally("chat service")
    assistant = Assistant(memory, chat_model=FixedModel(), reflection_model="none",
                          settings=Settings(data_dir=folder, adapter_auto_train=False))
    service = ChatService(assistant)
    try:
        for n in range(cases):
            # The service's arguments are strings (a platform's ids and texts, decoded JSON): junk strings.
            speaker = Speaker(rng.choice(("discord", strings(rng))), tuple(rng.choice(("123", strings(rng))) for _ in range(rng.randint(0, 2))),
                              rng.choice((None, "Fuzz", strings(rng))))
            conversation = tuple(rng.choice(("chan", strings(rng))) for _ in range(rng.randint(0, 2)))
            text = rng.choice((strings(rng), "hello"))
            name = rng.choice(("answer", "react", "show", "export"))
            try:
                _service_call(service, name, speaker, conversation, text)
            except PersonagraphError as exc:
                tally.typed_error(exc)
            except Exception as exc:  # noqa: BLE001 - anything untyped is a finding
                tally.crash(n, f"ChatService.{name}", {"speaker": speaker, "conversation": conversation, "text": text}, exc)
            else:
                tally.ok()
    finally:
        assistant.reflection.flush()
        assistant.close()
    return tally
