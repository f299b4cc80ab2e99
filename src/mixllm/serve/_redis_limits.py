"""Circuit breakers and per-key rate limits shared by several gateway replicas through Redis.

Circuit breakers
    An LLM's breaker lives in four keys under ``<prefix>breaker:<llm>:``: ``fails`` (the
    consecutive retryable failures, any replica's; a success anywhere deletes it), ``open``
    (set for ``reset_after_s`` when the breaker opens: every replica skips the LLM while it
    exists), ``trip`` (the breaker is not closed: once ``open`` has expired it is half-open) and
    ``trial`` (the one trial call that a half-open breaker lets through, whichever replica
    makes it; it expires after ``reset_after_s`` if the trial reports nothing). ``fails`` and
    ``trip`` expire after ten times ``reset_after_s`` without a failure. Each change is one
    atomic script. A closed answer is reused for 0.1 s, so a busy replica asks Redis at most ten
    times a second whether it may call an LLM; a success is one more round trip.

Rate limits
    A key's bucket is a hash (level, time) under ``<prefix>rate:<name>``, taken from and given
    back to by atomic scripts that read the time from the Redis server, so replicas whose
    clocks differ share one bucket; it expires once it would be full again.

While Redis is unreachable each replica falls back on its own breaker and bucket (kept up to
date alongside, for the breaker), as a single gateway would: limits then hold per replica.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from mixllm.clock import Clock
from mixllm.serve.fallback import CircuitBreaker
from mixllm.serve.spend import RateLimiter

if TYPE_CHECKING:
    from mixllm.serve._redis import RedisLink

__all__ = ["SharedCircuitBreaker", "SharedRateLimiter"]

_CLOSED, _OPEN, _TRIAL, _BUSY = 0, 1, 2, 3
_ALLOW = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 2 end
return 3
"""
_FAIL = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 or n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[4])
  return 1
end
return 0
"""
_TAKE = """
local per, amount = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = per / 60
local old = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(old[1]) or per
local at = tonumber(old[2]) or now
level = math.min(per, level + math.max(0, now - at) * rate)
local need = math.min(amount, per)
local wait = 0
if level + 1e-9 < need then wait = (need - level) / rate else level = level - amount end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(((per - level) / rate + 1) * 1000))
return tostring(wait)
"""
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'level', ARGV[1])
end
return 0
"""


class SharedCircuitBreaker(CircuitBreaker):
    """A :class:`~mixllm.serve.fallback.CircuitBreaker` for one LLM whose failures, open state
    and half-open trial are shared by every replica (see the module); while Redis is
    unreachable, this replica's own breaker decides."""

    def __init__(
        self,
        link: RedisLink,
        llm: str,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Clock | None = None,
        cache_s: float = 0.1,
    ) -> None:
        super().__init__(
            failure_threshold=failure_threshold, reset_after_s=reset_after_s, clock=clock
        )
        self.link = link
        self.llm = llm
        self.cache_s = float(cache_s)
        self._keys = [link.key("breaker", llm, part) for part in ("fails", "open", "trip", "trial")]
        self._reset_ms = max(1, int(self.reset_after_s * 1000))
        self._keep_ms = 10 * self._reset_ms
        self._closed_until = -math.inf  # monotonic time until which "closed" is believed
        client = link.client
        self._allow, self._fail = client.register_script(_ALLOW), client.register_script(_FAIL)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``, across the replicas."""
        opened, trip = self._keys[1:3]
        found = self.link.call(lambda c: c.pipeline().exists(opened).exists(trip).execute())
        if found is None:
            return super().state
        return "open" if found[0] else "half_open" if found[1] else "closed"

    def allow(self) -> bool:
        if time.monotonic() < self._closed_until:
            return True
        _, opened, trip, trial = self._keys
        code = self.link.call(
            lambda c: self._allow(keys=[opened, trip, trial], args=[self._reset_ms], client=c)
        )
        if code is None:
            return super().allow()
        if code == _CLOSED:
            self._closed_until = time.monotonic() + self.cache_s
        return code in (_CLOSED, _TRIAL)

    def record_success(self) -> None:
        super().record_success()
        keys = self._keys
        self.link.call(lambda c: c.delete(*keys))

    def record_failure(self) -> None:
        super().record_failure()
        self._closed_until = -math.inf
        args = [self.failure_threshold, self._reset_ms, self._keep_ms]
        self.link.call(lambda c: self._fail(keys=self._keys, args=args, client=c))


class SharedRateLimiter(RateLimiter):
    """A :class:`~mixllm.serve.spend.RateLimiter` whose buckets every replica shares (see the
    module); while Redis is unreachable, this replica's own buckets decide."""

    def __init__(self, link: RedisLink, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.link = link
        self._take = link.client.register_script(_TAKE)
        self._give_back = link.client.register_script(_GIVE_BACK)

    def take(self, name: str, amount: float, *, per_minute: int) -> float:
        key, args = self.link.key("rate", name), [per_minute, repr(float(amount))]
        wait: Any = self.link.call(lambda c: self._take(keys=[key], args=args, client=c))
        if wait is None:
            return super().take(name, amount, per_minute=per_minute)
        return float(wait)

    def give_back(self, name: str, amount: float) -> None:
        key = self.link.key("rate", name)
        done = self.link.call(
            lambda c: self._give_back(keys=[key], args=[repr(float(amount))], client=c)
        )
        if done is None:
            super().give_back(name, amount)
