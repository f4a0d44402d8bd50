"""The world the isolation machine drives: eight users on one embedded stack, reached through
the memory API, the LangGraph store, the memory tools and two chat services (one per tenant).

Users are chosen to tempt every way scoping could go wrong: labels that differ by a digit or a
capital ("bob", "bob2", "Bob"), the same user id in two tenants, and platform users whose ids
differ in one field or whose platform ids are the same in two tenants. Every text a user says
carries that user's canary token, and every fact id the harness chooses carries it too, so any
text or id a call returns can be attributed to its owner.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.store.base import Item
from personagraph.memory import (
    Embedder,
    Memory,
    NamespaceLayout,
    PersonaStore,
    RecordStore,
    Scope,
)
from personagraph.memory.graph import ScopeGraph
from personagraph.memory.index.edge import EdgeIndex
from personagraph.tools import memory_tools
from pydantic import BaseModel, Field

from personagraph.assistant import Assistant
from personagraph.bridges.service import ChatService, Speaker
from personagraph.settings import Settings

RecordKey = tuple[str, str]  # (kind, record id)
ScopeState = dict[RecordKey, dict[str, Any]]  # every record of one scope, as stored


@dataclass(frozen=True)
class User:
    handle: str  # how logs and details name the user
    scope: Scope
    canary: str
    speaker: Speaker | None = None  # set for users who also talk through a chat service

    @property
    def label(self) -> str:
        return self.scope.user_id


def _canary(handle: str) -> str:
    """CNY + five letters from the handle's hash: fixed length, so no canary contains another."""
    digest = hashlib.sha256(handle.encode()).digest()
    return "CNY" + "".join(chr(ord("A") + b % 26) for b in digest[:5])


def _user(handle: str, scope: Scope, speaker: Speaker | None = None) -> User:
    return User(handle, scope, _canary(handle), speaker)


def _platform(handle: str, tenant: str, *ids: str) -> User:
    speaker = Speaker("slack", ids, "Bob")
    return _user(handle, Scope.for_platform("slack", *ids, tenant=tenant), speaker)


USERS: tuple[User, ...] = (
    _user("bob", Scope(user_id="bob")),
    _user("bob2", Scope(user_id="bob2")),
    _user("Bob", Scope(user_id="Bob")),
    _user("acme/bob", Scope(tenant="acme", user_id="bob")),
    _platform("slack:T1/U_BOB", "default", "T1", "U_BOB"),
    _platform("slack:T1/U_BOB2", "default", "T1", "U_BOB2"),
    _platform("acme/slack:T1/U_BOB", "acme", "T1", "U_BOB"),  # the same platform person in the other tenant
    _platform("slack:T2/U_BOB", "default", "T2", "U_BOB"),  # the same user id in another workspace
)
CHAT_USERS: tuple[User, ...] = tuple(u for u in USERS if u.speaker is not None)
TENANTS = ("default", "acme")
assert len({u.scope for u in USERS}) == len(USERS) and len({u.canary for u in USERS}) == len(USERS)

# Finite pools keep the embedder's work bounded: every text below is embedded once per run.
TIMES = tuple(datetime(2024, 1, 1, 9, tzinfo=UTC) + timedelta(days=45 * i) for i in range(4))
SAYINGS = (
    "I adopted a golden retriever called Biscuit {c}",
    "Ramen is my favourite food {c}",
    "My sister Maya lives in Porto {c}",
    "I play the cello every evening {c}",
    "I moved to Lisbon last spring {c}",
    "I work at Acme as a nurse {c}",
    "My PIN is 4711 and my code word is {c}",
)
FACTS = (  # text, fact kind, predicate, object ("{c}" makes the object this user's own entity)
    ("The user likes ramen {c}", "preference", "likes", "Ramen {c}"),
    ("The user lives in Porto {c}", "attribute", "lives_in", "Porto"),
    ("The user's dog is Biscuit {c}", "relationship", "owns", "Biscuit {c}"),
    ("The user plans a trip to Kyoto {c}", "plan", "plans", "Kyoto"),
    ("Answer the user in French {c}", "instruction", None, None),
    ("The user works at Acme {c}", "attribute", "works_at", "Acme {c}"),
)
QUERIES = ("where do I live", "what food do I like", "Biscuit", "Porto", "my sister", "code word", "Kyoto trip")
STORE_KEYS = ("k1", "k2", "k3")
STORE_SPACES = ("notes", "prefs")
CHAT_TEXTS = (
    "I live in Porto now {c}",
    "Where do I live?",
    "I like ramen and my code word is {c}",
    "What do you remember about me {c}?",
)
CONVERSATIONS = (("C1", "1.0"), ("C1", "2.0"), ("C2", "3.0"))

CANARY_RE = re.compile(r"cny[a-z]{5}", re.IGNORECASE)
ID_RE = re.compile(r"[A-Za-z0-9_]+")  # every id the product or the harness makes is one such token


class MemoEmbedder:
    """The real embedder, asked once per distinct text: the same vectors, computed once."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self._vectors: dict[str, list[float]] = {}
        self._tokens: dict[str, int] = {}
        self.computed = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.inner.embed_documents(missing), strict=True))
            self.computed += len(missing)
        return [self._vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        if text not in self._tokens:
            self._tokens[text] = self.inner.count_tokens(text)
        return self._tokens[text]


class EchoChatModel(BaseChatModel):
    """Answers with its prompt: whatever reached the model reaches the user, so a leak into the
    prompt is a leak in the reply. Its own earlier answers in the history are cut to a head
    (echoes of echoes would double the text each turn); `last_prompt` keeps the whole prompt,
    which the harness checks too."""

    last_prompt: str = Field(default="")

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.last_prompt = "\n".join(f"{m.type}: {m.content}" for m in messages)
        answer = "\n".join(f"{m.type}: {str(m.content)[:200] if m.type == 'ai' else m.content}" for m in messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


class World:
    """One fresh stack (SQLite records, Qdrant Edge index) and every surface over it."""

    def __init__(self, embedder: Embedder, workdir: Path | None = None) -> None:
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="world-", dir=workdir))
        self.memory = Memory(RecordStore.sqlite(self.dir / "records.sqlite"), EdgeIndex(self.dir / "index"), embedder)
        self.store = PersonaStore(self.memory, layout=NamespaceLayout(tenant_at=0, user_at=1), allow_unscoped=False)
        self.model = EchoChatModel()
        self.assistant = Assistant(
            self.memory, chat_model=self.model, reflection_model="none",
            settings=Settings(data_dir=self.dir, adapter_auto_train=False),
        )
        self.tools = {t.name: t for t in memory_tools(self.memory, self.assistant.feedback)}
        self.services = {tenant: ChatService(self.assistant, tenant=tenant) for tenant in TENANTS}

    def service(self, user: User) -> ChatService:
        return self.services[user.scope.tenant]

    def snapshot(self) -> dict[Scope, ScopeState]:
        """Every record of every scope, read in one query from the underlying store."""
        state: dict[Scope, ScopeState] = {u.scope: {} for u in USERS}
        for item in self.memory.records.store.search(("pg",), limit=10**7):
            _, tenant, user_id, kind = item.namespace
            state.setdefault(Scope(tenant=tenant, user_id=user_id), {})[(kind, item.key)] = item.value
        return state

    def close(self) -> None:
        self.assistant.close()
        self.store.close()
        self.memory.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def render(value: Any) -> str:
    """Anything a call returned, as text to scan (JSON where it has structure)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_plain, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, ToolMessage):
        return {"status": value.status, "content": value.content}
    if isinstance(value, Item):
        return value.dict()
    if isinstance(value, ScopeGraph):
        nodes = [[n, d] for n, d in value.graph.nodes(data=True)]
        edges = [[s, o, k, d["relation"]] for s, o, k, d in value.graph.edges(keys=True, data=True)]
        return {"nodes": nodes, "edges": edges}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


def canaries_in(text: str) -> set[str]:
    return {c.upper() for c in CANARY_RE.findall(text)}


def id_tokens(text: str) -> set[str]:
    return set(ID_RE.findall(text))


def tokens(values: Iterable[Any]) -> set[str]:
    text = " ".join(render(v) for v in values)
    return canaries_in(text) | id_tokens(text)
