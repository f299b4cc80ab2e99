"""The SQLite layer under :mod:`mixllm.serve.store`: one connection shared under a lock, the
file checked at open, migrations, transactions, and ``sqlite3`` errors turned into
:class:`~mixllm.errors.PersistError` (:class:`StoreDamagedError` when the file is damaged).

:class:`Connection` is what the store's SQL runs on: a ``sqlite3`` connection here, an adapter
of the same shape on PostgreSQL (:mod:`mixllm.serve._postgres`)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

from mixllm.errors import PersistError

__all__ = ["Connection", "Cursor", "Database", "StoreDamagedError"]

logger = logging.getLogger("mixllm.serve.store")

#: SQLite's result codes for a damaged file: SQLITE_CORRUPT and SQLITE_NOTADB.
_DAMAGE_CODES = frozenset({11, 26})
_DAMAGE_WORDS = ("malformed", "not a database", "corrupt")

#: How often :meth:`Database.wait_feedback` looks for new feedback (seconds).
_POLL_S = 0.05


class Cursor(Protocol):
    """The result of :meth:`Connection.execute`: rows readable by index and by column name."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the store's SQL runs on: ``execute`` takes SQLite-style SQL (``?`` or ``:name``
    placeholders)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...


class StoreDamagedError(PersistError):
    """The store's database file is damaged or is not a SQLite database: it cannot be used.

    ``path`` is the file and ``detail`` what SQLite found (both empty when not known).
    """

    def __init__(self, message: str, *, path: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.detail = detail


def damaged(path: str, detail: str) -> StoreDamagedError:
    """The error for a damaged store file, saying what to do about it."""
    name = Path(path).name
    return StoreDamagedError(
        f"store {path!r} is damaged ({detail}); it cannot be used. Move it aside (with "
        f"{name}-wal and {name}-shm if present) and restart from the newest checkpoint: the "
        "spend and feedback stored since that checkpoint are lost",
        path=path,
        detail=detail,
    )


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the database file is damaged (not busy, full, read-only, ...)."""
    if getattr(exc, "sqlite_errorcode", None) in _DAMAGE_CODES:  # Python >= 3.11
        return True
    return isinstance(exc, sqlite3.DatabaseError) and any(w in str(exc) for w in _DAMAGE_WORDS)


def persist_error(path: str, exc: sqlite3.Error) -> PersistError:
    """``exc`` as the PersistError the store raises (a StoreDamagedError for damage)."""
    if is_damage(exc):
        return damaged(path, str(exc))
    return PersistError(f"store {path!r}: {exc}")


def connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with ``synchronous=FULL`` and foreign keys on,
    in autocommit mode (the store issues BEGIN and COMMIT itself)."""
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise PersistError(f"cannot open store {path!r} ({exc})") from None
    conn.row_factory = sqlite3.Row
    try:
        if path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                logger.warning("store %r: journal_mode is %r, not 'wal'", path, mode)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
    except sqlite3.Error as exc:
        conn.close()
        if is_damage(exc):
            raise damaged(path, str(exc)) from None
        raise PersistError(f"{path}: not a usable SQLite database ({exc})") from None
    return conn


def check_integrity(conn: sqlite3.Connection, path: str) -> None:
    """Raise StoreDamagedError unless ``PRAGMA quick_check`` finds the file sound (it reads
    every page of every table and index) and every table can be counted."""
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise damaged(path, "; ".join(problems[:3]))
        tables = [
            str(row[0])
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            quoted = table.replace('"', '""')
            conn.execute(f'SELECT COUNT(*) FROM "{quoted}"').fetchone()
    except sqlite3.Error as exc:
        raise persist_error(path, exc) from None


def newer_schema(path: str, current: int, known: int) -> PersistError:
    """The error for a store whose schema a newer mixllm wrote."""
    return PersistError(
        f"{path}: schema version {current} is newer than this mixllm knows (version {known}); "
        "upgrade mixllm to use this store"
    )


def statements(script: str) -> Iterator[str]:
    """Split an SQL script into statements (``executescript`` would commit our transaction)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending
            pending = ""


class Database:
    """One SQLite connection shared by threads under a lock; the file is checked when opened.

    Parameters
    ----------
    path:
        The database file (created if missing), or ``":memory:"``.
    busy_timeout_s:
        How long a write waits for another connection's write lock before it fails.
    """

    #: The SQL dialect, for the few statements that differ between backends.
    dialect = "sqlite"

    def __init__(self, path: str, busy_timeout_s: float) -> None:
        self._open(path, busy_timeout_s)

    def _open(self, path: str, busy_timeout_s: float) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = connect(path, busy_timeout_s)
        try:
            check_integrity(self._conn, path)
        except BaseException:
            self.close()
            raise

    def migrate(self, migrations: Sequence[str]) -> None:
        """Apply the migrations this database lacks, one transaction each."""
        known = len(migrations)
        while True:
            with self._write() as conn:
                current = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if current > known:
                    raise newer_schema(self.path, current, known)
                if current == known:
                    return
                for statement in statements(migrations[current]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {current + 1}")
            logger.info("store %r: applied migration %d", self.path, current + 1)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise PersistError(f"store {self.path!r} is closed; expected an open Store")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction under the lock: committed on exit, rolled back on error."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):  # a damaged file may refuse that too
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise persist_error(self.path, exc) from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """The connection under the lock, for reads."""
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                raise persist_error(self.path, exc) from exc

    def _notify_feedback(self, conn: Connection, seq: int) -> None:
        """Tell waiting readers about feedback ``seq`` (written in ``conn``'s transaction):
        nothing to do here, :meth:`wait_feedback` polls."""

    def _wait_feedback(self, after_seq: int, timeout_s: float) -> bool:
        """Whether feedback with a seq above ``after_seq`` is stored, waiting up to
        ``timeout_s`` seconds for it (here by looking every 50 ms)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._read() as conn:
                row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM feedback").fetchone()
            if int(row[0]) > after_seq:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_POLL_S, left))

    @contextmanager
    def checkpoint_lock(self) -> Iterator[bool]:
        """Whether this process may write checkpoints: always ``True`` with SQLite (one
        gateway per file)."""
        yield True

    def close(self) -> None:
        """Close the database (idempotent); any later call raises PersistError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
