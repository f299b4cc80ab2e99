"""Per-key spend in the gateway's store: reservations within a limit, settlement, reset."""

from __future__ import annotations

from collections.abc import Callable

from mixllm.serve._records import _check_id, _usd
from mixllm.serve._sqlite import Connection, Database

__all__ = ["SpendStore"]

#: Slack when comparing a running total with a limit: 200 x 0.01 sums to 2.0000000000000013.
_SPEND_SLACK_USD = 1e-9


class SpendStore(Database):
    """The ``spend`` table's methods of :class:`~mixllm.serve.store.Store`."""

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

    def reserve_spend(
        self, key_id: str, amount: Callable[[float | None], float | None], *,
        limit_usd: float | None = None,
    ) -> float | None:  # fmt: skip
        """Hold ``amount(left)`` USD on the key, ``left`` being what its limit leaves (``None``
        without a limit), in one transaction with the read: the amount held, or ``None`` when
        ``amount`` says nothing can be held (it returns ``None``) or it would pass the limit.
        ``amount`` runs under the store's lock: plain arithmetic only."""
        _check_id("key_id", key_id)
        limit = None if limit_usd is None else _usd("limit_usd", limit_usd)
        with self._write() as conn:
            spent = _spent(conn, key_id)
            wanted = amount(None if limit is None else limit - spent)
            if wanted is None:
                return None
            total = spent + _usd("amount", wanted)
            if limit is not None and total > limit + _SPEND_SLACK_USD:
                return None
            conn.execute(
                "INSERT INTO spend (key_id, usd) VALUES (?, ?) "
                "ON CONFLICT (key_id) DO UPDATE SET usd = excluded.usd",
                (key_id, total),
            )
            return float(wanted)

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

    def reset_spend(self, key_id: str) -> float:
        """Set the key's total spend back to 0; what it was."""
        _check_id("key_id", key_id)
        with self._write() as conn:
            before = _spent(conn, key_id)
            conn.execute("DELETE FROM spend WHERE key_id = ?", (key_id,))
            return before


def _spent(conn: Connection, key_id: str) -> float:
    row = conn.execute("SELECT usd FROM spend WHERE key_id = ?", (key_id,)).fetchone()
    return 0.0 if row is None else float(row["usd"])
