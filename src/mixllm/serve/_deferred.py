"""A shared store that lets the gateway go on answering while its database is away.

Replicas on one PostgreSQL share their decisions, feedback and spend through it. When it is
unreachable, routing still works from each replica's last state, so the writes that a client's
answer does not depend on are kept in memory, in order, and written once the database answers
again (before any other call reaches it):

- the decision and the answer that settled it (so that feedback on it works afterwards);
- the spend of keys **without** a spending limit (the reservation and its settlement).

What cannot be made good later still fails, with :class:`~mixllm.errors.PersistError` (the
gateway's 503): a key **with** a spending limit (the limit is held in the database, across the
replicas: it cannot be checked without it), and feedback (it is acknowledged only once
committed: never a false acknowledgement). A conversation's LLM is looked up when the database
answers; meanwhile each turn is routed afresh.

Kept writes live in this process only: a replica that dies while the database is away loses
them (at most :data:`MAX_DEFERRED`; beyond that the oldest are dropped and counted). A write
that committed but whose reply was lost is written again: a decision is then skipped (its id
is already there), a spend counted twice (erring on the side of the limit).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from mixllm.errors import ConfigError, PersistError
from mixllm.types import Decision, Feedback

if TYPE_CHECKING:  # a mixin over the Store: mypy sees its methods
    from mixllm.serve.store import Store as _Base
else:
    _Base = object

__all__ = ["MAX_DEFERRED", "DeferredWrites"]

logger = logging.getLogger(__name__)

MAX_DEFERRED = 10_000
"""Writes kept while the database is away; beyond that the oldest are dropped."""


class DeferredWrites(_Base):
    """Store methods that keep the request path's writes while the database is away (see the
    module doc); put before the database class in the bases."""

    def _deferred_state(self) -> tuple[deque[tuple[str, tuple[Any, ...], dict[str, Any]]], Any]:
        state = self.__dict__.get("_deferred")
        if state is None:
            state = self.__dict__["_deferred"] = (deque(), threading.Lock())
        return state  # type: ignore[no-any-return]

    @property
    def deferred(self) -> int:
        """How many writes wait for the database."""
        return len(self._deferred_state()[0])

    dropped_writes = 0
    """Writes dropped because :data:`MAX_DEFERRED` were waiting already."""

    def _defer(self, name: str, *args: Any, **kwargs: Any) -> None:
        queue, lock = self._deferred_state()
        with lock:
            if not queue:
                logger.warning("the shared store is away: answering on, its writes kept")
            if len(queue) >= MAX_DEFERRED:
                queue.popleft()
                self.dropped_writes += 1
            queue.append((name, args, kwargs))

    def flush(self) -> int:
        """Write what was kept, in order; how many were written. Raises PersistError (and
        keeps the rest) while the database is still away."""
        queue, lock = self._deferred_state()
        written = 0
        with lock:
            while queue:
                name, args, kwargs = queue[0]
                try:
                    getattr(super(), name)(*args, **kwargs)
                except ConfigError as exc:  # e.g. a decision whose first write did commit
                    logger.info("kept write %s skipped: %s", name, exc)
                queue.popleft()
                written += 1
        if written:
            logger.warning("the shared store is back: %d kept writes written", written)
        return written

    def _tolerant(self, name: str, call: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        """``call()`` after the kept writes; when the database is away, the write is kept."""
        try:
            self.flush()
            return call()
        except PersistError:
            self._defer(name, *args, **kwargs)
            return None

    # -- the request path's writes: kept when the database is away -----------------------------
    def record_decision(self, decision: Decision, **kwargs: Any) -> None:
        kwargs.setdefault("now", self._now(None))  # when it was made, not when it is written
        call = partial(super().record_decision, decision, **kwargs)
        self._tolerant("record_decision", call, decision, **kwargs)

    def set_answer(self, decision_id: str, **kwargs: Any) -> None:
        call = partial(super().set_answer, decision_id, **kwargs)
        self._tolerant("set_answer", call, decision_id, **kwargs)

    def settle_spend(self, key_id: str, reserved_usd: float, actual_usd: float) -> None:
        call = partial(super().settle_spend, key_id, reserved_usd, actual_usd)
        self._tolerant("settle_spend", call, key_id, reserved_usd, actual_usd)

    def add_spend(self, key_id: str, usd: float, *, limit_usd: float | None = None) -> bool:
        if limit_usd is not None:  # a limit holds only in the database
            self.flush()
            return super().add_spend(key_id, usd, limit_usd=limit_usd)
        self._tolerant("add_spend", partial(super().add_spend, key_id, usd), key_id, usd)
        return True

    def reserve_spend(
        self, key_id: str, amount: Callable[[float | None], float | None], *,
        limit_usd: float | None = None,
    ) -> float | None:  # fmt: skip
        if limit_usd is not None:  # fails while the database is away: the limit lives there
            self.flush()
            return super().reserve_spend(key_id, amount, limit_usd=limit_usd)
        try:
            self.flush()
            return super().reserve_spend(key_id, amount)
        except PersistError:
            held = amount(None)
            if held is not None:
                self._defer("add_spend", key_id, held)
            return held

    def session_llm(self, session_id: str, **kwargs: Any) -> str | None:
        try:
            self.flush()
            return super().session_llm(session_id, **kwargs)
        except PersistError:
            return None  # routed afresh until the database answers

    # -- reads and writes that must see what was kept first ------------------------------------
    def get_decision(self, decision_id: str, **kwargs: Any) -> Decision | None:
        self.flush()
        return super().get_decision(decision_id, **kwargs)

    def record_feedback(self, decision_id: str, feedback: Feedback, **kwargs: Any) -> int | None:
        self.flush()
        return super().record_feedback(decision_id, feedback, **kwargs)

    def spent(self, key_id: str) -> float:
        self.flush()
        return super().spent(key_id)

    def wait_feedback(self, after_seq: int, timeout_s: float) -> bool:
        self.flush()
        return super().wait_feedback(after_seq, timeout_s)
