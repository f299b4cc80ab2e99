"""A throwaway PostgreSQL server for tests: started once per test session (per xdist worker) on
127.0.0.1 and a free port, in a temporary directory, stopped and deleted at the end.

Use it by naming the fixtures in a test module (assigned, not imported, so that test
parameters of the same name are not flagged as redefinitions)::

    from tests import pg_service

    pg_server, pg_database = pg_service.pg_server, pg_service.pg_database

``postgres_url`` is the server's URL; :func:`fresh_database` makes a new empty database on it for
one test. ``pg_server`` can be stopped and started again (same port and data) by outage tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin")
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) are needed by the replica tests: install "
    "them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) or put "
    "them on PATH"
)


def _binary(name: str) -> str:
    for folder in BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found; {INSTALL_HINT}", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, on 127.0.0.1:``port``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mixllm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._pg_ctl = _binary("pg_ctl")
        self._user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root: run them as 'postgres'
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root without a 'postgres' user; " + INSTALL_HINT)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]
        self._run(
            _binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self.running = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._user, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed: {result.stderr[-2000:]}\n{log}")

    def start(self) -> None:
        """Start the server (same port and data as before) and wait until it accepts."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            self._pg_ctl, "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
            "-o", options,
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop the server now (open connections are cut)."""
        if self.running:
            self._run(self._pg_ctl, "stop", "-D", str(self.data), "-m", "fast", "-w")
            self.running = False

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def fresh_database(url: str) -> str:
    """A new empty database on the server of ``url`` (which names any of its databases): the
    URL of that database."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (running; tests that stop it must start it again)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_url(pg_server: PostgresServer) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/postgres`` of the session's server."""
    return pg_server.url


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> str:
    """The URL of a new empty database for this test (the server started if a test stopped
    it)."""
    if not pg_server.running:
        pg_server.start()
    return fresh_database(pg_server.url)


def read_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """The rows of ``sql`` read on a connection of its own (so only committed rows), from the
    SQLite file or PostgreSQL database at ``url`` (a path or a postgresql:// URL)."""
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    conn = sqlite3.connect(url)
    try:
        return [tuple(row) for row in conn.execute(sql).fetchall()]
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store for one test on each backend: a new SQLite file's path, a new PostgreSQL
    database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return str(request.getfixturevalue("pg_database"))
