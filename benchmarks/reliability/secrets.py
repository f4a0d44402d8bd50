"""Sensitive data (issue 8, item 6): secrets a user types never reach a store or the model.

Each message of `corpus/secrets.yaml` goes through every way text comes in: a request to the
assistant (respond graph: the model's prompt, the stored exchange, reflection's facts), a
thumbs-up with the message as its comment (feedback), and a LangGraph store item holding it as
text and under a `password` key. Then every file under the data folder is scanned for the
secret's bytes. The same run with redaction off is the control: it must find every secret,
or the scan is blind and the zero means nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from personagraph.memory import Embedder, MiniLMEmbedder, Scope
from personagraph.memory.persona_store import PersonaStore
from personagraph.memory.redaction import Redactor

from personagraph.assistant import Assistant
from personagraph.settings import Settings

from ..common import fresh_memory
from .echo_model import EchoChatModel
from .part import PartResult
from .profile import Profile
from .scan import files_holding

CORPUS = Path(__file__).with_name("corpus") / "secrets.yaml"


def load_corpus() -> dict[str, Any]:
    return yaml.safe_load(CORPUS.read_text())


def needle(text: str, secret: str) -> str:
    """What the scan looks for: the secret, with the words before it when it is short (a bare
    "8842" turns up by chance in binary files; "PIN is 8842" does not)."""
    if len(secret) >= 10:
        return secret
    at = text.index(secret)
    return text[max(0, at - 8):at + len(secret)]


def _feed(workdir: Path, embedder: Embedder, redactor: Redactor, corpus: dict[str, Any]) -> dict[str, Any]:
    """Send every corpus message through respond, feedback and the store; returns what the model saw."""
    memory = fresh_memory(workdir, embedder)
    memory.redactor = redactor
    model = EchoChatModel()
    settings = Settings(data_dir=workdir, adapter_auto_train=False)
    assistant = Assistant(memory, chat_model=model, reflection_model="none", settings=settings)
    store = PersonaStore(memory)
    user = Scope(user_id="sec-user")
    try:
        for n, case in enumerate([*corpus["secrets"], *({"text": t} for t in corpus["benign"])]):
            reply = assistant.respond(user, case["text"], thread_id=f"t{n % 4}")
            assistant.thumbs(user, reply.reply_id, up=True, comment=case["text"])
            store.put((user.user_id, "notes"), f"note-{n}", {"text": case["text"], "password": case.get("secret", "none")})
        assistant.reflection.flush()
        shown = "\n".join(str(m.content) for prompt in model.prompts for m in prompt)
        events = [e.text for e in memory.events(user)]
    finally:
        assistant.close()
        memory.close()
    return {"shown": shown, "events": events}


def run(profile: Profile, workdir: Path, embedder: Embedder | None = None) -> PartResult:
    started = time.perf_counter()
    embedder = embedder or MiniLMEmbedder()
    corpus = load_corpus()
    secrets = corpus["secrets"]
    needles = {needle(c["text"], c["secret"]): c for c in secrets}

    redacted_dir, control_dir = workdir / "redacted", workdir / "control"
    redacted = _feed(redacted_dir, embedder, Redactor(), corpus)
    _feed(control_dir, embedder, Redactor(kinds=()), corpus)  # the same traffic, nothing redacted

    stored = files_holding(redacted_dir, needles)
    control_stored = files_holding(control_dir, needles)
    seen = [n for n in needles if n in redacted["shown"]]
    kept_benign = sum(any(b == e for e in redacted["events"]) for b in corpus["benign"])
    figures = {
        "secrets": len(secrets),
        "secrets_stored": len(stored),
        "secrets_seen_by_model": len(seen),
        "control_secrets_stored": len(control_stored),
        "control_blind": len(secrets) - len(control_stored),  # secrets the scan missed with redaction off
        "benign_messages": len(corpus["benign"]),
        "benign_altered": len(corpus["benign"]) - kept_benign,
    }
    return PartResult(
        part="secrets", figures=figures, must_be_zero=("secrets_stored", "secrets_seen_by_model", "control_blind"),
        seconds=time.perf_counter() - started,
        details={
            "stored": {n: files for n, files in stored.items()},
            "seen_by_model": seen,
            "control_missed": sorted(set(needles) - set(control_stored)),
            "by_kind": {k: sum(c["kind"] == k for c in secrets) for k in sorted({c["kind"] for c in secrets})},
            "profile": profile.name,
        },
    )
