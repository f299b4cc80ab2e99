"""Shadow calls in the gateway's store: each one a decision of its own (marked with the
decision it shadowed) with its graded feedback, the shadow spend per UTC day, and the rows that
``mixllm export`` reads. A judge's grade of the served answer itself is stored the same way
(``shadow_outcome = "served"``, ``llm`` the LLM that answered, no new answer paid for)."""

from __future__ import annotations

import math
from typing import Any

from mixllm.errors import ConfigError
from mixllm.serve._records import _check_id, _decision_row, _number, _usd
from mixllm.serve._sqlite import Connection
from mixllm.serve._store_checkpoints import CheckpointStore
from mixllm.types import Decision, Feedback

__all__ = ["SHADOW_OUTCOMES", "ShadowStore"]

#: What a stored shadow call's ``shadow_outcome`` may say: a shadow answer graded and learned,
#: one of unknown quality (stored, not learned), or the served answer graded and learned.
SHADOW_OUTCOMES = ("learned", "unknown_quality", "served")

#: Slack when comparing a running total with a budget (sums of floats).
_SLACK_USD = 1e-9


class ShadowStore(CheckpointStore):
    """The shadow calls' and the export's methods of :class:`~mixllm.serve.store.Store`."""

    def record_shadow(
        self,
        decision: Decision,
        *,
        shadow_of: str,
        outcome: str,
        cost_usd: float,
        feedback: Feedback | None = None,
        prompt: str | None = None,
        output_tokens: float | None = None,
        latency_s: float | None = None,
        now: float | None = None,
    ) -> int | None:
        """Store a shadow call (``decision``: the shadowed one's query, with ``llm`` the LLM
        called and a new ``decision_id``), answered for ``cost_usd``, and its ``feedback`` in
        one transaction: the feedback's seq (a restart learns it again), or ``None`` without
        feedback (an unknown quality is recorded, never learned)."""
        _check_id("shadow_of", shadow_of)
        if outcome not in SHADOW_OUTCOMES:
            raise ConfigError(f"shadow outcome={outcome!r}; expected one of {SHADOW_OUTCOMES}")
        if feedback is not None and not isinstance(feedback, Feedback):
            raise ConfigError(f"feedback={feedback!r}; expected a mixllm.types.Feedback")
        at = self._now(now)
        row = _decision_row(
            decision, key_id="", request_model="shadow", session_id=None, created_at=at,
            prompt=prompt,
        )  # fmt: skip
        row.update(
            answered_by=decision.llm,
            cost_usd=_usd("cost_usd", cost_usd),
            output_tokens=_optional("output_tokens", output_tokens),
            latency_s=_optional("latency_s", latency_s),
            shadow_of=shadow_of,
            shadow_outcome=outcome,
        )
        names = ", ".join(row)
        values = ", ".join(":" + name for name in row)
        with self._write() as conn:
            if conn.execute(
                "SELECT 1 FROM decisions WHERE decision_id = ?", (decision.decision_id,)
            ).fetchone():
                raise ConfigError(
                    f"decision_id {decision.decision_id!r} is already stored; expected a new id"
                )
            conn.execute(f"INSERT INTO decisions ({names}) VALUES ({values})", row)
            if feedback is None:
                return None
            reward = None if feedback.reward is None else int(bool(feedback.reward))
            quality = None if feedback.quality is None else float(feedback.quality)
            cost = None if feedback.cost_usd is None else float(feedback.cost_usd)
            rows = conn.execute(
                "INSERT INTO feedback (decision_id, received_at, quality, cost_usd, reward) "
                "VALUES (?, ?, ?, ?, ?) RETURNING seq",
                (decision.decision_id, at, quality, cost, reward),
            ).fetchall()
            seq = int(rows[0][0])
            self._notify_feedback(conn, seq)
            return seq

    def answer_of(self, decision_id: str) -> tuple[float | None, float | None]:
        """What the answer to decision ``decision_id`` was charged (USD) and its length in
        tokens, each ``None`` when not recorded (or the decision unknown)."""
        _check_id("decision_id", decision_id)
        with self._read() as conn:
            row = conn.execute(
                "SELECT cost_usd, output_tokens FROM decisions WHERE decision_id = ?",
                (decision_id,),
            ).fetchone()
        if row is None:
            return None, None
        return (
            None if row[0] is None else float(row[0]),
            None if row[1] is None else float(row[1]),
        )

    # -- the shadow budget ---------------------------------------------------------------------
    def reserve_shadow_spend(self, day: str, usd: float, *, limit_usd: float) -> bool:
        """Add ``usd`` to ``day``'s shadow spend unless that passes ``limit_usd``; whether it
        did (read and write in one transaction: concurrent calls never pass the limit)."""
        _check_id("day", day)
        amount, limit = _usd("usd", usd), _usd("limit_usd", limit_usd)
        with self._write() as conn:
            total = _shadow_spent(conn, day) + amount
            if total > limit + _SLACK_USD:
                return False
            _set_shadow_spent(conn, day, total)
            return True

    def settle_shadow_spend(self, day: str, reserved_usd: float, actual_usd: float) -> None:
        """Replace a reservation of ``day`` with the actual cost."""
        _check_id("day", day)
        delta = _usd("actual_usd", actual_usd) - _usd("reserved_usd", reserved_usd)
        with self._write() as conn:
            _set_shadow_spent(conn, day, max(_shadow_spent(conn, day) + delta, 0.0))

    def shadow_spent(self, day: str) -> float:
        """``day``'s shadow spend in USD (reservations of calls in flight included)."""
        _check_id("day", day)
        with self._read() as conn:
            return _shadow_spent(conn, day)

    # -- export --------------------------------------------------------------------------------
    def outcome_rows(self, *, since: float | None = None) -> list[dict[str, Any]]:
        """Every answered decision created at or after ``since`` (Unix seconds), oldest first,
        with its feedback (``None`` where there is none) and whether it is a shadow call:
        ``decision_id``, ``created_at``, ``query_id``, ``prompt``, ``llm`` (the LLM that
        answered), ``prompt_tokens``, ``output_tokens``, ``latency_s``, ``cost_usd`` (charged),
        ``shadow``, ``quality``, ``feedback_cost_usd``, ``reward``. A judge's grade of a served
        answer is left out when the client rated that answer too (the client's word wins)."""
        start = -math.inf if since is None else _number("since", since, "Unix seconds")
        with self._read() as conn:
            rows = conn.execute(
                "SELECT d.decision_id, d.created_at, d.query_id, d.prompt, "
                "COALESCE(d.answered_by, d.llm) AS llm, d.prompt_tokens, d.output_tokens, "
                "d.latency_s, d.cost_usd, CASE WHEN d.shadow_of IS NULL THEN 0 ELSE 1 END "
                "AS shadow, f.quality, f.cost_usd AS feedback_cost_usd, f.reward FROM "
                "decisions AS d LEFT JOIN feedback AS f ON f.decision_id = d.decision_id "
                "WHERE d.created_at >= ? AND d.answered_by IS NOT NULL AND NOT "
                "(COALESCE(d.shadow_outcome, '') = 'served' AND EXISTS (SELECT 1 FROM "
                "feedback AS c WHERE c.decision_id = d.shadow_of)) "
                "ORDER BY d.created_at, d.rowid",
                (start,),
            ).fetchall()
        return [dict(zip(r.keys(), r, strict=True)) for r in rows]


def _optional(name: str, value: float | None) -> float | None:
    return None if value is None else _number(name, value, "a number >= 0", minimum=0.0)


def _shadow_spent(conn: Connection, day: str) -> float:
    row = conn.execute("SELECT usd FROM shadow_spend WHERE day = ?", (day,)).fetchone()
    return 0.0 if row is None else float(row[0])


def _set_shadow_spent(conn: Connection, day: str, usd: float) -> None:
    conn.execute(
        "INSERT INTO shadow_spend (day, usd) VALUES (?, ?) "
        "ON CONFLICT (day) DO UPDATE SET usd = excluded.usd",
        (day, usd),
    )
