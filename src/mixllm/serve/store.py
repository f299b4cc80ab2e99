"""Durable store of the gateway's decisions, feedback, checkpoints and spend (SQLite, no ORM).

Every write commits before it returns (``synchronous=FULL``), so a return means the row
survives a crash. After a restart, :meth:`Store.feedback_since` gives the feedback received
after the last checkpoint, to be applied again. The schema changes only through
:data:`MIGRATIONS`, applied in order, each in its own transaction; ``PRAGMA user_version``
counts those applied.

>>> store = Store(":memory:")
>>> store.record_decision(Decision("q1", "small", 1.0, decision_id="d1"), now=0.0)
>>> store.record_feedback("d1", Feedback(quality=0.9), now=1.0)
1
>>> store.record_feedback("d1", Feedback(quality=0.1)) is None  # the first feedback wins
True
>>> store.add_spend("key-a", 1.5, limit_usd=2.0), store.add_spend("key-a", 1.0, limit_usd=2.0)
(True, False)
>>> store.close()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mixllm.errors import ConfigError, PersistError, UnknownDecisionError
from mixllm.serve._records import (
    _check_id,
    _check_seq,
    _decision_from_row,
    _decision_row,
    _feedback_from_row,
    _number,
    _time,
    _usd,
)
from mixllm.types import Decision, Feedback

__all__ = ["MIGRATIONS", "Store"]

logger = logging.getLogger(__name__)

#: Schema changes, oldest first. Never edit one that has shipped: append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE decisions (
        decision_id TEXT PRIMARY KEY NOT NULL,
        created_at REAL NOT NULL,
        key_id TEXT NOT NULL,
        request_model TEXT NOT NULL,
        query_id TEXT NOT NULL,
        llm TEXT NOT NULL,
        lam REAL NOT NULL,
        prompt_tokens REAL,              -- NULL: unknown (NaN in Decision)
        scores TEXT NOT NULL,            -- JSON objects: LLM name -> number
        predicted_quality TEXT NOT NULL,
        predicted_cost_usd TEXT NOT NULL,
        predicted_wait_s TEXT NOT NULL,
        embedding BLOB,                  -- little-endian float32, embedding_dim of them
        embedding_dim INTEGER,
        answered_by TEXT,                -- the LLM that answered in the end (after fallbacks)
        cost_usd REAL
    );
    CREATE TABLE feedback (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id TEXT NOT NULL UNIQUE REFERENCES decisions (decision_id),
        received_at REAL NOT NULL,
        quality REAL,
        cost_usd REAL,
        reward INTEGER CHECK (reward IN (0, 1))
    );
    CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        path TEXT NOT NULL,
        feedback_seq INTEGER NOT NULL    -- the last feedback seq the checkpoint includes
    );
    CREATE TABLE spend (key_id TEXT PRIMARY KEY NOT NULL, usd REAL NOT NULL CHECK (usd >= 0));
    """,
    "CREATE INDEX decisions_created_at ON decisions (created_at);",
)

#: Slack when comparing a running total with a limit: 200 x 0.01 sums to 2.0000000000000013.
_SPEND_SLACK_USD = 1e-9


class Store:
    """Decisions, feedback, checkpoints and per-key spend in one SQLite database.

    Parameters
    ----------
    path:
        The database file (created with its tables if missing), or ``":memory:"`` for tests.
    busy_timeout_s:
        How long a write waits for another connection's write lock before it fails.

    All methods may be called from several threads: they share one connection under a lock.
    Writes take SQLite's write lock first (``BEGIN IMMEDIATE``), so several processes may
    share the file too. SQLite failures raise :class:`~mixllm.errors.PersistError`.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        if not isinstance(path, (str, Path)) or not str(path):
            raise ConfigError(f"store path={path!r}; expected a file path or ':memory:'")
        timeout_s = _number("busy_timeout_s", busy_timeout_s, "seconds >= 0", minimum=0.0)
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._connect(timeout_s)
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # -- connection and migrations ------------------------------------------------------------
    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        try:  # isolation_level=None: we issue BEGIN and COMMIT ourselves
            conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise PersistError(f"cannot open store {self.path!r} ({exc})") from None
        conn.row_factory = sqlite3.Row
        try:
            if self.path != ":memory:":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    logger.warning("store %r: journal_mode is %r, not 'wal'", self.path, mode)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
        except sqlite3.Error as exc:
            conn.close()
            raise PersistError(f"{self.path}: not a usable SQLite database ({exc})") from None
        return conn

    def _migrate(self) -> None:
        """Apply the migrations this database lacks, one transaction each."""
        known = len(MIGRATIONS)
        while True:
            with self._write() as conn:
                current = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if current > known:
                    raise PersistError(
                        f"{self.path}: schema version {current} is newer than this mixllm "
                        f"knows (version {known}); upgrade mixllm to use this store"
                    )
                if current == known:
                    return
                for statement in _statements(MIGRATIONS[current]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {current + 1}")
            logger.info("store %r: applied migration %d", self.path, current + 1)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise PersistError(f"store {self.path!r} is closed; expected an open Store")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed on exit, rolled back on error."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise PersistError(f"store {self.path!r}: {exc}") from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                raise PersistError(f"store {self.path!r}: {exc}") from exc

    def close(self) -> None:
        """Close the database (idempotent); any later call raises PersistError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- decisions ----------------------------------------------------------------------------
    def record_decision(
        self,
        decision: Decision,
        *,
        key_id: str = "",
        request_model: str = "",
        now: float | None = None,
    ) -> None:
        """Store ``decision``; its ``decision_id`` must be new (else ConfigError)."""
        if not isinstance(decision, Decision):
            raise ConfigError(f"decision={decision!r}; expected a mixllm.types.Decision")
        row = _decision_row(decision, key_id=key_id, request_model=request_model, now=now)
        with self._write() as conn:
            if _has_decision(conn, decision.decision_id):
                raise ConfigError(
                    f"decision_id {decision.decision_id!r} is already stored; expected a new id"
                )
            names = ", ".join(row)
            values = ", ".join(":" + name for name in row)
            conn.execute(f"INSERT INTO decisions ({names}) VALUES ({values})", row)

    def set_answer(self, decision_id: str, *, answered_by: str, cost_usd: float | None) -> None:
        """Record which LLM finally answered the decision's request, and what it cost."""
        _check_id("decision_id", decision_id)
        _check_id("answered_by", answered_by)
        cost = None if cost_usd is None else _usd("cost_usd", cost_usd)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE decisions SET answered_by = ?, cost_usd = ? WHERE decision_id = ?",
                (answered_by, cost, decision_id),
            )
            if cursor.rowcount == 0:
                raise _unknown_decision(decision_id)

    def get_decision(self, decision_id: str) -> Decision | None:
        """The stored decision, rebuilt as it was recorded, or ``None`` if unknown."""
        _check_id("decision_id", decision_id)
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM decisions WHERE decision_id = ?", (decision_id,)
            ).fetchone()
        return None if row is None else _decision_from_row(row)

    # -- feedback and checkpoints -------------------------------------------------------------
    def record_feedback(
        self, decision_id: str, feedback: Feedback, *, now: float | None = None
    ) -> int | None:
        """Store feedback on a decision; its seq, or ``None`` if that decision already has one.

        The first feedback wins: a repeated one changes nothing. Raises
        :class:`~mixllm.errors.UnknownDecisionError` for a decision that is not stored.
        """
        _check_id("decision_id", decision_id)
        if not isinstance(feedback, Feedback):
            raise ConfigError(f"feedback={feedback!r}; expected a mixllm.types.Feedback")
        reward = None if feedback.reward is None else int(bool(feedback.reward))
        quality = None if feedback.quality is None else float(feedback.quality)
        cost = None if feedback.cost_usd is None else float(feedback.cost_usd)
        with self._write() as conn:
            if not _has_decision(conn, decision_id):
                raise _unknown_decision(decision_id)
            cursor = conn.execute(
                "INSERT INTO feedback (decision_id, received_at, quality, cost_usd, reward) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO NOTHING",
                (decision_id, _time(now), quality, cost, reward),
            )
            return cursor.lastrowid if cursor.rowcount == 1 else None

    def feedback_since(self, seq: int) -> list[tuple[int, str, Feedback]]:
        """``(seq, decision_id, feedback)`` of every feedback after ``seq``, in seq order."""
        _check_seq("seq", seq)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT seq, decision_id, quality, cost_usd, reward FROM feedback "
                "WHERE seq > ? ORDER BY seq",
                (seq,),
            ).fetchall()
        return [(int(r["seq"]), str(r["decision_id"]), _feedback_from_row(r)) for r in rows]

    def record_checkpoint(self, path: str, feedback_seq: int, *, now: float | None = None) -> int:
        """Record a checkpoint at ``path`` that includes feedback up to ``feedback_seq``."""
        _check_id("checkpoint path", path)
        _check_seq("feedback_seq", feedback_seq)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO checkpoints (created_at, path, feedback_seq) VALUES (?, ?, ?)",
                (_time(now), path, feedback_seq),
            )
            return int(cursor.lastrowid or 0)

    def last_checkpoint(self) -> tuple[str, int] | None:
        """``(path, feedback_seq)`` of the latest checkpoint, or ``None`` before the first."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT path, feedback_seq FROM checkpoints ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (str(row["path"]), int(row["feedback_seq"]))

    # -- spend and counts ---------------------------------------------------------------------
    def add_spend(self, key_id: str, usd: float, *, limit_usd: float | None = None) -> bool:
        """Add ``usd`` to the key's total unless that passes ``limit_usd``; whether it did.

        Check and update are one transaction, so concurrent callers never pass the limit.
        """
        _check_id("key_id", key_id)
        amount = _usd("usd", usd)
        limit = None if limit_usd is None else _usd("limit_usd", limit_usd)
        with self._write() as conn:
            total = _spent(conn, key_id) + amount
            if limit is not None and total > limit + _SPEND_SLACK_USD:
                return False
            conn.execute(
                "INSERT INTO spend (key_id, usd) VALUES (?, ?) "
                "ON CONFLICT (key_id) DO UPDATE SET usd = excluded.usd",
                (key_id, total),
            )
            return True

    def settle_spend(self, key_id: str, reserved_usd: float, actual_usd: float) -> None:
        """Replace a reservation made by :meth:`add_spend` with the actual cost (which may be
        lower or higher: an answer already given is always charged)."""
        _check_id("key_id", key_id)
        delta = _usd("actual_usd", actual_usd) - _usd("reserved_usd", reserved_usd)
        with self._write() as conn:
            total = max(_spent(conn, key_id) + delta, 0.0)
            conn.execute(
                "INSERT INTO spend (key_id, usd) VALUES (?, ?) "
                "ON CONFLICT (key_id) DO UPDATE SET usd = excluded.usd",
                (key_id, total),
            )

    def spent(self, key_id: str) -> float:
        """The key's total spend in USD (0 for a key that never spent)."""
        _check_id("key_id", key_id)
        with self._read() as conn:
            return _spent(conn, key_id)

    def counts(self) -> dict[str, int]:
        """How many decisions, feedback and checkpoints are stored (for health and metrics)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM decisions), (SELECT COUNT(*) FROM feedback), "
                "(SELECT COUNT(*) FROM checkpoints)"
            ).fetchone()
        return {"decisions": int(row[0]), "feedback": int(row[1]), "checkpoints": int(row[2])}


def _statements(script: str) -> Iterator[str]:
    """Split an SQL script into statements (``executescript`` would commit our transaction)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending
            pending = ""


def _has_decision(conn: sqlite3.Connection, decision_id: str) -> bool:
    query = "SELECT 1 FROM decisions WHERE decision_id = ?"
    return conn.execute(query, (decision_id,)).fetchone() is not None


def _spent(conn: sqlite3.Connection, key_id: str) -> float:
    row = conn.execute("SELECT usd FROM spend WHERE key_id = ?", (key_id,)).fetchone()
    return 0.0 if row is None else float(row["usd"])


def _unknown_decision(decision_id: str) -> UnknownDecisionError:
    return UnknownDecisionError(
        f"decision {decision_id!r} is not in the store; expected the id of a recorded decision"
    )
