"""personagraph behind LangGraph Server: `langgraph.json`, `personagraph/server.py` and a real
`langgraph dev` (the in-memory runtime) driven through its HTTP API, offline.

The fast tests check that the server's own loaders resolve what `langgraph.json` names, that a
copy of server.py loaded by path shares the one Assistant, that the served respond graph,
checkpointed per thread as the server runs it, starts every request from the thread's latest
turns and acts only for the user the run names, that the server's store follows the
`store_user_at` setting and refuses cross-user reads, and that the spec graph asks for
PERSONAGRAPH_SPEC_PATH where the example spec is not installed. The slow test starts
`langgraph dev` on 127.0.0.1 with analytics, version checks and tracing off, and shows through
the SDK that a fact told in one thread is used in another thread of the same user and never for
another user, and that the store routes reach PersonaStore and refuse searches and listings
across users. The port is fixed (PERSONAGRAPH_TEST_LANGGRAPH_PORT, default 28734).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import InvalidNamespaceError
from personagraph.graphs.respond.graph import build_respond_graph
from personagraph.memory import Memory, Scope
from personagraph.memory.errors import ConfigurationError, InvalidRecordError
from personagraph.memory.models import Event
from personagraph.memory.persona_store import PersonaStore
from personagraph.tools import ScopeConflictError
from pydantic import ValidationError

from personagraph import server
from personagraph.settings import Settings
from tests.scripted_model import ScriptedChatModel

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "langgraph.json"
PORT = int(os.environ.get("PERSONAGRAPH_TEST_LANGGRAPH_PORT", "28734"))
HOST = "127.0.0.1"
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # langgraph-cli posts each command to its analytics otherwise
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # langgraph-api asks PyPI for a newer release otherwise
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}
# Keys that would switch on LangSmith tracing, the metadata beacon or a licensed deployment.
DROPPED_ENV = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_API_KEY", "LANGSMITH_CONTROL_PLANE_API_KEY",
               "LANGGRAPH_CLOUD_LICENSE_KEY", "LANGSMITH_ENDPOINT", "LANGCHAIN_ENDPOINT")


# --- fast: what langgraph.json names ------------------------------------------------------------

def test_langgraph_json_names_the_server_factories() -> None:
    """langgraph-api's own loaders (in a child process: its config reads the server's env at
    import) resolve every entry to server.py's factories; nothing is opened by loading them."""
    pytest.importorskip("langgraph_api")
    config = json.loads(CONFIG.read_text())
    assert config["python_version"] == "3.11" and config["dependencies"] == ["."]
    assert set(config["graphs"]) == {"respond", "reflection", "assistant_from_spec"}
    probe = f"""
import json, sys
from langgraph_api.graph import GraphSpec, _graph_from_spec
from langgraph_api.store import _load_store
from personagraph import server
config = json.loads({CONFIG.read_text()!r})
for graph_id, entry in config["graphs"].items():
    module, variable = entry["path"].rsplit(":", 1)
    assert _graph_from_spec(GraphSpec(graph_id, module=module, variable=variable)) is getattr(server, graph_id), graph_id
assert _load_store(config["store"]["path"]) is server.store
assert server._SHARED is None or server._SHARED._assistant is None
print("resolved")
"""
    env = {**os.environ, **OFFLINE_ENV, "DATABASE_URI": ":memory:", "REDIS_URI": "fake", "MIGRATIONS_PATH": "__inmem",
           "LANGGRAPH_RUNTIME_EDITION": "inmem", "LANGSMITH_LANGGRAPH_API_VARIANT": "local_dev"}
    done = subprocess.run([sys.executable, "-c", probe], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "resolved" in done.stdout, done.stdout + done.stderr


def test_server_file_loaded_by_path_shares_the_one_assistant() -> None:
    spec = importlib.util.spec_from_file_location("personagraph_server_by_path", ROOT / "personagraph" / "server.py")
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    assert copy is not server and copy._shared() is server._shared()


class _Handoff:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def submit(self, scope: Scope, thread_id: str, messages: Any = (), after_seconds: float = 0.0) -> list[Event]:
        return self.memory.add_events(scope, messages)


def test_served_respond_graph_starts_each_request_from_the_threads_latest_turns(memory: Memory) -> None:
    model = ScriptedChatModel(script=["Nice, Lisbon it is.", "You said Lisbon."])
    inner = build_respond_graph(memory, model, reflection=_Handoff(memory))
    served = server.serve_graph(inner, tenant="acme", name="respond").copy(update={"checkpointer": InMemorySaver()})
    config = {"configurable": {"thread_id": "lg-thread-1"}}

    first = served.invoke({"user_id": "alice", "query": "I moved to Lisbon last month."}, config)
    assert (first["tenant"], first["thread_id"]) == ("acme", "lg-thread-1")  # filled from settings and the thread
    assert first["history"] == [] and len(first["event_ids"]) == 2
    second = served.invoke({"user_id": "alice", "query": "What did I just tell you?"}, config)
    shown = "\n".join(str(m.content) for m in model.prompts[1])
    assert "I moved to Lisbon last month." in shown and "Nice, Lisbon it is." in shown  # the turn before, as history
    assert [e.text for e in memory.events(Scope(tenant="acme", user_id="alice"), "lg-thread-1")][-1] == second["answer"]
    assert set(served.get_input_jsonschema()["properties"]) == set(server.REQUEST_KEYS)  # Studio's input form
    assert {"answer", "items", "quotes", "plan"} <= set(served.get_output_jsonschema()["properties"])
    with pytest.raises(InvalidRecordError, match="user_id"):
        served.invoke({"query": "Who am I?"}, {"configurable": {"thread_id": "lg-thread-2"}})


def test_served_graph_acts_for_the_user_the_run_names(memory: Memory) -> None:
    """On LangGraph Server with auth, `langgraph_auth_user_id` is the user: the input may leave
    the user out, and an input that names another user or tenant is refused before any work."""
    model = ScriptedChatModel(script=["Noted, Lisbon."])
    inner = build_respond_graph(memory, model, reflection=_Handoff(memory))
    served = server.serve_graph(inner, tenant="acme", name="respond").copy(update={"checkpointer": InMemorySaver()})
    as_alice = {"thread_id": "lg-auth-1", "langgraph_auth_user_id": "alice", "langgraph_auth_user": {"tenant": "acme"}}

    told = served.invoke({"query": "I moved to Lisbon last month."}, {"configurable": as_alice})
    assert (told["tenant"], told["user_id"]) == ("acme", "alice")  # filled from the authenticated user
    assert memory.events(Scope(tenant="acme", user_id="alice"), "lg-auth-1")

    for claimed in ({"user_id": "bob"}, {"user_id": "alice", "tenant": "globex"}):
        with pytest.raises(ScopeConflictError, match="names (user_id 'bob'|tenant 'globex')"):
            served.invoke({**claimed, "query": "Where do I live?"}, {"configurable": {**as_alice, "thread_id": "lg-auth-2"}})
    with pytest.raises(ScopeConflictError, match="user_id 'bob'"):  # no tenant on the user: "default", as for the tools
        served.invoke({"user_id": "bob", "query": "Where do I live?"},
                      {"configurable": {"thread_id": "lg-auth-3", "langgraph_auth_user_id": "alice"}})
    assert len(model.prompts) == 1  # refused before the model was asked
    assert not memory.events(Scope(tenant="acme", user_id="bob")) and not memory.events(Scope(user_id="bob"))


def test_served_reflection_acts_for_the_authenticated_user_only(memory: Memory) -> None:
    from personagraph.graphs.reflection import build_reflection_graph

    for user in ("alice", "bob"):
        memory.add_event(Scope(tenant="acme", user_id=user), {"speaker": user, "text": f"I live in {user.title()}ville.", "thread_id": "t"})
    assistant = SimpleNamespace(memory=memory, reflection=SimpleNamespace(graph=build_reflection_graph(memory, None)),
                                settings=SimpleNamespace(tenant="acme"))
    served = server._reflection(assistant)  # type: ignore[arg-type]
    as_alice = {"configurable": {"langgraph_auth_user_id": "alice", "langgraph_auth_user": {"tenant": "acme"}}}

    with pytest.raises(ScopeConflictError, match="user_id 'bob'"):
        served.invoke({"user_id": "bob"}, as_alice)
    assert not memory.facts(Scope(tenant="acme", user_id="bob"))  # bob's memory was not touched
    report = served.invoke({}, as_alice)["report"]
    assert report["status"] == "done" and report["facts_added"] >= 1
    assert memory.facts(Scope(tenant="acme", user_id="alice"))


def test_server_store_follows_store_user_at_and_names_one_user(memory: Memory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PERSONAGRAPH_STORE_USER_AT=1 gives each user of LangMem's ("memories", user) their own
    scope; a search or listing that names no user is refused."""
    monkeypatch.setenv("PERSONAGRAPH_STORE_USER_AT", "1")
    settings = Settings(data_dir=tmp_path, tenant="acme")
    assert settings.store_user_at == 1
    with pytest.raises(ValidationError, match="store_user_at"):
        Settings(data_dir=tmp_path, store_user_at=-1)

    store = server._persona_store(cast(Any, SimpleNamespace(memory=memory, settings=settings)))
    assert isinstance(store, PersonaStore) and not store.allow_unscoped
    store.put(("memories", "alice"), "home", {"content": "Alice lives in Lisbon."})
    store.put(("memories", "bob"), "home", {"content": "Bob lives in Oslo."})
    assert [i.key for i in memory.items(Scope(tenant="acme", user_id="alice"))] == ["home"]
    assert [i.key for i in memory.items(Scope(tenant="acme", user_id="bob"))] == ["home"]
    assert not memory.items(Scope(tenant="acme", user_id="memories"))
    assert [i.value["content"] for i in store.search(("memories", "alice"), query="where does she live")] == ["Alice lives in Lisbon."]
    for refused in (lambda: store.search(("memories",), query="lives"), lambda: store.search(()), store.list_namespaces):
        with pytest.raises(InvalidNamespaceError, match="spans users"):
            refused()


def test_spec_graph_needs_a_spec_path_where_the_example_is_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(server.SPEC_ENV, raising=False)
    assert server._spec_path() == server.DEFAULT_SPEC and server.DEFAULT_SPEC.is_file()  # the repository's example
    monkeypatch.setattr(server, "DEFAULT_SPEC", tmp_path / "site-packages" / "examples" / "personal_assistant.yaml")
    with pytest.raises(ConfigurationError, match="set PERSONAGRAPH_SPEC_PATH to a spec file"):
        server._from_spec(cast(Any, None))  # before the assistant is touched
    own = tmp_path / "mine.yaml"
    monkeypatch.setenv(server.SPEC_ENV, str(own))
    assert server._spec_path() == own


# --- slow: a real `langgraph dev` ---------------------------------------------------------------

class DevServer:
    """`langgraph dev` in its own process group, its output in a log file."""

    def __init__(self, workdir: Path, data_dir: Path) -> None:
        self.url = f"http://{HOST}:{PORT}"
        self.log = workdir / "langgraph-dev.log"
        self.data_dir = data_dir
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(OFFLINE_ENV)
        env.update({
            "PERSONAGRAPH_DATA_DIR": str(data_dir),
            "PERSONAGRAPH_CHAT_MODEL": "none",  # reflection by the deterministic extractor: no model call
            "PERSONAGRAPH_ADAPTER_AUTO_TRAIN": "false",
        })
        cli = Path(sys.executable).with_name("langgraph")
        command = [str(cli)] if cli.exists() else [sys.executable, "-m", "langgraph_cli"]
        command += ["dev", "--config", str(CONFIG), "--host", HOST, "--port", str(PORT), "--no-browser", "--no-reload"]
        with self.log.open("wb") as out:
            # cwd: the run's folder, where the in-memory runtime keeps .langgraph_api/
            self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"langgraph dev exited with {self.process.returncode}\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"langgraph dev was not ready on {self.url} after {timeout:.0f} s\n{self.tail()}")

    def stop(self, grace: float = 60.0) -> int | None:
        """SIGTERM to the group (the server closes the store, so the memory, on its way out), then SIGKILL."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass
        try:  # anything the server left in its group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.process.returncode

    def tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "--- langgraph dev log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    @contextmanager
    def explained(self) -> Iterator[None]:
        """A failure inside shows the server's log tail with it."""
        try:
            yield
        except BaseException:
            print(self.tail())
            raise


def _port_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, PORT))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    pytest.importorskip("langgraph_api", reason="needs langgraph-cli[inmem] (personagraph[server])")
    if not _port_free():  # langgraph dev would quietly move to another port
        pytest.fail(f"port {PORT} on {HOST} is taken; set PERSONAGRAPH_TEST_LANGGRAPH_PORT to a free one")
    workdir = tmp_path_factory.mktemp("langgraph-dev")
    dev = DevServer(workdir, workdir / "personagraph-data")
    try:
        dev.wait_ready()
        yield dev
    finally:
        dev.stop()


def _client(dev: DevServer) -> Any:
    from langgraph_sdk import get_sync_client

    return get_sync_client(url=dev.url, api_key=None, timeout=httpx.Timeout(10.0, read=300.0))


def _respond(client: Any, user_id: str, query: str, graph: str = "respond") -> dict[str, Any]:
    thread = client.threads.create(metadata={"user_id": user_id})
    out = client.runs.wait(thread["thread_id"], graph, input={"user_id": user_id, "query": query})
    assert isinstance(out, dict) and out.get("answer"), out
    assert out["thread_id"] == thread["thread_id"]  # the LangGraph thread is the conversation thread
    return out


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout:.0f} s")


def _mentions(records: list[dict[str, Any]], word: str) -> list[dict[str, Any]]:
    return [r for r in records if word.lower() in json.dumps(r).lower()]


@pytest.mark.slow
def test_a_fact_told_in_one_thread_is_used_in_another_of_the_same_user_only(dev_server: DevServer) -> None:
    with dev_server.explained():
        client = _client(dev_server)
        assert {a["graph_id"] for a in client.assistants.search()} == {"respond", "reflection", "assistant_from_spec"}

        told = _respond(client, "alice", "I moved to Lisbon last month.")
        assert len(told["event_ids"]) == 2  # the exchange is stored, and handed to background reflection

        # Reflection happens in the background a moment later; its fact shows in the store.
        facts = _until(lambda: _mentions(client.store.search_items(["alice", "facts"], limit=20)["items"], "Lisbon"),
                       60, "fact about Lisbon in alice's memory")
        fact_ids = {f["key"] for f in facts}

        asked = _respond(client, "alice", "Where do I live?")  # a new thread
        assert {i["id"] for i in asked["items"] if i["kind"] == "fact"} & fact_ids, asked["items"]
        assert _mentions(asked["quotes"], "Lisbon"), asked["quotes"]
        assert asked["plan"]["memory_kinds"], asked["plan"]

        for graph_id in ("respond", "assistant_from_spec"):  # what Studio draws its input form from
            (assistant,) = client.assistants.search(graph_id=graph_id)
            assert {"user_id", "query"} <= set(client.assistants.get_schemas(assistant["assistant_id"])["input_schema"]["properties"])

        via_spec = _respond(client, "alice", "Where do I live?", graph="assistant_from_spec")  # the YAML spec's graph
        assert {i["id"] for i in via_spec["items"] if i["kind"] == "fact"} & fact_ids, via_spec["items"]

        alices = {*fact_ids, *told["event_ids"]}
        other = _respond(client, "bob", "Where do I live?")
        assert not {i["id"] for i in other["items"]} & alices and not _mentions(other["items"], "Lisbon")
        assert not {q["record_id"] for q in other["quotes"]} & alices and not _mentions(other["quotes"], "Lisbon")
        assert not _mentions(client.store.search_items(["bob"], query="Lisbon", limit=50)["items"], "Lisbon")


@pytest.mark.slow
def test_the_store_routes_reach_persona_store(dev_server: DevServer) -> None:
    with dev_server.explained():
        client = _client(dev_server)
        client.store.put_item(["carol", "notes"], "seat", {"text": "Carol prefers a window seat on long flights."})
        got = client.store.get_item(["carol", "notes"], "seat")
        assert got["value"] == {"text": "Carol prefers a window seat on long flights."}
        found = client.store.search_items(["carol"], query="which seat on a plane", limit=5)["items"]
        assert [i["key"] for i in found][:1] == ["seat"] and found[0]["namespace"] == ["carol", "notes"]
        assert not client.store.search_items(["dave"], query="which seat on a plane", limit=5)["items"]
        assert ["carol", "notes"] in client.store.list_namespaces(prefix=["carol"])["namespaces"]
        for across_users in (lambda: client.store.search_items([], query="which seat on a plane"),
                             lambda: client.store.search_items([]), client.store.list_namespaces):
            with pytest.raises(httpx.HTTPStatusError) as refused:
                across_users()
            assert refused.value.response.status_code == 400 and "spans users" in refused.value.response.text
        client.store.delete_item(["carol", "notes"], "seat")
        assert client.store.get_item(["carol", "notes"], "seat") is None


@pytest.mark.slow
def test_the_memory_outlives_the_server(dev_server: DevServer) -> None:
    """After a graceful stop the data folder is released and holds what the server learned."""
    from personagraph.factory import open_memory
    from personagraph.settings import Settings

    with dev_server.explained():
        assert dev_server.stop() is not None
        memory = open_memory(Settings(data_dir=dev_server.data_dir))
        try:
            assert [f.text for f in memory.facts(Scope(user_id="alice")) if "Lisbon" in f.text]
            assert not memory.facts(Scope(user_id="bob"))
        finally:
            memory.close()
