"""Checkpoints in the gateway's store: which router snapshot holds feedback up to which seq,
and how far retention has deleted feedback (a snapshot older than that cannot be brought up
to date)."""

from __future__ import annotations

from collections.abc import Callable

from mixllm.serve._records import _check_id, _check_seq, _time
from mixllm.serve._store_spend import SpendStore

__all__ = ["KEEP_CHECKPOINTS", "CheckpointStore"]

#: Checkpoints kept on disk; feedback that any of them lacks is kept in the store.
KEEP_CHECKPOINTS = 2


class CheckpointStore(SpendStore):
    """The ``checkpoints`` table's and retention marker's methods of
    :class:`~mixllm.serve.store.Store`, and its clock."""

    _clock: Callable[[], float] | None = None

    def _now(self, now: float | None) -> float:
        return _time(now, self._clock)

    def record_checkpoint(self, path: str, feedback_seq: int, *, now: float | None = None) -> int:
        """Record a checkpoint at ``path`` that includes feedback up to ``feedback_seq``."""
        _check_id("checkpoint path", path)
        _check_seq("feedback_seq", feedback_seq)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO checkpoints (created_at, path, feedback_seq) VALUES (?, ?, ?)",
                (self._now(now), path, feedback_seq),
            )
            return int(cursor.lastrowid or 0)

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
