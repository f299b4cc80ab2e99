"""Per-LLM waiting times for the latency penalty (MixLLM §3.3), fed by whoever sees the traffic.

The gateway calls :meth:`LoadTracker.started` / :meth:`LoadTracker.finished` around each upstream
call; the simulator does the same with its own clock. Offline (the evaluation harness) nobody
feeds it and every wait is zero. The expected wait of an LLM is the work queued ahead of a new
request: ``max(0, in_flight − concurrency + 1) × mean service time / concurrency``, where the
mean service time is an exponentially weighted average of measured latencies. A simulator that
knows its queues exactly can set a wait directly with :meth:`LoadTracker.set_wait`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError

__all__ = ["LoadTracker"]


@dataclass
class _LLMLoad:
    in_flight: int = 0
    service_s: float | None = None
    override_s: float | None = None


class LoadTracker:
    """Thread-safe in-flight counts and service times per LLM → expected waiting time.

    >>> t = LoadTracker(concurrency={"a": 1}, default_service_s=2.0)
    >>> t.started("a"); t.started("a")
    >>> t.wait_s(["a", "b"]).tolist()
    [4.0, 0.0]
    >>> t.finished("a", latency_s=1.0); t.finished("a", latency_s=1.0)
    >>> t.wait_s(["a"]).tolist()
    [0.0]
    """

    def __init__(
        self,
        *,
        concurrency: Mapping[str, int] | None = None,
        default_concurrency: int = 1,
        default_service_s: float = 1.0,
        smoothing: float = 0.2,
    ) -> None:
        if default_concurrency < 1 or any(c < 1 for c in (concurrency or {}).values()):
            raise ConfigError(f"concurrency {dict(concurrency or {})!r}; expected integers >= 1")
        if not 0 < smoothing <= 1:
            raise ConfigError(f"smoothing={smoothing!r}; expected a number in (0, 1]")
        self.concurrency = dict(concurrency or {})
        self.default_concurrency = default_concurrency
        self.default_service_s = default_service_s
        self.smoothing = smoothing
        self._llms: dict[str, _LLMLoad] = {}
        self._lock = threading.Lock()

    def _get(self, llm: str) -> _LLMLoad:
        return self._llms.setdefault(llm, _LLMLoad())

    def started(self, llm: str) -> None:
        """A request was sent to ``llm``."""
        with self._lock:
            self._get(llm).in_flight += 1

    def finished(self, llm: str, *, latency_s: float | None = None) -> None:
        """A request to ``llm`` ended (answered or failed); ``latency_s`` if it was measured."""
        with self._lock:
            state = self._get(llm)
            state.in_flight = max(0, state.in_flight - 1)
            if latency_s is not None and latency_s >= 0:
                prev = state.service_s
                a = self.smoothing
                state.service_s = latency_s if prev is None else (1 - a) * prev + a * latency_s

    def set_wait(self, llm: str, wait_s: float | None) -> None:
        """Set ``llm``'s waiting time directly (a simulator that knows its queues); ``None``
        returns to the estimate from in-flight counts."""
        with self._lock:
            self._get(llm).override_s = wait_s

    def in_flight(self, llm: str) -> int:
        with self._lock:
            return self._get(llm).in_flight

    def wait_s(self, llms: Sequence[str]) -> NDArray[np.float64]:
        """Expected waiting time of a new request, per LLM (seconds)."""
        with self._lock:
            return np.array([self._wait(m) for m in llms], dtype=np.float64)

    def _wait(self, llm: str) -> float:
        state = self._llms.get(llm)
        if state is None:
            return 0.0
        if state.override_s is not None:
            return state.override_s
        slots = self.concurrency.get(llm, self.default_concurrency)
        queued = max(0, state.in_flight - slots + 1)
        service = self.default_service_s if state.service_s is None else state.service_s
        return queued * service / slots
