"""Complete deletion (issue 8, item 4): after a forget, nothing of the user is left anywhere.

Each trial gives a user a full footprint on the embedded stack in one data folder shared with a
user who stays: messages answered through the chat service and the assistant (respond graph,
reflection's facts, entities and relations), feedback, LangGraph store items, a checkpointed
`graph run` thread, a log file, and (with `profile.train_adapter`) a trained adapter. Then the
user is forgotten and everything is scanned:
- every file under the data folder and the log, byte for byte, for the user's words (unique
  canary tokens), their label, their record ids and the raw bytes of one of their vectors;
- the live objects (memory caches, chat service, feedback recorder, scheduler, reflection
  queue) for the user's scope or words;
- the forget receipt, which must say it is complete.
The user who stays is the control: their words must still be found, or the scan is blind.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from personagraph.graphs.spec import compile_spec, load_spec
from personagraph.graphs.spec.runtime import SpecRuntime
from personagraph.memory import Embedder, Memory, MiniLMEmbedder, Scope
from personagraph.memory.persona_store import PersonaStore

from personagraph.assistant import Assistant
from personagraph.bridges import ChatService, Speaker
from personagraph.graph_checkpoints import checkpoints_path, thread_id
from personagraph.settings import Settings

from ..common import fresh_memory
from .echo_model import EchoChatModel
from .part import PartResult
from .profile import Profile
from .scan import files_holding

SPEC = Path(__file__).resolve().parents[2] / "examples" / "personal_assistant.yaml"
_STORY = (
    "Hi, I'm {name}. I live in {canary}ville and I work as a nurse.",
    "My sister {canary}a loves horror films.",
    "I really enjoy {canary}ball on weekends.",
    "Please always keep your answers short.",
    "Next month I'm moving to {canary}port with my dog.",
)


class _Deployment:
    """One data folder: memory, an assistant on the echo model, the chat service, store, log."""

    def __init__(self, root: Path, embedder: Embedder) -> None:
        self.settings = Settings(data_dir=root / "data", adapter_auto_train=False, adapter_min_messages=4)
        self.memory: Memory = fresh_memory(self.settings.data_dir, embedder)
        self.assistant = Assistant(self.memory, chat_model=EchoChatModel(), reflection_model="none", settings=self.settings)
        self.service = ChatService(self.assistant)
        self.store = PersonaStore(self.memory)
        self.log_path = root / "logs" / "personagraph.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = logging.FileHandler(self.log_path)
        self._log.setLevel(logging.DEBUG)
        logging.getLogger("personagraph").addHandler(self._log)
        logging.getLogger("personagraph").setLevel(logging.DEBUG)

    def close(self) -> None:
        logging.getLogger("personagraph").removeHandler(self._log)
        self._log.close()
        self.assistant.close()
        self.memory.close()


def _footprint(dep: _Deployment, name: str, canary: str, *, train: bool) -> tuple[Scope, Speaker, list[str]]:
    """Give one person everything a user can leave behind; returns their scope, speaker and record ids."""
    speaker = Speaker("slack", ("T1", f"U{canary.upper()}"), name=name)
    scope = dep.service.scope(speaker)
    lines = [line.format(name=name, canary=canary) for line in _STORY]
    replies = [dep.service.answer(speaker, line, conversation=("C1", "thread")) for line in lines]
    dep.service.posted(speaker, replies[0], ("C1", f"{canary}-msg"))
    dep.service.react(speaker, ("C1", f"{canary}-msg"), "+1")
    dep.assistant.thumbs(scope, replies[1].reply_id, up=False, comment=f"too long, {canary}")
    dep.store.put((scope.user_id, "notes"), "n1", {"text": f"{name} keeps a {canary} diary"})
    dep.assistant.reflection.flush()
    spec = load_spec(SPEC)
    with SqliteSaver.from_conn_string(str(checkpoints_path(dep.settings))) as saver:
        graph = compile_spec(spec, SpecRuntime.from_assistant(dep.assistant), checkpointer=saver)
        config = {"configurable": {"thread_id": thread_id(scope, spec.name or "graph", "t1"), "user_id": scope.user_id}}
        graph.invoke({"tenant": scope.tenant, "user_id": scope.user_id, "thread_id": "spec", "query": f"what about {canary}ville?"}, config)
    if train:
        from personagraph.agents.adapters.training import TrainConfig

        dep.assistant.train_adapter(scope, "prompt", config=TrainConfig(kind="prompt", time_budget_s=20), progress=False)
    ids = [r["id"] for records in dep.memory.export(scope)["records"].values() for r in records]
    return scope, speaker, ids


def _live_objects(dep: _Deployment) -> list[Any]:
    return [dep.memory.graphs, dep.memory.timelines, dep.service, dep.assistant.feedback, dep.assistant.reflection,
            dep.assistant.registry, *([dep.assistant.retraining] if dep.assistant.retraining else [])]


def _walk(value: Any, seen: set[int], depth: int = 0) -> Iterator[Any]:
    """Every value reachable from `value` through personagraph objects and plain containers."""
    if id(value) in seen or depth > 8:
        return
    seen.add(id(value))
    yield value
    if isinstance(value, dict):
        for k, v in list(value.items()):
            yield from _walk(k, seen, depth + 1)
            yield from _walk(v, seen, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in list(value):
            yield from _walk(v, seen, depth + 1)
    elif type(value).__module__.startswith("personagraph") and hasattr(value, "__dict__"):
        for v in list(vars(value).values()):
            yield from _walk(v, seen, depth + 1)


def _in_process(dep: _Deployment, scope: Scope, needles: list[str]) -> list[str]:
    found = []
    for value in _walk(_live_objects(dep), set()):
        if isinstance(value, Scope) and value == scope:
            found.append(f"scope object in {type(value).__name__}")
        elif isinstance(value, str) and any(n in value for n in needles):
            found.append(f"text {value[:60]!r}")
    return found


def _vector_bytes(embedder: Embedder, text: str) -> bytes:
    """The first floats of one of the user's dense vectors, as the index stores them."""
    return struct.pack("<4f", *embedder.embed_documents([text])[0][:4])


def run(profile: Profile, workdir: Path, embedder: Embedder | None = None) -> PartResult:
    started = time.perf_counter()
    embedder = embedder or MiniLMEmbedder()
    dep = _Deployment(workdir, embedder)
    trials: list[dict[str, Any]] = []
    try:
        kept_scope, _, kept_ids = _footprint(dep, "Dana", "zqkeep", train=False)
        kept_vector = _vector_bytes(embedder, dep.memory.events(kept_scope)[0].index_text())
        for n in range(profile.deletion_users):
            canary = f"zqgone{n}x"
            scope, speaker, ids = _footprint(dep, f"Gina{n}", canary, train=profile.train_adapter and n == 0)
            event_text = dep.memory.events(scope)[0].index_text()
            receipt = dep.service.forget(speaker)
            dep.memory.index.flush()
            # Entity ids come from names ("nurse", "dog"): one the kept user also has is theirs too.
            needles = [canary, scope.user_id, *(set(ids) - set(kept_ids))]
            in_files = files_holding(workdir, [*needles, _vector_bytes(embedder, event_text)])
            trials.append({
                "user": scope.user_id, "records": len(ids), "receipt_complete": receipt.complete,
                "receipt": receipt.model_dump(mode="json", exclude={"scope"}),
                "residue_files": in_files,
                "residue_in_process": _in_process(dep, scope, [canary, scope.user_id]),
            })
        dep.memory.index.flush()
        control = files_holding(workdir, ["zqkeep", kept_vector])  # the scan must still see the kept user
    finally:
        dep.close()
    figures = {
        "users_forgotten": len(trials),
        "records_deleted": sum(t["records"] for t in trials),
        "incomplete_receipts": sum(not t["receipt_complete"] for t in trials),
        "residue_files": sum(len(t["residue_files"]) for t in trials),
        "residue_in_process": sum(len(t["residue_in_process"]) for t in trials),
        "control_blind": 2 - len(control),  # the kept user's words and vector must still be found
        "adapters_deleted": sum(t["receipt"]["records_deleted"].get("adapter", 0) for t in trials),
    }
    return PartResult(
        part="deletion", figures=figures,
        must_be_zero=("incomplete_receipts", "residue_files", "residue_in_process", "control_blind"),
        seconds=time.perf_counter() - started, details={"trials": trials, "control_files": control},
    )
