"""The Slack bot end to end, offline: signed requests go to the real Bolt app, which answers
through the real assistant and memory and posts to a loopback stand-in for the Slack Web API
that records every call (the pattern of slack-bolt's own test suite).

Listeners and answers each run on a one-thread executor, so `drain` (a no-op queued behind the
listeners, then one behind the answers they handed on) waits until all background work is done:
"nothing happened" is then a fact, not a timing guess.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from personagraph.memory import Memory, Scope
from personagraph.memory.api import RECORD_KINDS
from personagraph.memory.models import Event
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter import socket_mode
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from typer.testing import CliRunner, Result

from personagraph import cli
from personagraph.assistant import Assistant
from personagraph.bridges import ChatService, Speaker, slack_app
from personagraph.bridges.slack_app import build_slack_app, http_server
from personagraph.settings import Settings

SECRET = "test-signing-secret"
BOT_USER = "UBOT"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
REVOKED = "xoxb-revoked"
NAMES = {"UALICE": "Alice", "UBOB": "Bob"}  # display names users.info knows; anyone else is "not found"


class NotesModel(BaseChatModel):
    """Answers with the notes quoted in its prompt, so a test sees what was retrieved for whom;
    with a `gate`, only once it opens (a slow model); with an `error`, never (a failed one)."""

    gate: Any = None
    error: Exception | None = None

    @property
    def _llm_type(self) -> str:
        return "notes"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.error is not None:
            raise self.error
        notes = [line for m in messages for line in str(m.text).splitlines() if line.startswith("[m")]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(" ".join(notes) or "I don't know that yet."))])


class SlackApi:
    """Slack's Web API, upload URLs and response URLs on 127.0.0.1: every call is recorded
    as (method or path, parameters, our answer)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [params for name, params, _ in self.calls if name == method]

    def posted(self, channel: str) -> list[tuple[dict[str, Any], str]]:
        """Messages posted to a channel, each with the ts Slack gave it."""
        with self._lock:
            return [(p, r["ts"]) for name, p, r in self.calls if name == "chat.postMessage" and p["channel"] == channel]

    def _answer(self, method: str, params: dict[str, Any], token: str) -> dict[str, Any]:
        if token == REVOKED:
            return {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER, "bot_id": "BBOT", "team_id": "T1", "user": "personagraph", "team": "Test"}
        if method == "chat.postMessage":
            return {"ok": True, "channel": params["channel"], "ts": f"1800000000.{next(self._ts):06d}"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": f"D{params['users']}"}}
        if method == "files.getUploadURLExternal":
            return {"ok": True, "file_id": "F1", "upload_url": f"{self.url}/upload/F1"}
        if method == "files.completeUploadExternal":
            return {"ok": True, "files": [{"id": "F1"}]}
        if method == "users.info":
            name = NAMES.get(params["user"])
            return {"ok": True, "user": {"id": params["user"], "profile": {"display_name": name}}} if name else {"ok": False, "error": "user_not_found"}
        return {"ok": True}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlparse(self.path)
                params: dict[str, Any] = dict(parse_qsl(url.query))
                kind = self.headers.get("Content-Type", "")
                method = url.path.removeprefix("/api/")
                if method.startswith("/upload/"):
                    params["body"] = raw.decode()  # a file's bytes, whatever the content type says
                elif kind.startswith(JSON):
                    params.update(json.loads(raw))
                elif kind.startswith(FORM):
                    params.update(parse_qsl(raw.decode()))
                answer = api._answer(method, params, self.headers.get("Authorization", "").removeprefix("Bearer "))
                with api._lock:
                    api.calls.append((method, params, answer))
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", JSON)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def signed(body: str, content_type: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends: a v0 HMAC of the timestamp and body with the signing secret."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": signature}


@dataclass
class Slack:
    app: App
    api: SlackApi
    service: ChatService
    executor: ThreadPoolExecutor
    answers: ThreadPoolExecutor
    _ids = itertools.count(1)

    @property
    def memory(self) -> Memory:
        return self.service.assistant.memory

    def event_body(self, event: dict[str, Any], *, team: str = "T1", event_id: str | None = None) -> str:
        return json.dumps({
            "token": "legacy", "team_id": team, "api_app_id": "A1", "type": "event_callback", "event": event,
            "event_id": event_id or f"Ev{next(self._ids)}", "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": team, "user_id": BOT_USER, "is_bot": True}],
        })

    def send(self, event: dict[str, Any], *, team: str = "T1", event_id: str | None = None, secret: str = SECRET,
             timestamp: int | None = None) -> BoltResponse:
        body = self.event_body(event, team=team, event_id=event_id)
        return self.app.dispatch(BoltRequest(body=body, headers=signed(body, JSON, secret=secret, timestamp=timestamp)))

    def mention(self, user: str, text: str, channel: str = "C1", *, thread_ts: str | None = None, team: str = "T1") -> str:
        """`text` said to the bot in a channel; returns the message's ts."""
        ts = f"1700000000.{next(self._ids):06d}"
        event = {"type": "app_mention", "user": user, "text": f"<@{BOT_USER}> {text}", "channel": channel, "ts": ts}
        if thread_ts:
            event["thread_ts"] = thread_ts
        assert self.send(event, team=team).status == 200
        return ts

    def dm(self, user: str, text: str, **extra: Any) -> str:
        ts = f"1700000000.{next(self._ids):06d}"
        assert self.send({"type": "message", "channel_type": "im", "channel": f"D{user}", "user": user, "text": text,
                          "ts": ts, **extra}).status == 200
        return ts

    def react(self, user: str, reaction: str, channel: str, ts: str) -> None:
        event = {"type": "reaction_added", "user": user, "reaction": reaction, "item_user": BOT_USER,
                 "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": ts}
        assert self.send(event).status == 200

    def command(self, user: str, text: str, *, team: str = "T1") -> BoltResponse:
        body = urlencode({
            "token": "legacy", "team_id": team, "team_domain": "test", "channel_id": "C1", "channel_name": "general",
            "user_id": user, "user_name": user.lower(), "command": "/memory", "text": text, "api_app_id": "A1",
            "response_url": f"{self.api.url}/respond/{user}", "trigger_id": "1.2.3",
        })
        return self.app.dispatch(BoltRequest(body=body, headers=signed(body, FORM)))

    def responses(self, user: str) -> list[dict[str, Any]]:
        return self.api.of(f"/respond/{user}")

    def drain(self) -> None:
        self.executor.submit(lambda: None).result(timeout=120)
        self.answers.submit(lambda: None).result(timeout=120)

    def scope(self, user: str, team: str = "T1") -> Scope:
        return self.service.scope(Speaker("slack", (team, user)))

    def events(self, user: str, team: str = "T1") -> list[Event]:
        return self.memory.records.list(self.scope(user, team), "event")  # type: ignore[return-value]

    def told(self, user: str, text: str, channel: str = "C1") -> None:
        """`user` tells the bot something, and reflection has made it memory."""
        self.mention(user, text, channel)
        self.drain()
        self.service.assistant.reflection.flush()


@contextmanager
def _slack(memory: Memory, tmp_path: Path, model: str | BaseChatModel) -> Iterator[Slack]:
    api = SlackApi()
    settings = Settings(data_dir=tmp_path, adapter_auto_train=False)
    assistant = Assistant(memory, chat_model=model, reflection_model="none", settings=settings)
    service = ChatService(assistant)
    executor, answers = ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)
    client = WebClient(token="xoxb-test", base_url=f"{api.url}/api/")
    app = build_slack_app(service, client=client, signing_secret=SECRET, executor=executor, answer_executor=answers)
    try:
        yield Slack(app, api, service, executor, answers)
    finally:
        executor.shutdown(wait=True)
        answers.shutdown(wait=True)
        assistant.close()
        api.server.shutdown()
        api.server.server_close()


@pytest.fixture
def slack(memory: Memory, tmp_path: Path) -> Iterator[Slack]:
    with _slack(memory, tmp_path, NotesModel()) as running:
        yield running


def _answer(slack: Slack, channel: str) -> str:
    posted = slack.api.posted(channel)
    assert posted, f"nothing was posted to {channel}"
    return posted[-1][0]["text"]


# --- requests: verified, acknowledged at once, answered in thread ------------------------------

def test_a_bad_or_stale_signature_is_refused_and_nothing_is_stored(slack: Slack) -> None:
    event = {"type": "app_mention", "user": "UALICE", "text": f"<@{BOT_USER}> I live in Lisbon.", "channel": "C1", "ts": "1.1"}
    assert slack.send(event, secret="not-the-secret").status == 401
    assert slack.send(event, timestamp=int(time.time()) - 600).status == 401  # a replayed old request
    slack.drain()
    assert slack.api.of("chat.postMessage") == [] and slack.events("UALICE") == []


def test_a_socket_mode_app_lets_no_http_request_through(slack: Slack) -> None:
    app = build_slack_app(slack.service, client=WebClient(token="xoxb-test", base_url=f"{slack.api.url}/api/"), signing_secret=None)
    body = slack.event_body({"type": "app_mention", "user": "UALICE", "text": "hi", "channel": "C1", "ts": "1.1"})
    for secret in ("a-guess", SECRET):
        assert app.dispatch(BoltRequest(body=body, headers=signed(body, JSON, secret=secret))).status == 401


def test_the_http_server_verifies_acks_and_answers(slack: Slack) -> None:
    server = http_server(slack.app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/slack/events"
    body = slack.event_body({"type": "app_mention", "user": "UALICE", "text": f"<@{BOT_USER}> hello", "channel": "C1", "ts": "5.5"})
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, body.encode(), signed(body, JSON, secret="wrong")))
        assert refused.value.code == 401
        with urllib.request.urlopen(urllib.request.Request(url, body.encode(), signed(body, JSON))) as response:
            assert response.status == 200
        slack.drain()
    finally:
        server.shutdown()
        server.server_close()
    assert [(p["channel"], p["thread_ts"]) for p, _ in slack.api.posted("C1")] == [("C1", "5.5")]


def test_mentions_and_direct_messages_are_answered_in_thread(slack: Slack) -> None:
    top = slack.mention("UALICE", "Hello there")
    slack.mention("UALICE", "And a follow-up", thread_ts=top)
    dm = slack.dm("UALICE", "Hi in private")
    slack.drain()
    assert [p["thread_ts"] for p, _ in slack.api.posted("C1")] == [top, top]
    assert [p["thread_ts"] for p, _ in slack.api.posted("DUALICE")] == [dm]
    events = slack.events("UALICE")
    assert {e.text for e in events if e.role == "user"} == {"Hello there", "And a follow-up", "Hi in private"}
    # Platform ids never become labels: the scope and the threads are hashes.
    scope = slack.scope("UALICE")
    assert scope.user_id.startswith("slack-") and "UALICE" not in scope.user_id
    threads = {e.thread_id for e in events}
    assert len(threads) == 2 and all(t.startswith("thr-") for t in threads)
    assert not any(ts in t for t in threads for ts in (top, dm, "C1", "DUALICE"))


def test_people_are_named_by_slack_and_mentions_become_names(slack: Slack) -> None:
    slack.told("UALICE", "I live in Lisbon.")
    slack.mention("UALICE", "Say hi to <@UBOB> and <@UCAROL|carol>")
    slack.mention("UCAROL", "Hello")  # users.info does not show her: she is named by her label
    slack.drain()
    alice = [e for e in slack.events("UALICE") if e.role == "user"]
    assert {e.speaker for e in alice} == {"Alice"} and alice[-1].text == "Say hi to @Bob and @someone"
    assert [f.text for f in slack.memory.facts(slack.scope("UALICE"))] == ["Alice lives in Lisbon."]
    [carol] = [e for e in slack.events("UCAROL") if e.role == "user"]
    assert carol.speaker == slack.scope("UCAROL").user_id
    assert sorted(p["user"] for p in slack.api.of("users.info")) == ["UALICE", "UBOB", "UCAROL"]  # once each


def test_the_ack_comes_at_once_while_a_slow_model_answers_in_the_background(slack: Slack) -> None:
    model = slack.service.assistant.chat_model
    assert isinstance(model, NotesModel)
    model.gate = threading.Event()
    started = time.monotonic()
    slack.mention("UALICE", "Tell me something")
    assert time.monotonic() - started < 1.0  # Slack allows 3 seconds
    assert slack.api.of("chat.postMessage") == []
    model.gate.set()
    slack.drain()
    assert len(slack.api.posted("C1")) == 1


def test_memory_is_acknowledged_at_once_while_every_answer_thread_is_busy(slack: Slack) -> None:
    model = slack.service.assistant.chat_model
    assert isinstance(model, NotesModel)
    model.gate = threading.Event()
    slack.mention("UALICE", "Tell me something")
    slack.mention("UBOB", "Tell me something else")  # queued behind the first: the answer pool is full
    started = time.monotonic()
    assert slack.command("UCAROL", "show").status == 200
    assert time.monotonic() - started < 1.0
    slack.executor.submit(lambda: None).result(timeout=10)  # /memory's reply does not wait for the answers
    assert len(slack.responses("UCAROL")) == 1
    model.gate.set()
    slack.drain()


def test_markup_is_read_as_people_read_it_and_answers_cannot_ping(slack: Slack) -> None:
    model = slack.service.assistant.chat_model
    assert isinstance(model, NotesModel)
    slack.mention("UALICE", "Tom &amp; Jerry &lt;3 <#C123|general> <!subteam^S1|@devs> <!channel> <https://x.org|the site>")
    slack.drain()
    (said,) = [e for e in slack.events("UALICE") if e.role == "user"]
    assert said.text == "Tom & Jerry <3 #general @devs @channel the site"
    posted = _answer(slack, "C1")
    assert "<!" not in posted and "<@" not in posted and "<#" not in posted


def test_a_refused_or_failed_answer_is_explained_in_thread(slack: Slack) -> None:
    model = slack.service.assistant.chat_model
    assert isinstance(model, NotesModel)
    top = slack.mention("UALICE", "x" * 5000)
    slack.drain()
    model.error = RuntimeError("the model is down")
    slack.mention("UALICE", "hello")
    slack.drain()
    [(refused, _), (failed, _)] = slack.api.posted("C1")
    assert refused["thread_ts"] == top and refused["text"].startswith("Sorry, I can't answer that") and "4000" in refused["text"]
    assert failed["text"] == "Sorry, something went wrong while answering."  # no internals shown


def test_bots_edits_joins_channel_chatter_and_retries_get_no_answer(slack: Slack) -> None:
    slack.dm(BOT_USER, "my own answer")
    slack.dm("UOTHERBOT", "a bot's post", bot_id="B2")
    slack.dm("UALICE", "edited", subtype="message_changed")
    slack.dm("UALICE", "", subtype="channel_join")
    assert slack.send({"type": "message", "channel_type": "channel", "channel": "C1", "user": "UALICE", "text": "hi all",
                       "ts": "9.9"}).status == 200
    retried = {"type": "app_mention", "user": "UALICE", "text": f"<@{BOT_USER}> once", "channel": "C1", "ts": "8.8"}
    assert slack.send(retried, event_id="EvSame").status == 200
    assert slack.send(retried, event_id="EvSame").status == 200
    slack.drain()
    assert len(slack.api.of("chat.postMessage")) == 1
    assert [e.text for e in slack.events("UALICE") if e.role == "user"] == ["once"]


# --- one person's memory, across channels, never another's -------------------------------------

def test_facts_told_in_one_channel_are_used_in_another_for_that_person_only(slack: Slack) -> None:
    slack.told("UALICE", "I live in Lisbon.", channel="C1")
    assert any("Lisbon" in f.text for f in slack.memory.facts(slack.scope("UALICE")))
    slack.mention("UALICE", "Where do I live?", channel="C2")
    slack.mention("UBOB", "Where do I live?", channel="C3")
    slack.mention("UALICE", "Where do I live?", channel="C4", team="T2")  # the same user id elsewhere: someone else
    slack.drain()
    assert "Lisbon" in _answer(slack, "C2")
    assert "Lisbon" not in _answer(slack, "C3")
    assert "Lisbon" not in _answer(slack, "C4")
    assert slack.scope("UALICE", "T2") != slack.scope("UALICE")
    assert slack.memory.facts(slack.scope("UBOB")) == [] and slack.memory.facts(slack.scope("UALICE", "T2")) == []


def test_thumbs_from_the_asker_become_feedback_and_anyone_elses_do_not(slack: Slack) -> None:
    slack.mention("UALICE", "Suggest a film")
    slack.drain()
    [(_, reply_ts)] = slack.api.posted("C1")
    slack.react("UBOB", "+1", "C1", reply_ts)
    slack.react("UALICE", "eyes", "C1", reply_ts)
    slack.react("UALICE", "+1", "C1", "1700000000.999999")  # not a message of ours
    slack.drain()
    assert slack.memory.feedback(slack.scope("UALICE")) == [] and slack.memory.feedback(slack.scope("UBOB")) == []
    slack.react("UALICE", "thumbsdown::skin-tone-3", "C1", reply_ts)
    slack.drain()
    [feedback] = slack.memory.feedback(slack.scope("UALICE"))
    reply = [e for e in slack.events("UALICE") if e.role == "assistant"][-1]
    assert (feedback.rating, feedback.reply_event_id, feedback.query) == ("down", reply.id, "Suggest a film")
    redelivered = {"type": "reaction_added", "user": "UALICE", "reaction": "+1", "item_user": BOT_USER,
                   "item": {"type": "message", "channel": "C1", "ts": reply_ts}, "event_ts": reply_ts}
    assert slack.send(redelivered, event_id="EvThumb").status == slack.send(redelivered, event_id="EvThumb").status == 200
    slack.drain()
    assert [f.rating for f in slack.memory.feedback(slack.scope("UALICE"))] == ["down", "up"]  # counted once


# --- /memory: the caller's own, and only theirs ------------------------------------------------

def test_memory_show_tells_the_caller_what_is_known_about_them_only(slack: Slack) -> None:
    slack.told("UALICE", "I live in Lisbon.")
    slack.told("UBOB", "I live in Oslo.")
    assert slack.command("UALICE", "show").status == 200
    slack.drain()
    [shown] = slack.responses("UALICE")
    assert shown["response_type"] == "ephemeral" and "Lisbon" in shown["text"] and "Oslo" not in shown["text"]


def test_memory_without_a_known_action_explains_itself(slack: Slack) -> None:
    help_text = slack.command("UALICE", "").body  # the ack itself: a plain text, ephemeral reply
    assert "/memory show" in help_text and "/memory forget confirm" in help_text
    assert "/memory forget confirm" in slack.command("UALICE", "forget").body
    slack.drain()
    assert slack.responses("UALICE") == []  # nothing done, nothing to report later


def test_memory_export_sends_everything_of_the_caller_privately_as_a_file(slack: Slack) -> None:
    slack.told("UALICE", "I live in Lisbon.")
    slack.told("UBOB", "I live in Oslo.")
    slack.command("UALICE", "export")
    slack.drain()
    assert [p["users"] for p in slack.api.of("conversations.open")] == ["UALICE"]
    [upload] = slack.api.of("/upload/F1")
    exported = json.loads(upload["body"])
    assert exported["scope"]["user_id"] == slack.scope("UALICE").user_id
    assert "Lisbon" in upload["body"] and "Oslo" not in upload["body"]
    [complete] = slack.api.of("files.completeUploadExternal")
    assert complete["channel_id"] == "DUALICE"
    assert "direct messages" in slack.responses("UALICE")[0]["text"]


def test_memory_forget_confirm_leaves_nothing_of_the_caller_and_everyone_else_intact(slack: Slack) -> None:
    slack.told("UALICE", "I live in Lisbon.")
    slack.told("UBOB", "I live in Oslo.")
    [(_, reply_ts), _] = slack.api.posted("C1")
    slack.react("UALICE", "+1", "C1", reply_ts)
    slack.command("UALICE", "forget")  # asks for the confirm word, deletes nothing
    slack.drain()
    alice = slack.scope("UALICE")
    assert slack.memory.facts(alice) and slack.memory.feedback(alice)
    slack.command("UALICE", "forget confirm")
    slack.drain()
    [receipt] = slack.responses("UALICE")
    assert "Nothing of yours is left in any store." in receipt["text"]
    records = slack.memory.export(alice)["records"]
    assert set(records) == set(RECORD_KINDS) and all(records[kind] == [] for kind in RECORD_KINDS)
    assert any("Oslo" in f.text for f in slack.memory.facts(slack.scope("UBOB")))
    slack.react("UALICE", "+1", "C1", reply_ts)  # an answer from before is no longer hers to rate
    slack.drain()
    assert slack.memory.feedback(alice) == []


# --- a real model --------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_bot_runs_on_the_real_local_model(memory: Memory, tmp_path: Path) -> None:
    with _slack(memory, tmp_path, "local:smollm2") as slack:
        slack.told("UALICE", "I live in Lisbon.")
        [fact] = [f for f in slack.memory.facts(slack.scope("UALICE")) if "Lisbon" in f.text]
        slack.mention("UALICE", "Where do I live?", channel="C2")
        slack.mention("UBOB", "Where do I live?", channel="C3")
        slack.drain()
        [(answer, answer_ts)] = slack.api.posted("C2")
        assert answer["text"].strip() and answer["thread_ts"]
        alice, bob = slack.scope("UALICE"), slack.scope("UBOB")
        reply = [e for e in slack.events("UALICE") if e.role == "assistant"][-1]
        provenance = slack.service.assistant.feedback.provenance(alice, reply.id)
        assert provenance is not None and fact.id in provenance.memory_ids  # her fact reached the prompt
        assert "Lisbon" not in json.dumps(slack.memory.export(bob))
        slack.react("UALICE", "+1", "C2", answer_ts)
        slack.drain()
        [feedback] = slack.memory.feedback(alice)
        assert feedback.rating == "up" and fact.id in feedback.memory_ids


# --- `personagraph slack` ------------------------------------------------------------------------

def _run_cli(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.app, ["--data-dir", str(tmp_path / "data"), "slack", *args])


def test_the_command_says_which_token_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert "SLACK_BOT_TOKEN is not set" in _run_cli(tmp_path).output
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    missing_secret = _run_cli(tmp_path)
    assert missing_secret.exit_code == 2 and "SLACK_SIGNING_SECRET is not set" in missing_secret.output
    assert "SLACK_APP_TOKEN is not set" in _run_cli(tmp_path, "--socket").output
    assert not (tmp_path / "data").exists()  # refused before opening any memory


def test_the_command_serves_http_on_loopback_or_socket_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    api = SlackApi()
    built: list[dict[str, Any]] = []
    served: list[tuple[str, int]] = []
    sockets: list[str] = []
    real_build = slack_app.build_slack_app

    def build(service: ChatService, **options: Any) -> App:
        built.append(dict(options))
        client = WebClient(token=options.pop("token"), base_url=f"{api.url}/api/")
        return real_build(service, client=client, **options)

    class Stopped:
        """A server or socket whose run ends at once, as with Ctrl-C."""

        server_port = 4000

        def __init__(self, app: App, where: Any, port: int | None = None) -> None:
            assert isinstance(app, App)
            if port is None:
                sockets.append(where)
            else:
                served.append((where, port))

        def serve_forever(self) -> None:
            raise KeyboardInterrupt

        start = serve_forever

        def server_close(self) -> None:
            pass

    monkeypatch.setattr(slack_app, "build_slack_app", build)
    monkeypatch.setattr(slack_app, "http_server", Stopped)
    monkeypatch.setattr(socket_mode, "SocketModeHandler", Stopped)
    monkeypatch.setenv("PERSONAGRAPH_CHAT_MODEL", "none")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test")
    try:
        http = _run_cli(tmp_path, "--port", "4000")
        socket = _run_cli(tmp_path, "--socket")
        monkeypatch.setenv("SLACK_BOT_TOKEN", REVOKED)
        rejected = _run_cli(tmp_path)
    finally:
        api.server.shutdown()
        api.server.server_close()
    assert http.exit_code == 0 and "http://127.0.0.1:4000/slack/events" in http.output
    assert socket.exit_code == 0 and "Socket Mode" in socket.output
    assert served == [("127.0.0.1", 4000)] and sockets == ["xapp-test"]
    assert [(b["token"], b["signing_secret"]) for b in built][:2] == [("xoxb-test", SECRET), ("xoxb-test", None)]
    assert rejected.exit_code == 2 and "Slack did not accept the bot token" in rejected.output and "invalid_auth" in rejected.output
    assert "Traceback" not in rejected.output
