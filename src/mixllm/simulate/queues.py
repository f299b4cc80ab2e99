"""Per-LLM queues: each LLM serves ``concurrency`` requests at a time, first come first served.

A request's service time is its time to first token plus its output tokens at the LLM's
decoding speed. A request that would wait longer than τ is dropped when it arrives (the client
gives up; it takes no slot) and counts as failed: quality 0 (MixLLM §3.3). :meth:`Queues.feed`
tells a :class:`~mixllm.policy.LoadTracker` each LLM's exact waiting time for a new request, the
same tracker the gateway feeds from live traffic.

>>> q = Queues({"a": Service(ttft_s=0.0, tokens_per_s=10.0, concurrency=1)})
>>> q.submit("a", 0.0, output_tokens=20, tau_s=5.0)
Served(wait_s=0.0, service_s=2.0, timed_out=False)
>>> q.wait_s("a", 1.0)
1.0
>>> q.submit("a", 0.5, output_tokens=10, tau_s=1.0)
Served(wait_s=1.5, service_s=1.0, timed_out=True)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy import LoadTracker

__all__ = ["Queues", "Served", "Service"]


@dataclass(frozen=True)
class Service:
    """How an LLM serves: seconds to the first token, output tokens per second, parallel slots."""

    ttft_s: float = 0.5
    tokens_per_s: float = 50.0
    concurrency: int = 8

    def __post_init__(self) -> None:
        if not (self.ttft_s >= 0 and math.isfinite(self.ttft_s)):
            raise ConfigError(f"ttft_s={self.ttft_s!r}; expected a finite number >= 0")
        if not (self.tokens_per_s > 0 and math.isfinite(self.tokens_per_s)):
            raise ConfigError(f"tokens_per_s={self.tokens_per_s!r}; expected a number > 0")
        if not (isinstance(self.concurrency, int) and self.concurrency >= 1):
            raise ConfigError(f"concurrency={self.concurrency!r}; expected an integer >= 1")

    def time_s(self, output_tokens: float) -> float:
        """Service time of one request with ``output_tokens`` tokens."""
        tokens = 0.0 if not math.isfinite(output_tokens) else max(float(output_tokens), 0.0)
        return self.ttft_s + tokens / self.tokens_per_s


@dataclass(frozen=True)
class Served:
    """What happened to one request: its wait, its service time, whether it waited past τ."""

    wait_s: float
    service_s: float
    timed_out: bool


class Queues:
    """The slots of every LLM, as the times each slot becomes free (a heap per LLM)."""

    def __init__(self, services: Mapping[str, Service]) -> None:
        self._service: dict[str, Service] = {}
        self._free: dict[str, list[float]] = {}
        for llm, service in services.items():
            self.add_llm(llm, service)

    @property
    def llms(self) -> tuple[str, ...]:
        return tuple(self._service)

    def add_llm(self, llm: str, service: Service) -> None:
        """A new LLM with idle slots."""
        if llm in self._service:
            raise ConfigError(f"LLM {llm!r} already has a queue")
        self._service[llm] = service
        self._free[llm] = [0.0] * service.concurrency

    def remove_llm(self, llm: str) -> None:
        """Forget ``llm``'s queue (requests already admitted finish on their own)."""
        self._check(llm)
        del self._service[llm], self._free[llm]

    def service(self, llm: str) -> Service:
        self._check(llm)
        return self._service[llm]

    def _check(self, llm: str) -> None:
        if llm not in self._service:
            raise UnknownLLMError(f"no queue for LLM {llm!r}; known: {sorted(self._service)}")

    def wait_s(self, llm: str, now: float) -> float:
        """How long a request arriving at ``now`` would wait for a slot of ``llm``."""
        self._check(llm)
        return max(0.0, self._free[llm][0] - now)

    def submit(self, llm: str, now: float, *, output_tokens: float, tau_s: float) -> Served:
        """Queue one request at ``now``; it is dropped (no slot taken) if it would wait > τ."""
        wait = self.wait_s(llm, now)
        service = self._service[llm].time_s(output_tokens)
        if wait > tau_s:
            return Served(wait, service, True)
        heapq.heapreplace(self._free[llm], now + wait + service)
        return Served(wait, service, False)

    def feed(self, tracker: LoadTracker, now: float, llms: Iterable[str] | None = None) -> None:
        """Set each LLM's waiting time at ``now`` in ``tracker`` (what the router will see)."""
        for llm in self._service if llms is None else llms:
            tracker.set_wait(llm, self.wait_s(llm, now))
