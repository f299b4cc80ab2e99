"""Gateway replicas that share their load, breakers and rate limits through Redis (the
optional ``replicas`` extra): the connection.

A :class:`RedisLink` is one replica's connection: a key prefix (``mixllm:`` unless told), an id
of its own (a random uuid) and what to do when Redis cannot be reached. It makes the shared
:class:`~mixllm.serve._redis_load.SharedLoadTracker` (in-flight counts and service times, see
:mod:`~mixllm.serve._redis_load`), circuit breakers and rate limiter
(:mod:`~mixllm.serve._redis_limits`).

Redis being down never fails a request. Every call is bounded by a socket timeout
(``timeout_s``, 0.2 s) and never retried; after a failure Redis is left alone for ``retry_s``
(1 s) and each replica works on its own counts, breakers and rate limits meanwhile. One warning
is logged when Redis is lost and one when it answers again (:attr:`RedisLink.errors` counts the
failed calls); Redis is tried again by the next call after ``retry_s`` (a heartbeat at the
latest), and once it answers each tracker publishes its replica's load at once; a replica
that did not notice a restart (it made no call while Redis was away) publishes its load again
with its next heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from mixllm.clock import Clock
from mixllm.errors import ConfigError

if TYPE_CHECKING:
    from mixllm.serve._redis_limits import SharedCircuitBreaker, SharedRateLimiter
    from mixllm.serve._redis_load import SharedLoadTracker

__all__ = ["RedisLink"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RedisLink:
    """A replica's connection to the Redis its replicas share.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (``rediss://`` for TLS; a password in the URL is never logged).
    prefix
        Put before every key, so several deployments can share one Redis.
    replica_id
        This replica's name in Redis (a random uuid by default).
    timeout_s
        The longest a Redis call may block (connecting or waiting for the answer).
    retry_s
        After a failed call, how long Redis is left alone before it is tried again.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mixllm:",
        replica_id: str | None = None,
        timeout_s: float = 0.2,
        retry_s: float = 1.0,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigError(
                "replicas sharing Redis need the redis package: pip install 'mixllm[replicas]'"
            ) from None
        if not timeout_s > 0 or not retry_s > 0:
            raise ConfigError(f"timeout_s={timeout_s!r}, retry_s={retry_s!r}; expected numbers > 0")
        try:
            self.client: Any = redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0), decode_responses=True,
            )  # fmt: skip
        except ValueError as exc:
            raise ConfigError(f"Redis URL {url!r}: {exc}; expected redis://host:port/db") from None
        kwargs = self.client.connection_pool.connection_kwargs
        self.where = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
        self.prefix = prefix
        self.replica_id = replica_id or uuid.uuid4().hex
        self.retry_s = float(retry_s)
        self.errors = 0  # Redis calls that failed
        self._errors = (redis.RedisError, OSError)
        self._down = False
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.on_back: list[Callable[[], None]] = []  # called when Redis answers again
        self._trackers: list[SharedLoadTracker] = []

    def key(self, *parts: str) -> str:
        """A key under the prefix: ``key("load", "r1")`` → ``mixllm:load:r1``."""
        return self.prefix + ":".join(parts)

    @property
    def up(self) -> bool:
        """False from a failed call until a call succeeds again."""
        return not self._down

    def call(self, work: Callable[[Any], T]) -> T | None:
        """``work(client)``, or ``None`` when Redis failed it or is being left alone."""
        now = time.monotonic()
        with self._lock:
            if self._down:
                if now < self._down_until:
                    return None
                self._down_until = now + self.retry_s  # one caller probes, the others wait
        try:
            result = work(self.client)
        except self._errors as exc:
            with self._lock:
                self.errors += 1
                self._down_until = time.monotonic() + self.retry_s
                if not self._down:
                    self._down = True
                    logger.warning(
                        "Redis at %s is unreachable (%s): each replica counts its own load, "
                        "breakers and rate limits until it is back", self.where, exc,
                    )  # fmt: skip
            return None
        if self._down:
            with self._lock:
                self._down = False
            logger.warning("Redis at %s answers again: replicas share their state", self.where)
            for callback in list(self.on_back):
                callback()
        return result

    def load_tracker(self, **kwargs: Any) -> SharedLoadTracker:
        """A :class:`~mixllm.serve._redis_load.SharedLoadTracker` on this link (``kwargs`` as
        its constructor's)."""
        from mixllm.serve._redis_load import SharedLoadTracker

        tracker = SharedLoadTracker(self, **kwargs)
        self._trackers.append(tracker)
        return tracker

    def breaker(
        self,
        llm: str,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Clock | None = None,
    ) -> SharedCircuitBreaker:
        """``llm``'s circuit breaker, its state shared by every replica."""
        from mixllm.serve._redis_limits import SharedCircuitBreaker

        return SharedCircuitBreaker(
            self, llm, failure_threshold=failure_threshold, reset_after_s=reset_after_s,
            clock=clock,
        )  # fmt: skip

    def rate_limiter(self, *, clock: Clock | None = None) -> SharedRateLimiter:
        """The per-key rate limits, their buckets shared by every replica."""
        from mixllm.serve._redis_limits import SharedRateLimiter

        return SharedRateLimiter(self, clock=clock)

    def close(self) -> None:
        """Stop the trackers made by :meth:`load_tracker` (their load is deleted from Redis)
        and close the connections."""
        for tracker in self._trackers:
            tracker.close()
        self.client.close()
