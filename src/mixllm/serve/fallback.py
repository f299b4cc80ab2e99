"""Fallbacks: try the routed LLM, then the next ones, skipping upstreams whose circuit is open.

A :class:`CircuitBreaker` per LLM stops sending requests to an upstream after repeated retryable
failures and lets one trial through after a pause. :func:`call_with_fallbacks` walks an order
of LLMs under an overall deadline and returns the first answer, with a record of each attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mixllm.clock import Clock, SystemClock
from mixllm.errors import BackendError, ConfigError

__all__ = [
    "Attempt",
    "CircuitBreaker",
    "NoHealthyBackendError",
    "SkippedLLMError",
    "call_with_fallbacks",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_MIN_LEFT_S = 1e-3  # below this much time left, another attempt is pointless


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive retryable failures.

    While open, :meth:`allow` is False until ``reset_after_s`` have passed; then the breaker is
    half-open and lets one trial call through (another one if the trial reports nothing for
    ``reset_after_s``). The trial's success closes the breaker, its failure re-opens it.
    Not locked: meant for one event loop, with no awaits inside.

    >>> from mixllm.clock import ManualClock
    >>> clock = ManualClock()
    >>> b = CircuitBreaker(failure_threshold=2, reset_after_s=10.0, clock=clock)
    >>> b.record_failure(); b.record_failure(); b.state, b.allow()
    ('open', False)
    >>> clock.advance(10.0); b.state, b.allow(), b.allow()
    ('half_open', True, False)
    >>> b.record_success(); b.state
    'closed'
    """

    def __init__(
        self, *, failure_threshold: int = 5, reset_after_s: float = 30.0, clock: Clock | None = None
    ) -> None:
        if not _is_count(failure_threshold):
            raise ConfigError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        if not reset_after_s > 0:
            raise ConfigError(f"reset_after_s must be a number > 0, got {reset_after_s!r}")
        self.failure_threshold = failure_threshold
        self.reset_after_s = float(reset_after_s)
        self.clock: Clock = SystemClock() if clock is None else clock
        self._failures = 0
        self._opened_at: float | None = None  # None: closed
        self._trial_at: float | None = None  # when the half-open trial call was let through

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        if self._opened_at is None:
            return "closed"
        if self.clock.now() - self._opened_at >= self.reset_after_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go to this upstream now (counts as the trial when half-open)."""
        state, now = self.state, self.clock.now()
        if state == "closed":
            return True
        if state == "open":
            return False
        if self._trial_at is not None and now - self._trial_at < self.reset_after_s:
            return False  # a trial is in flight
        self._trial_at = now
        return True

    def record_success(self) -> None:
        """The upstream answered: close the breaker."""
        self._failures = 0
        self._opened_at = self._trial_at = None

    def record_failure(self) -> None:
        """A retryable failure: count it; open (or re-open) the breaker when due."""
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at, self._trial_at = self.clock.now(), None


@dataclass(frozen=True)
class Attempt:
    """One call to one LLM: whether it answered, the error if not, and how long it took."""

    llm: str
    ok: bool
    error: str = ""
    status: int | None = None
    seconds: float = 0.0


class NoHealthyBackendError(BackendError):
    """No LLM answered: every attempt failed, was skipped (open circuit) or ran out of time."""

    def __init__(
        self, message: str, *, attempts: Sequence[Attempt], retry_after_s: float = 1.0
    ) -> None:
        super().__init__(message, retryable=True, retry_after_s=retry_after_s)
        self.attempts = list(attempts)


class SkippedLLMError(BackendError):
    """An LLM that was not called (it asked to be left alone for a while, or the key's budget
    does not cover it): the next one is tried and its circuit breaker is left as it is."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after_s=retry_after_s)


async def call_with_fallbacks(
    order: Sequence[str],
    call: Callable[[str], Awaitable[T]],
    *,
    breakers: Mapping[str, CircuitBreaker],
    max_attempts: int = 3,
    deadline_s: float = 60.0,
    clock: Clock | None = None,
    attempts: list[Attempt] | None = None,
) -> tuple[str, T, list[Attempt]]:
    """``call(llm)`` for each LLM of ``order`` until one answers; returns (llm, result, attempts).

    Each LLM is tried at most once, LLMs whose breaker does not :meth:`~CircuitBreaker.allow`
    are skipped, and at most ``max_attempts`` calls are made, each bounded by the time left
    until ``deadline_s`` (a timeout is a retryable failure). A non-retryable
    :class:`BackendError` (the request itself is bad) is re-raised at once; the breaker counts
    it as a success, since the upstream answered. LLMs without a breaker are always tried.
    Each attempt is also appended to ``attempts`` if given, so that the caller sees the
    attempts even when this raises.

    Raises
    ------
    NoHealthyBackendError
        When no LLM answered; its message lists each attempt and each skipped open circuit.
    """
    if not _is_count(max_attempts):
        raise ConfigError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    if not deadline_s > 0:
        raise ConfigError(f"deadline_s must be a number > 0, got {deadline_s!r}")
    clock = SystemClock() if clock is None else clock
    tried = [] if attempts is None else attempts
    first = len(tried)  # a caller's list may already hold attempts of an earlier call
    skipped: list[str] = []
    waits: list[float] = []  # what upstreams asked for in Retry-After
    calls = 0  # upstream calls made (an LLM skipped by SkippedLLMError is not one)
    start = clock.now()
    for llm in dict.fromkeys(order):  # each LLM once, in order
        left = deadline_s - (clock.now() - start)
        if calls >= max_attempts or left < _MIN_LEFT_S:
            break
        breaker = breakers.get(llm)
        if breaker is not None and not breaker.allow():
            skipped.append(llm)
            continue
        t0 = clock.now()
        calls += 1
        try:
            result = await asyncio.wait_for(call(llm), timeout=left)
        except (BackendError, asyncio.TimeoutError) as exc:
            err = exc if isinstance(exc, BackendError) else None
            message = str(err) if err else f"no answer within the deadline ({left:.3g} s left)"
            status = err.status if err else None
            tried.append(Attempt(llm, False, message, status, clock.now() - t0))
            logger.info("LLM %r failed: %s", llm, message)
            if err is not None and err.retry_after_s is not None:
                waits.append(err.retry_after_s)
            if isinstance(err, SkippedLLMError):
                calls -= 1
                continue
            if err is not None and not err.retryable:
                if breaker is not None:
                    breaker.record_success()  # the upstream is up; the request was bad
                raise
            if breaker is not None:
                breaker.record_failure()
            continue
        if breaker is not None:
            breaker.record_success()
        tried.append(Attempt(llm, True, seconds=clock.now() - t0))
        return llm, result, tried[first:]
    mine = tried[first:]
    wait = max(1.0, min(waits)) if waits else 1.0
    raise NoHealthyBackendError(_summary(order, mine, skipped), attempts=mine, retry_after_s=wait)


def _is_count(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 1


def _summary(order: Sequence[str], tried: Sequence[Attempt], skipped: Sequence[str]) -> str:
    if not order:
        return "no LLM answered: the fallback order is empty"
    parts = [f"{a.llm}: {a.error}" for a in tried]
    if skipped:
        parts.append(f"skipped (circuit open): {list(skipped)}")
    untried = [
        m for m in dict.fromkeys(order) if m not in skipped and m not in {a.llm for a in tried}
    ]
    if untried:
        parts.append(f"not tried (attempt limit or deadline): {untried}")
    return "no LLM answered; " + "; ".join(parts)
