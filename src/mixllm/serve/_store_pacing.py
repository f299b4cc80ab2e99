"""Pacing budgets in the gateway's store: each scope's spend per period (reservations in
flight included) and its last λ, so that a restart keeps both."""

from __future__ import annotations

import math

from mixllm.serve._records import _check_id, _usd
from mixllm.serve._sqlite import Connection
from mixllm.serve._store_shadow import ShadowStore

__all__ = ["PACING_MIGRATION", "PacingStore"]

#: The schema change that adds the pacing table (appended to the store's migrations).
PACING_MIGRATION = """
    CREATE TABLE pacing_spend (
        scope TEXT NOT NULL,      -- "gateway", "profile:NAME" or "key:NAME"
        period TEXT NOT NULL,     -- the UTC hour or day, e.g. 2026-12-05T13 or 2026-12-05
        usd REAL NOT NULL CHECK (usd >= 0),
        lam REAL,                 -- the pacer's λ when last written
        PRIMARY KEY (scope, period)
    );
"""

#: Slack when comparing a running total with a budget (sums of floats).
_SLACK_USD = 1e-9


class PacingStore(ShadowStore):
    """The ``pacing_spend`` table's methods of :class:`~mixllm.serve.store.Store`."""

    def reserve_pacing(
        self, scope: str, period: str, usd: float, *, limit_usd: float
    ) -> float | None:
        """Add ``usd`` to ``scope``'s spend in ``period`` unless that passes ``limit_usd``: the
        new total, or ``None`` (nothing added). Read and write are one transaction."""
        _check_id("scope", scope)
        _check_id("period", period)
        amount, limit = _usd("usd", usd), _usd("limit_usd", limit_usd)
        with self._write() as conn:
            total = _spent(conn, scope, period) + amount
            if total > limit + _SLACK_USD:
                return None
            _set(conn, scope, period, total, None)
            return total

    def settle_pacing(
        self, scope: str, period: str, reserved_usd: float, actual_usd: float,
        *, lam: float | None = None,
    ) -> float:  # fmt: skip
        """Replace a reservation of ``period`` with the actual cost (and note λ); the total."""
        _check_id("scope", scope)
        _check_id("period", period)
        delta = _usd("actual_usd", actual_usd) - _usd("reserved_usd", reserved_usd)
        with self._write() as conn:
            total = max(_spent(conn, scope, period) + delta, 0.0)
            _set(conn, scope, period, total, lam)
            return total

    def pacing_spent(self, scope: str, period: str) -> float:
        """``scope``'s spend in ``period`` (USD; reservations in flight included)."""
        _check_id("scope", scope)
        _check_id("period", period)
        with self._read() as conn:
            return _spent(conn, scope, period)

    def pacing_lam(self, scope: str) -> float | None:
        """The λ last noted for ``scope`` (any period), or ``None``."""
        _check_id("scope", scope)
        with self._read() as conn:
            row = conn.execute(
                "SELECT lam FROM pacing_spend WHERE scope = ? AND lam IS NOT NULL "
                "ORDER BY period DESC LIMIT 1",
                (scope,),
            ).fetchone()
        return None if row is None else float(row[0])


def _spent(conn: Connection, scope: str, period: str) -> float:
    row = conn.execute(
        "SELECT usd FROM pacing_spend WHERE scope = ? AND period = ?", (scope, period)
    ).fetchone()
    return 0.0 if row is None else float(row[0])


def _set(conn: Connection, scope: str, period: str, usd: float, lam: float | None) -> None:
    if lam is not None and not (math.isfinite(lam) and lam >= 0):
        lam = None
    conn.execute(
        "INSERT INTO pacing_spend (scope, period, usd, lam) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (scope, period) DO UPDATE SET usd = excluded.usd, "
        "lam = COALESCE(excluded.lam, pacing_spend.lam)",
        (scope, period, usd, lam),
    )
