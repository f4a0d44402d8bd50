"""Where `personagraph graph run` keeps its checkpoints, and how a user's threads leave with them.

Thread ids are `<tenant>/<user>/<graph>/<thread>`, so one user's threads are one prefix and a
forget can find them all without reading any state.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from personagraph.memory import ForgetReceipt, Scope

from .settings import Settings


def checkpoints_path(settings: Settings) -> Path:
    return settings.data_dir / "graphs.sqlite"


def thread_id(scope: Scope, graph: str, thread: str) -> str:
    return f"{scope.tenant}/{scope.user_id}/{graph}/{thread}"


def _like_prefix(scope: Scope) -> str:
    escaped = f"{scope.tenant}/{scope.user_id}/".replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def user_threads(settings: Settings, scope: Scope) -> list[str]:
    """The checkpointed threads of one user (none when no graph was ever run)."""
    path = checkpoints_path(settings)
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'checkpoints'").fetchone():
            return []
        rows = conn.execute(
            "SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id LIKE ? ESCAPE '\\'", (_like_prefix(scope),),
        ).fetchall()
    return [r[0] for r in rows]


def forget_threads(settings: Settings, scope: Scope) -> int:
    """Delete every checkpoint and pending write of the user's graph runs; returns threads deleted.
    Deleted rows are overwritten (secure_delete) and the log is checkpointed, so no page keeps them."""
    threads = user_threads(settings, scope)
    if not threads:
        return 0
    with SqliteSaver.from_conn_string(str(checkpoints_path(settings))) as saver:
        saver.conn.execute("PRAGMA secure_delete=ON")
        for thread in threads:
            saver.delete_thread(thread)
        saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return len(threads)


def forget_checkpoints(settings: Settings, scope: Scope, receipt: ForgetReceipt) -> ForgetReceipt:
    """Delete the user's `graph run` threads and add them, and what is left of them, to `receipt`."""
    threads = forget_threads(settings, scope)
    return receipt.model_copy(update={
        "records_deleted": {**receipt.records_deleted, "checkpoint_threads": threads},
        "residue": {**receipt.residue, "checkpoints": len(user_threads(settings, scope))},
    })
