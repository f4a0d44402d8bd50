"""A real, throwaway PostgreSQL server for tests.

The Postgres backend is only trustworthy if it is tested against a real server, so this
starts one from the local PostgreSQL binaries in a temporary folder, on 127.0.0.1 only,
and removes every trace of it afterwards. PostgreSQL refuses to run as root, so under root
it runs as the `postgres` system user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
TEST_DATABASE = "personagraph_test"
# Durability against crashes is not under test; skipping fsync keeps the suite fast.
_SPEED_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def _missing_tools() -> list[str]:
    """What this machine lacks to run a server (empty when everything is there)."""
    missing = [str(PG_BIN / tool) for tool in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / tool).is_file()]
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser (needed to drop root for the server)")
    return missing


def _as_server_user(argv: list[str]) -> list[str]:
    """PostgreSQL will not start as root, so root hands the command to the postgres user."""
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str]) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr or done.stdout}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_options(port: int, socket_dir: Path) -> str:
    settings = ["listen_addresses=127.0.0.1", f"port={port}", f"unix_socket_directories={socket_dir}"]
    return " ".join(f"-c {setting}" for setting in [*settings, *_SPEED_SETTINGS])


def create_database(url: str, name: str) -> str:
    """Create an empty database on `url`'s server and return its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@contextmanager
def running_postgres() -> Iterator[str]:
    """Run a fresh server for the duration of the block; yields the `postgres` database URL."""
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER, SERVER_USER)
    data, log = root / "data", root / "server.log"
    try:
        _run([str(PG_BIN / "initdb"), "-D", str(data), "--auth=trust", "-U", SERVER_USER, "-E", "UTF8", "--no-sync"])
        port = _free_port()
        try:
            _run([str(PG_BIN / "pg_ctl"), "start", "-w", "-D", str(data), "-l", str(log), "-o", _server_options(port, root)])
        except RuntimeError as exc:
            server_log = log.read_text(errors="replace") if log.exists() else "(no server log)"
            raise RuntimeError(f"{exc}\n{server_log}") from exc
        try:
            yield f"postgresql://{SERVER_USER}@127.0.0.1:{port}/postgres"
        finally:
            _run([str(PG_BIN / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of an empty database on a server that lives for the whole test session."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"PostgreSQL 15 server tools not found: {', '.join(missing)} (set PG_BIN to their folder)")
    with running_postgres() as admin_url:
        yield create_database(admin_url, TEST_DATABASE)
