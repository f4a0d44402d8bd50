"""Cross-process: a second process opening a data dir the first one holds.

The embedded stack is one process per data dir (Qdrant Edge locks its write-ahead log; SQLite
alone would allow several). Here this process holds the memory, and each attempt is a fresh
subprocess that calls `open_memory` (or runs a `personagraph` command): it must fail at once with
`StoreInUseError` naming the data dir and the server settings, keep no file of the data dir open,
and leave this process's data as it was. Once the holder closes, a new process opens it fine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from personagraph.memory import Event, Memory, Scope
from personagraph.memory.errors import StoreInUseError

from personagraph.settings import Settings

# Run in the second process: open, report what happened and which files of the data dir it still holds.
_OPENER = """
import gc, json, os, sys, time
from pathlib import Path
from personagraph.factory import open_memory
from personagraph.settings import Settings
data_dir = Path(sys.argv[1])
started = time.perf_counter()
out = {}
try:
    memory = open_memory(Settings(data_dir=data_dir))
    out["opened"] = True
    out["users"] = {s.key: len(memory.events(s)) for s in memory.records.scopes()}
    memory.close()
except Exception as exc:
    out.update(error=type(exc).__name__, typed=[c.__name__ for c in type(exc).__mro__], message=str(exc))
out["seconds"] = time.perf_counter() - started
gc.collect()
held = []
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    if target.startswith(str(data_dir)):
        held.append(target)
out["held_files"] = held
print(json.dumps(out))
"""

# What a refusal must tell the user: which data dir, and the two ways to share memory.
MUST_SAY = ("PERSONAGRAPH_QDRANT_URL", "PERSONAGRAPH_POSTGRES_URL", "one process per data dir")


def _env() -> dict[str, str]:
    """The subprocess sees no server settings: it takes the embedded path, as a user's would."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PERSONAGRAPH_")} | {"HF_HUB_OFFLINE": "1"}


def _open_elsewhere(data_dir: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _OPENER, str(data_dir)], capture_output=True, text=True, timeout=300, env=_env(), check=False)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) | {"rc": done.returncode}
    except (IndexError, json.JSONDecodeError):
        return {"rc": done.returncode, "crash": done.stderr[-1500:]}


def _cli_elsewhere(data_dir: Path) -> dict[str, Any]:
    """`personagraph stats` in a second process: the refusal must be one line, exit code 2."""
    code = "import sys; from personagraph.cli import app; sys.argv[0] = 'personagraph'; app()"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "--data-dir", str(data_dir), "stats"],
                          capture_output=True, text=True, timeout=300, env=_env() | {"COLUMNS": "80"}, check=False)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return {"rc": done.returncode, "stderr_lines": len(lines), "stderr": done.stderr[-1500:],
            "stdout": done.stdout[-500:], "seconds": time.perf_counter() - started}


def clear_refusal(outcome: dict[str, Any], data_dir: Path) -> list[str]:
    """What is wrong with a second opener's outcome (empty: a clear, typed, clean refusal)."""
    wrong = []
    if outcome.get("error") != StoreInUseError.__name__ or "PersonagraphError" not in outcome.get("typed", []):
        wrong.append(f"not a StoreInUseError: {outcome}")
    message = outcome.get("message", "")
    wrong += [f"message does not say {s!r}" for s in (str(data_dir), *MUST_SAY) if s not in message]
    if outcome.get("held_files"):
        wrong.append(f"the failed opener still holds {outcome['held_files']}")
    return wrong


def clear_cli_refusal(outcome: dict[str, Any], data_dir: Path) -> list[str]:
    wrong = []
    if outcome["rc"] != 2 or outcome["stderr_lines"] != 1:
        wrong.append(f"exit code {outcome['rc']}, {outcome['stderr_lines']} lines on stderr")
    wrong += [f"the CLI line does not say {s!r}" for s in (str(data_dir), *MUST_SAY) if s not in outcome["stderr"]]
    return wrong


def _snapshot(memory: Memory) -> dict[str, Any]:
    scopes = memory.records.scopes()
    return {
        "records": {s.key: sorted(f"{r.kind}:{r.id}" for k in ("event", "fact", "entity", "item") for r in memory.records.list(s, k)) for s in scopes},
        "index": {s.key: sorted(f"{k}:{r}" for k, r in memory.index.keys(s)) for s in scopes},
    }


def cross_process(memory: Memory, data_dir: Path, attempts: int) -> dict[str, Any]:
    """`attempts` second openers (the last one through the CLI) while `memory` holds `data_dir`;
    closes `memory` at the end and checks a new process can then open the data."""
    before = _snapshot(memory)
    refusals, corruptions, cases = 0, 0, []
    for attempt in range(attempts):
        via_cli = attempt == attempts - 1
        outcome = _cli_elsewhere(data_dir) if via_cli else _open_elsewhere(data_dir)
        wrong = clear_cli_refusal(outcome, data_dir) if via_cli else clear_refusal(outcome, data_dir)
        intact = _snapshot(memory) == before
        refusals += not wrong
        corruptions += not intact
        cases.append({"via": "cli" if via_cli else "open_memory", "clear": not wrong, "wrong": wrong,
                      "intact": intact, "seconds": round(outcome.get("seconds", 0.0), 2)})
    # The holder still works after the refusals: it writes and finds what it wrote.
    probe = Scope(tenant="default", user_id="holder")
    memory.add_event(probe, Event(id="evt_after_refusals", thread_id="t", speaker="user", text="still writable after refusals"))
    found = any("evt_after_refusals" in i.sources for i in memory.search(probe, "still writable after refusals", k=3).items)
    corruptions += not found
    expected = {s: len([r for r in recs if r.startswith("event:")]) for s, recs in _snapshot(memory)["records"].items()}
    memory.close()
    reopened = _open_elsewhere(data_dir)  # the lock went with the holder, and the data is all there
    reopen_ok = reopened.get("opened") and reopened.get("users") == expected and not reopened.get("held_files")
    corruptions += not reopen_ok
    return {
        "cross_process_attempts": attempts, "cross_process_refusals_clear": refusals,
        "cross_process_corruptions": corruptions, "cases": cases, "holder_found_own_write": found,
        "reopen_after_close": {"ok": bool(reopen_ok), "expected_events": expected, "got": reopened},
    }


def embedded_settings(data_dir: Path) -> Settings:
    """The embedded stack in `data_dir`, whatever server settings the environment holds."""
    return Settings(data_dir=data_dir, qdrant_url=None, postgres_url=None)
