"""How fast the Slack bot acknowledges and answers, against the same answers without Slack.

Slack drops an HTTP event that is not acknowledged within 3 seconds. This harness sends signed
`app_mention` events to the real Bolt app (`build_slack_app`), whose Web API client points at a
loopback stand-in for Slack, and measures the acknowledgement (the HTTP response) and the time
until the answer is posted in thread. The baseline is `ChatService.answer` called directly with
the same model and questions, in the same run: the difference is what the bridge costs.

    python -m benchmarks.slack_latency --out benchmarks/results/slack_latency.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from personagraph.assistant import Assistant
from personagraph.bridges import ChatService, Speaker
from personagraph.bridges.slack_app import build_slack_app
from personagraph.settings import Settings

from .common import fresh_memory, print_table, write_json

SECRET = "bench-signing-secret"
BOT = "UBOT"
QUESTIONS = [
    "I live in Lisbon and I work as a nurse.", "What should I cook tonight?", "Where do I live?",
    "Suggest a weekend plan for me.", "What do I do for work?", "Any book you would recommend?",
]


class _PostedMessages:
    """The Web API on 127.0.0.1: records when each threaded answer was posted."""

    def __init__(self) -> None:
        self.posted: dict[str, float] = {}  # thread ts → when the answer arrived
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                method = urlparse(self.path).path.removeprefix("/api/")
                params = json.loads(raw) if raw.startswith("{") else dict(parse_qsl(raw))
                answer: dict[str, Any] = {"ok": True}
                if method == "auth.test":
                    answer = {"ok": True, "user_id": BOT, "bot_id": "BBOT", "team_id": "T1"}
                elif method == "chat.postMessage":
                    api.posted[params.get("thread_ts", "")] = time.perf_counter()
                    answer = {"ok": True, "channel": params["channel"], "ts": f"{time.time():.6f}"}
                elif method == "users.info":
                    answer = {"ok": False, "error": "user_not_found"}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _mention(app: Any, user: str, text: str, ts: str) -> float:
    body = json.dumps({
        "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": f"Ev{ts}", "event_time": int(time.time()),
        "event": {"type": "app_mention", "user": user, "text": f"<@{BOT}> {text}", "channel": "C1", "ts": ts},
        "authorizations": [{"enterprise_id": None, "team_id": "T1", "user_id": BOT, "is_bot": True}],
    })
    stamp = str(int(time.time()))
    headers = {"content-type": "application/json", "x-slack-request-timestamp": stamp,
               "x-slack-signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)}
    start = time.perf_counter()
    response = app.dispatch(BoltRequest(body=body, headers=headers))
    if response.status != 200:
        raise RuntimeError(f"Slack event refused: {response.status} {response.body}")
    return start


def run(model: str, out: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pg-slack-bench-") as root:
        memory = fresh_memory(root)
        assistant = Assistant(memory, chat_model=model, reflection_model="none",
                              settings=Settings(data_dir=Path(root), adapter_auto_train=False))
        service = ChatService(assistant)
        api = _PostedMessages()
        app = build_slack_app(service, signing_secret=SECRET, client=WebClient(token="xoxb-bench", base_url=f"http://127.0.0.1:{api.server.server_port}/api/"))
        try:
            service.answer(Speaker("slack", ("T1", "UWARM")), "hello", conversation=("C0", "0"))  # loads the model once
            baseline = []
            for n, question in enumerate(QUESTIONS):
                start = time.perf_counter()
                service.answer(Speaker("slack", ("T1", "UBASE")), question, conversation=("C1", f"b{n}"))
                baseline.append(time.perf_counter() - start)
            acks, replies = [], []
            for n, question in enumerate(QUESTIONS):
                ts = f"1700000000.{n:06d}"
                start = _mention(app, "UALICE", question, ts)
                acks.append((time.perf_counter() - start) * 1000)
                while ts not in api.posted:
                    time.sleep(0.01)
                replies.append(api.posted[ts] - start)
        finally:
            assistant.close()
            api.server.shutdown()
    report = {
        "model": model, "questions": len(QUESTIONS),
        "slack_ack_ms": {"median": statistics.median(acks), "max": max(acks)},
        "slack_reply_s": {"median": statistics.median(replies), "max": max(replies)},
        "direct_answer_s": {"median": statistics.median(baseline), "max": max(baseline)},
        "bridge_overhead_ratio": statistics.median(replies) / statistics.median(baseline),
    }
    print_table("Slack bridge latency", ["path", "median", "max"], [
        ["Slack ack (ms)", report["slack_ack_ms"]["median"], report["slack_ack_ms"]["max"]],
        ["Slack event → answer posted (s)", report["slack_reply_s"]["median"], report["slack_reply_s"]["max"]],
        ["ChatService.answer direct (s)", report["direct_answer_s"]["median"], report["direct_answer_s"]["max"]],
    ])
    write_json(out, report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local:smollm2", help="the chat model (default: the local SmolLM2)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args()
    run(args.model, args.out)


if __name__ == "__main__":
    main()
