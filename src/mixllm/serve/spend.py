"""What a request may cost, and limits on how fast a key may spend.

The gateway reserves a request's *worst case* before calling an LLM: its prompt tokens at the
input price plus the answer's token limit at the output price (:func:`worst_case_usd`). The
answer's limit is the request's ``max_tokens`` (or the configured default), lowered to what the
key's remaining budget affords (:func:`affordable_tokens`) and sent upstream, so the upstream
cannot produce more than was reserved. An answer is then charged from the usage the upstream
reports, never more than its reservation (:func:`charge`); usage that cannot be believed
charges the reservation. :class:`RateLimiter` bounds a key's requests and tokens per minute.

>>> from mixllm.types import LLM
>>> price = LLM("m", price_in_per_mtok=1.0, price_out_per_mtok=2.0)
>>> worst_case_usd(price, prompt_tokens=1000, answer_tokens=500)
0.002
>>> affordable_tokens(price, prompt_tokens=1000, budget_usd=0.0015)
250
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from mixllm.clock import Clock, SystemClock
from mixllm.types import LLM

__all__ = ["Charge", "RateLimiter", "affordable_tokens", "charge", "worst_case_usd"]


def worst_case_usd(price: LLM | None, *, prompt_tokens: float, answer_tokens: int) -> float:
    """USD of ``prompt_tokens`` in and ``answer_tokens`` out at ``price`` (free: 0)."""
    if price is None:
        return 0.0
    cost = prompt_tokens * price.price_in_per_mtok + answer_tokens * price.price_out_per_mtok
    return max(cost / 1e6, 0.0)


def affordable_tokens(price: LLM | None, *, prompt_tokens: float, budget_usd: float) -> int:
    """The longest answer ``budget_usd`` pays for after the prompt (may be <= 0: not even
    the prompt); unbounded (a large number) for a free LLM."""
    if price is None or price.price_out_per_mtok <= 0:
        prompt_usd = worst_case_usd(price, prompt_tokens=prompt_tokens, answer_tokens=0)
        return 10**9 if prompt_usd <= budget_usd else 0
    left = budget_usd * 1e6 - prompt_tokens * price.price_in_per_mtok
    tokens = math.floor(left / price.price_out_per_mtok)
    while tokens > 0 and (
        worst_case_usd(price, prompt_tokens=prompt_tokens, answer_tokens=tokens) > budget_usd
    ):
        tokens -= 1  # rounding: the reservation must never pass the budget
    return tokens


@dataclass(frozen=True)
class Charge:
    """What an answer is charged, and why not its reported usage when it is not."""

    usd: float
    source: str  # "usage", "counted" (no usage: our own token count) or "reservation"
    problem: str | None = None


def charge(
    price: LLM | None,
    *,
    reserved_usd: float,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int = 0,
    cached_price_per_mtok: float | None = None,
    counted: tuple[float, float] | None = None,
    problem: str | None = None,
) -> Charge:
    """The charge for an answer: from the reported usage (cached prompt tokens at
    ``cached_price_per_mtok`` when the upstream declares one), else from ``counted`` (our own
    prompt and answer token counts), capped at ``reserved_usd``. ``problem`` (unbelievable
    usage) charges the reservation.

    >>> from mixllm.types import LLM
    >>> p = LLM("m", price_in_per_mtok=1.0, price_out_per_mtok=2.0)
    >>> charge(p, reserved_usd=1.0, prompt_tokens=10**6, completion_tokens=0).usd
    1.0
    >>> charge(p, reserved_usd=0.5, prompt_tokens=10**6, completion_tokens=10**6).usd
    0.5
    """
    if problem is not None:
        return Charge(reserved_usd, "reservation", problem)
    if prompt_tokens is not None and completion_tokens is not None:
        cost = worst_case_usd(price, prompt_tokens=prompt_tokens, answer_tokens=completion_tokens)
        if price is not None and cached_price_per_mtok is not None and cached_tokens > 0:
            cost -= cached_tokens * (price.price_in_per_mtok - cached_price_per_mtok) / 1e6
        source = "usage"
    elif counted is not None:
        cost = worst_case_usd(price, prompt_tokens=counted[0], answer_tokens=math.ceil(counted[1]))
        source = "counted"
    else:
        return Charge(reserved_usd, "reservation", "no usage and nothing counted")
    if not math.isfinite(cost):
        return Charge(reserved_usd, "reservation", f"cost {cost!r}")
    return Charge(min(max(cost, 0.0), reserved_usd), source)


class RateLimiter:
    """Token buckets per key: ``per_minute`` units refill evenly over a minute, and a burst of
    up to a minute's worth may be spent at once. Thread-safe.

    >>> from mixllm.clock import ManualClock
    >>> clock = ManualClock()
    >>> limiter = RateLimiter(clock=clock)
    >>> [limiter.take("k", 1, per_minute=2) for _ in range(3)]
    [0.0, 0.0, 30.0]
    >>> clock.advance(30.0); limiter.take("k", 1, per_minute=2)
    0.0
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (level, at)
        self._lock = threading.Lock()

    def take(self, name: str, amount: float, *, per_minute: int) -> float:
        """Take ``amount`` from bucket ``name``: 0.0 when taken, else the seconds until it
        could be (nothing is taken). An amount over a minute's worth waits for a full bucket
        and is then allowed (so one large request is never refused forever)."""
        rate = per_minute / 60.0
        with self._lock:
            now = self.clock.now()
            level, at = self._buckets.get(name, (float(per_minute), now))
            level = min(float(per_minute), level + (now - at) * rate)
            need = min(amount, float(per_minute))
            if level + 1e-9 < need:
                self._buckets[name] = (level, now)
                return (need - level) / rate
            self._buckets[name] = (level - amount, now)
            return 0.0

    def give_back(self, name: str, amount: float) -> None:
        """Return ``amount`` to bucket ``name`` (a request refused after its tokens were
        taken)."""
        with self._lock:
            if name in self._buckets:
                level, at = self._buckets[name]
                self._buckets[name] = (level + amount, at)
