"""Durable store of the gateway's decisions, feedback, checkpoints and spend (SQLite or
PostgreSQL, no ORM; :func:`open_store` opens either).

Every write commits before it returns (``synchronous=FULL``), so a return means the row
survives a crash. After a restart, :meth:`Store.replay_since` gives the feedback received
after the last checkpoint, with its decisions, to be applied again. The schema changes only
through :data:`MIGRATIONS`, applied in order, each in its own transaction; ``PRAGMA
user_version`` counts those applied. Opening checks the whole file (``PRAGMA quick_check``): a
damaged one raises :class:`StoreDamagedError` rather than failing request after request.

With ``retention_s``, decisions older than that are forgotten (:meth:`Store.purge`), with
their feedback, except the feedback that the two newest checkpoints do not hold yet: a
restart from either of them needs it.

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
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mixllm.errors import ConfigError, DataError, PersistError, UnknownDecisionError
from mixllm.serve._records import (
    _check_id,
    _check_seq,
    _check_text,
    _decision_from_row,
    _decision_row,
    _feedback_from_row,
    _number,
    _redact,
    _usd,
)
from mixllm.serve._schema import MIGRATIONS
from mixllm.serve._sqlite import Connection, StoreDamagedError
from mixllm.serve._store_checkpoints import KEEP_CHECKPOINTS
from mixllm.serve._store_pacing import PacingStore
from mixllm.types import Decision, Feedback

__all__ = [
    "KEEP_CHECKPOINTS",
    "MIGRATIONS",
    "PURGE_EVERY",
    "Store",
    "StoreDamagedError",
    "open_store",
    "store_target",
]

logger = logging.getLogger(__name__)

#: With retention, old decisions are purged at open and after every this many recorded.
PURGE_EVERY = 1000


class Store(PacingStore):
    """Decisions, feedback, checkpoints, per-key spend and shadow calls in one SQLite database.

    Parameters
    ----------
    path:
        The database file (created with its tables if missing), or ``":memory:"`` for tests.
    busy_timeout_s:
        How long a write waits for another connection's write lock before it fails.
    retention_s:
        Decisions older than this many seconds are forgotten: :meth:`get_decision` and
        :meth:`session_llm` no longer see them, and :meth:`purge` deletes them (at open and
        every :data:`PURGE_EVERY` decisions). ``None``: kept forever.
    clock:
        Returns the current Unix time in seconds (``time.time`` by default); used when a
        method is given no ``now``.

    All methods may be called from several threads: they share one connection under a lock.
    Writes take SQLite's write lock first (``BEGIN IMMEDIATE``), so several processes may
    share the file too. SQLite failures raise :class:`~mixllm.errors.PersistError`, and a
    damaged file :class:`StoreDamagedError` (at open, or when a read meets the damage).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 5.0,
        retention_s: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(path, (str, Path)) or not str(path):
            raise ConfigError(f"store path={path!r}; expected a file path or ':memory:'")
        timeout_s = _number("busy_timeout_s", busy_timeout_s, "seconds >= 0", minimum=0.0)
        if retention_s is not None:
            retention_s = _number("retention_s", retention_s, "None or seconds > 0", minimum=0.0)
            if retention_s == 0:
                raise ConfigError("retention_s=0; expected None or seconds > 0")
        if clock is not None and not callable(clock):
            raise ConfigError(f"clock={clock!r}; expected a function returning Unix seconds")
        self.retention_s = retention_s
        self._clock = clock
        self._recorded = 0
        self._open(str(path), timeout_s)
        try:
            self.migrate(self._schema())
            if retention_s is not None:
                self.purge()
        except BaseException:
            self.close()
            raise

    def _schema(self) -> Sequence[str]:
        """This backend's migrations."""
        return MIGRATIONS

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def heartbeat(self, now: float | None = None) -> None:
        """Write and commit (``synchronous=FULL``) the time to the store: PersistError when
        the database cannot be written (full disk, read-only, locked, damaged, closed)."""
        at = self._now(now)
        with self._write() as conn:
            conn.execute("UPDATE status SET heartbeat_at = ? WHERE id = 1", (at,))

    # -- decisions ----------------------------------------------------------------------------
    def record_decision(
        self,
        decision: Decision,
        *,
        key_id: str = "",
        request_model: str = "",
        session_id: str | None = None,
        prompt: str | None = None,
        now: float | None = None,
    ) -> None:
        """Store ``decision``, made for ``key_id`` in conversation ``session_id`` (if any) on
        the text ``prompt`` (``None``: not kept); its ``decision_id`` must be new (else
        ConfigError)."""
        if not isinstance(decision, Decision):
            raise ConfigError(f"decision={decision!r}; expected a mixllm.types.Decision")
        at = self._now(now)
        row = _decision_row(
            decision, key_id=key_id, request_model=request_model, session_id=session_id,
            created_at=at, prompt=prompt,
        )  # fmt: skip
        with self._write() as conn:
            if _has_decision(conn, decision.decision_id):
                raise ConfigError(
                    f"decision_id {decision.decision_id!r} is already stored; expected a new id"
                )
            names = ", ".join(row)
            values = ", ".join(":" + name for name in row)
            conn.execute(f"INSERT INTO decisions ({names}) VALUES ({values})", row)
            self._recorded += 1
            due = self.retention_s is not None and self._recorded % PURGE_EVERY == 0
        if due:
            try:
                self.purge(now=at)
            except PersistError as exc:  # the decision is stored: say so, and purge later
                logger.warning("store %r: purge failed: %s", self.path, exc)

    def set_answer(
        self, decision_id: str, *, answered_by: str, cost_usd: float | None,
        output_tokens: float | None = None,
    ) -> None:  # fmt: skip
        """Record which LLM finally answered the decision's request, what it cost and (when
        known) its length in tokens."""
        _check_id("decision_id", decision_id)
        _check_id("answered_by", answered_by)
        cost = None if cost_usd is None else _usd("cost_usd", cost_usd)
        tokens = None
        if output_tokens is not None:
            tokens = _number("output_tokens", output_tokens, "a number >= 0", minimum=0.0)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE decisions SET answered_by = ?, cost_usd = ?, output_tokens = ? "
                "WHERE decision_id = ?",
                (answered_by, cost, tokens, decision_id),
            )
            if cursor.rowcount == 0:
                raise _unknown_decision(decision_id)

    def get_decision(
        self, decision_id: str, *, key_id: str | None = None, now: float | None = None
    ) -> Decision | None:
        """The stored decision, rebuilt as it was recorded but for ``llm``, which is the LLM
        that answered; ``None`` if unknown, past retention, or (when ``key_id`` is given)
        made for another key."""
        _check_id("decision_id", decision_id)
        if key_id is not None:
            _check_text("key_id", key_id)
        cutoff = self._cutoff(now)
        sql = "SELECT * FROM decisions WHERE decision_id = ? AND created_at >= ?"
        args: list[object] = [decision_id, cutoff]
        if key_id is not None:  # compared in the database, as stored (NUL-free on PostgreSQL)
            sql += " AND key_id = ?"
            args.append(key_id)
        with self._read() as conn:
            row = conn.execute(sql, args).fetchone()
        return None if row is None else self._rebuild(row)

    def _rebuild(self, row: Any) -> Decision:
        """The decision of ``row``; its ``llm`` is the one that answered, when another LLM
        answered after a fallback (feedback rates that LLM's answer, so it teaches that LLM's
        predictors, when learned live and when learned again after a restart alike)."""
        try:
            decision = _decision_from_row(row)
        except DataError as exc:  # a row SQLite reads but we cannot: changed by hand?
            raise PersistError(f"store {self.path!r}: {exc}") from None
        answered = row["answered_by"]
        if answered and answered != decision.llm:
            decision = replace(decision, llm=str(answered))
        return decision

    def session_llm(self, session_id: str, *, key_id: str, now: float | None = None) -> str | None:
        """The LLM that answered the latest decision of conversation ``session_id`` for
        ``key_id`` (the routed one if no answer is recorded); ``None`` if there is none
        within retention."""
        _check_id("session_id", session_id)
        _check_text("key_id", key_id)
        cutoff = self._cutoff(now)
        with self._read() as conn:
            row = conn.execute(
                "SELECT COALESCE(answered_by, llm) FROM decisions WHERE session_id = ? AND "
                "key_id = ? AND created_at >= ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (session_id, key_id, cutoff),
            ).fetchone()
        return None if row is None else str(row[0])

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
            if conn.execute(_HAS_FEEDBACK, (decision_id,)).fetchone() is not None:
                return None  # checked first: PostgreSQL would spend a seq on a conflict
            rows = conn.execute(
                "INSERT INTO feedback (decision_id, received_at, quality, cost_usd, reward) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO NOTHING RETURNING seq",
                (decision_id, self._now(now), quality, cost, reward),
            ).fetchall()
            if not rows:
                return None
            seq = int(rows[0][0])
            self._notify_feedback(conn, seq)
            return seq

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

    def replay_since(self, seq: int) -> list[tuple[int, Decision, Feedback]]:
        """``(seq, decision, feedback)`` of every feedback after ``seq``, in seq order, to
        learn again after a restart (retention does not hide these decisions)."""
        _check_seq("seq", seq)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT d.*, f.seq AS f_seq, f.quality AS f_quality, f.cost_usd AS f_cost_usd, "
                "f.reward AS f_reward FROM feedback AS f JOIN decisions AS d "
                "ON d.decision_id = f.decision_id WHERE f.seq > ? ORDER BY f.seq",
                (seq,),
            ).fetchall()
        return [(int(r["f_seq"]), self._rebuild(r), _feedback_from_row(r, "f_")) for r in rows]

    def last_feedback_seq(self) -> int:
        """The seq of the latest feedback stored (0 before the first)."""
        with self._read() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM feedback").fetchone()[0])

    # -- counts -------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """How many decisions, feedback and checkpoints (files and data) are stored (for health
        and metrics)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM decisions), (SELECT COUNT(*) FROM feedback), "
                "(SELECT COUNT(*) FROM checkpoints) + (SELECT COUNT(*) FROM checkpoint_data)"
            ).fetchone()
        return {"decisions": int(row[0]), "feedback": int(row[1]), "checkpoints": int(row[2])}


_HAS_FEEDBACK = "SELECT 1 FROM feedback WHERE decision_id = ?"


def open_store(
    url: str | Path,
    *,
    busy_timeout_s: float = 5.0,
    retention_s: float | None = None,
    clock: Callable[[], float] | None = None,
) -> Store:
    """The store at ``url``: a file path, ``sqlite:///relative/path``, ``sqlite:////abs/path``
    or ``sqlite:///:memory:`` opens SQLite, ``postgresql://user@host:port/dbname`` (or
    ``postgres://``) PostgreSQL (with the ``replicas`` extra installed). The other parameters
    are :class:`Store`'s; on PostgreSQL ``busy_timeout_s`` bounds the wait for another
    replica's write.

    >>> with open_store("sqlite:///:memory:") as store:
    ...     store.last_feedback_seq()
    0
    """
    kwargs: dict[str, Any] = {
        "busy_timeout_s": busy_timeout_s, "retention_s": retention_s, "clock": clock
    }  # fmt: skip
    kind, where = store_target(url)
    if kind == "sqlite":
        return Store(where, **kwargs)
    try:
        from mixllm.serve._postgres import PostgresStore
    except ImportError as exc:  # psycopg is not installed
        raise ConfigError(
            f"store url={_redact(where)!r} needs psycopg ({exc}); expected it installed: "
            "pip install 'mixllm[replicas]'"
        ) from None
    return PostgresStore(where, **kwargs)


def store_target(url: str | Path) -> tuple[str, str]:
    """What :func:`open_store` opens for ``url``: ``("sqlite", FILE)`` (``":memory:"`` for
    ``sqlite://`` and ``sqlite:///:memory:``) or ``("postgresql", URL)``. As in SQLAlchemy,
    ``sqlite:///gw.db`` is a relative path and ``sqlite:////var/gw.db`` an absolute one.

    >>> store_target("sqlite:////var/mixllm/gateway.db"), store_target("sqlite:///gw.db")
    (('sqlite', '/var/mixllm/gateway.db'), ('sqlite', 'gw.db'))
    >>> store_target("postgresql://mixllm@db:5432/mixllm")[0], store_target("state/gw.db")
    ('postgresql', ('sqlite', 'state/gw.db'))
    """
    if isinstance(url, Path):
        return "sqlite", str(url)
    if not isinstance(url, str) or not url:
        raise ConfigError(f"store url={url!r}; expected a file path or a postgresql:// URL")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "sqlite", url
    if scheme.lower() == "sqlite":
        return "sqlite", rest[1:] if rest.startswith("/") else rest or ":memory:"
    if scheme.lower() in ("postgresql", "postgres"):
        return "postgresql", url
    raise ConfigError(
        f"store url={_redact(url)!r}; expected a file path (or sqlite:///path) or "
        "postgresql://user@host:port/dbname"
    )


def _has_decision(conn: Connection, decision_id: str) -> bool:
    query = "SELECT 1 FROM decisions WHERE decision_id = ?"
    return conn.execute(query, (decision_id,)).fetchone() is not None


def _unknown_decision(decision_id: str) -> UnknownDecisionError:
    return UnknownDecisionError(
        f"decision {decision_id!r} is not in the store; expected the id of a recorded decision"
    )
