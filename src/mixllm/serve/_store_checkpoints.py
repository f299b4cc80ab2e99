"""Checkpoints in the gateway's store: which router snapshot holds feedback up to which seq (a
file's path, or the snapshot's bytes in the database itself), how far retention has deleted
feedback (a snapshot older than that cannot be brought up to date), and waiting for new
feedback."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from mixllm.errors import ConfigError
from mixllm.serve._records import _check_id, _check_seq, _number, _time
from mixllm.serve._store_spend import SpendStore

__all__ = ["CHECKPOINT_DATA_MIGRATION", "KEEP_CHECKPOINTS", "CheckpointStore"]

logger = logging.getLogger("mixllm.serve.store")

#: Checkpoints kept on disk; feedback that any of them lacks is kept in the store.
KEEP_CHECKPOINTS = 2

#: The schema change that adds checkpoints stored in the database (SQLite's migrations).
CHECKPOINT_DATA_MIGRATION = """
    CREATE TABLE checkpoint_data (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        feedback_seq INTEGER NOT NULL,  -- the last feedback seq the checkpoint includes
        data BLOB NOT NULL
    );
"""


class CheckpointStore(SpendStore):
    """The ``checkpoints`` table's and retention's methods of
    :class:`~mixllm.serve.store.Store`, and its clock."""

    _clock: Callable[[], float] | None = None
    retention_s: float | None = None

    def _now(self, now: float | None) -> float:
        return _time(now, self._clock)

    def _cutoff(self, now: float | None) -> float:
        """Decisions created before this are past retention (-inf without retention)."""
        return -math.inf if self.retention_s is None else self._now(now) - self.retention_s

    def purge(self, now: float | None = None) -> int:
        """Delete the decisions past retention with their feedback, except feedback that one
        of the two newest checkpoints lacks (a restart replays it) and its decision; how many
        decisions were deleted (0 without ``retention_s``)."""
        if self.retention_s is None:
            return 0
        cutoff = self._cutoff(now)
        old = "SELECT decision_id FROM decisions WHERE created_at < :cutoff"
        with self._write() as conn:
            keep = int(conn.execute(_KEEP_SEQ, {"n": KEEP_CHECKPOINTS}).fetchone()[0])
            args = {"cutoff": cutoff, "keep": keep}
            done = f"FROM feedback WHERE seq <= :keep AND decision_id IN ({old})"
            last = conn.execute(f"SELECT MAX(seq) {done}", args).fetchone()[0]
            conn.execute(f"DELETE {done}", args)
            deleted = conn.execute(
                "DELETE FROM decisions WHERE created_at < :cutoff AND decision_id NOT IN "
                "(SELECT decision_id FROM feedback)",
                args,
            ).rowcount
            if last is not None:
                conn.execute(
                    "UPDATE status SET purged_feedback_seq = ? WHERE purged_feedback_seq < ?",
                    (int(last), int(last)),
                )
        if deleted:
            logger.info("store %r: purged %d decisions past retention", self.path, deleted)
        return int(deleted)

    def record_checkpoint(self, path: str, feedback_seq: int, *, now: float | None = None) -> int:
        """Record a checkpoint at ``path`` that includes feedback up to ``feedback_seq``."""
        _check_id("checkpoint path", path)
        _check_seq("feedback_seq", feedback_seq)
        with self._write() as conn:
            rows = conn.execute(
                "INSERT INTO checkpoints (created_at, path, feedback_seq) VALUES (?, ?, ?) "
                "RETURNING seq",
                (self._now(now), path, feedback_seq),
            ).fetchall()
            return int(rows[0][0])

    def last_checkpoint(self) -> tuple[str, int] | None:
        """``(path, feedback_seq)`` of the latest checkpoint, or ``None`` before the first."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT path, feedback_seq FROM checkpoints ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (str(row["path"]), int(row["feedback_seq"]))

    def checkpoints(self) -> list[tuple[str, int]]:
        """``(path, feedback_seq)`` of every recorded checkpoint, the latest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT path, feedback_seq FROM checkpoints ORDER BY seq DESC"
            ).fetchall()
        return [(str(r["path"]), int(r["feedback_seq"])) for r in rows]

    def purged_seq(self) -> int:
        """Retention deleted feedback up to this seq (0: none): a checkpoint older than that
        can no longer be brought up to date."""
        with self._read() as conn:
            row = conn.execute("SELECT purged_feedback_seq FROM status").fetchone()
        return 0 if row is None else int(row[0])

    def record_checkpoint_data(
        self, data: bytes, feedback_seq: int, *, now: float | None = None
    ) -> int:
        """Store a checkpoint's bytes, which include feedback up to ``feedback_seq``; its seq.
        Only the newest :data:`KEEP_CHECKPOINTS` are kept."""
        if not isinstance(data, (bytes, bytearray, memoryview)) or not data:
            raise ConfigError(f"checkpoint data of type {type(data).__name__}; expected bytes")
        _check_seq("feedback_seq", feedback_seq)
        with self._write() as conn:
            rows = conn.execute(
                "INSERT INTO checkpoint_data (created_at, feedback_seq, data) VALUES (?, ?, ?) "
                "RETURNING seq",
                (self._now(now), feedback_seq, bytes(data)),
            ).fetchall()
            seq = int(rows[0][0])
            conn.execute("DELETE FROM checkpoint_data WHERE seq <= ?", (seq - KEEP_CHECKPOINTS,))
            return seq

    def last_checkpoint_data(self) -> tuple[bytes, int] | None:
        """``(data, feedback_seq)`` of the newest checkpoint stored in the database, or
        ``None`` before the first."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT data, feedback_seq FROM checkpoint_data ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (bytes(row[0]), int(row[1]))

    def wait_feedback(self, after_seq: int, timeout_s: float) -> bool:
        """``True`` as soon as feedback with a seq above ``after_seq`` is stored (by any
        replica), ``False`` after ``timeout_s`` seconds without."""
        _check_seq("after_seq", after_seq)
        timeout = _number("timeout_s", timeout_s, "seconds >= 0", minimum=0.0)
        return self._wait_feedback(after_seq, timeout)


#: The oldest feedback seq that the newest checkpoints (files and data alike) all hold.
_KEEP_SEQ = (
    "SELECT COALESCE(MIN(feedback_seq), 0) FROM ("
    "SELECT feedback_seq FROM (SELECT feedback_seq FROM checkpoints ORDER BY seq DESC LIMIT :n) "
    "AS f UNION ALL SELECT feedback_seq FROM (SELECT feedback_seq FROM checkpoint_data "
    "ORDER BY seq DESC LIMIT :n) AS d) AS k"
)
