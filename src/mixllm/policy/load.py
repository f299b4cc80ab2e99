"""Per-LLM waiting times for the latency penalty (MixLLM §3.3), fed by whoever sees the traffic.

The gateway calls :meth:`LoadTracker.started` / :meth:`LoadTracker.finished` around each upstream
call; the simulator does the same with its own clock. Offline (the evaluation harness) nobody
feeds it and every wait is zero. The expected wait of an LLM is the work queued ahead of a new
request: ``max(0, in_flight − concurrency + 1) × mean service time / concurrency``, where the
mean service time is an exponentially weighted average of measured latencies. A simulator that
knows its queues exactly can set a wait directly with :meth:`LoadTracker.set_wait`.

When service times come with their answers' output tokens, the tracker also fits each LLM's
service time as ``a + b × output tokens`` (time to first token plus decoding; exponentially
weighted least squares): :meth:`LoadTracker.service_weights` then tells how long a query with
so many predicted tokens would hold a slot, relative to the LLM's average request. A router
with ``penalty_scale="service"`` scales its latency penalty by it, so a long answer pays for
the queue it builds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError
from mixllm.predict.length import tokens_from_cost
from mixllm.types import LLM, Prediction

__all__ = ["LoadTracker"]


@dataclass
class _ServiceFit:
    """Exponentially weighted moments of (output tokens, service seconds)."""

    weight: float = 0.0
    x: float = 0.0
    y: float = 0.0
    xx: float = 0.0
    xy: float = 0.0

    def add(self, tokens: float, seconds: float, decay: float) -> None:
        keep = 1.0 - decay
        self.weight = keep * self.weight + 1.0
        self.x = keep * self.x + tokens
        self.y = keep * self.y + seconds
        self.xx = keep * self.xx + tokens * tokens
        self.xy = keep * self.xy + tokens * seconds

    def line(self) -> tuple[float, float, float]:
        """(intercept, seconds per token, mean service seconds); slope 0 until tokens vary."""
        w = self.weight
        mx, my = self.x / w, self.y / w
        var = self.xx / w - mx * mx
        slope = max((self.xy / w - mx * my) / var, 0.0) if var > 1e-9 * max(mx * mx, 1.0) else 0.0
        return max(my - slope * mx, 0.0), slope, my


@dataclass
class _LLMLoad:
    in_flight: int = 0
    service_s: float | None = None
    override_s: float | None = None
    fit: _ServiceFit | None = None


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
        fit_decay: float = 0.02,
    ) -> None:
        if default_concurrency < 1 or any(c < 1 for c in (concurrency or {}).values()):
            raise ConfigError(f"concurrency {dict(concurrency or {})!r}; expected integers >= 1")
        if not 0 < smoothing <= 1:
            raise ConfigError(f"smoothing={smoothing!r}; expected a number in (0, 1]")
        if not 0 < fit_decay <= 1:
            raise ConfigError(f"fit_decay={fit_decay!r}; expected a number in (0, 1]")
        self.concurrency = dict(concurrency or {})
        self.default_concurrency = default_concurrency
        self.default_service_s = default_service_s
        self.smoothing = smoothing
        self.fit_decay = fit_decay
        self._llms: dict[str, _LLMLoad] = {}
        self._lock = threading.Lock()

    def _get(self, llm: str) -> _LLMLoad:
        return self._llms.setdefault(llm, _LLMLoad())

    def started(self, llm: str) -> None:
        """A request was sent to ``llm``."""
        with self._lock:
            self._get(llm).in_flight += 1

    def finished(
        self, llm: str, *, latency_s: float | None = None, output_tokens: float | None = None
    ) -> None:
        """A request to ``llm`` ended (answered or failed); ``latency_s`` if it was measured,
        ``output_tokens`` if the answer's length is known (it fits the per-token service time)."""
        with self._lock:
            state = self._get(llm)
            state.in_flight = max(0, state.in_flight - 1)
            if latency_s is not None and math.isfinite(latency_s) and latency_s >= 0:
                prev = state.service_s
                a = self.smoothing
                state.service_s = latency_s if prev is None else (1 - a) * prev + a * latency_s
                self._fit(state, latency_s, output_tokens)

    def served(self, llm: str, *, service_s: float, output_tokens: float) -> None:
        """``llm`` took ``service_s`` seconds to produce ``output_tokens`` tokens (a simulator
        that sets waits directly reports service times here; no in-flight count changes)."""
        with self._lock:
            if math.isfinite(service_s) and service_s >= 0:
                self._fit(self._get(llm), service_s, output_tokens)

    def _fit(self, state: _LLMLoad, seconds: float, tokens: float | None) -> None:
        if tokens is None or not (math.isfinite(tokens) and tokens >= 0):
            return
        if state.fit is None:
            state.fit = _ServiceFit()
        state.fit.add(float(tokens), float(seconds), self.fit_decay)

    def set_wait(self, llm: str, wait_s: float | None) -> None:
        """Set ``llm``'s waiting time directly (a simulator that knows its queues); ``None``
        returns to the estimate from in-flight counts."""
        with self._lock:
            self._get(llm).override_s = wait_s

    def in_flight(self, llm: str) -> int:
        """Requests in flight to ``llm`` (every replica's, for a tracker that shares them)."""
        return self.local_in_flight(llm)

    def local_in_flight(self, llm: str) -> int:
        """Requests in flight to ``llm`` that this tracker was told of."""
        with self._lock:
            return self._get(llm).in_flight

    def wait_s(self, llms: Sequence[str]) -> NDArray[np.float64]:
        """Expected waiting time of a new request, per LLM (seconds)."""
        with self._lock:
            return np.array([self._wait(m) for m in llms], dtype=np.float64)

    def service_weights(
        self, llms: Sequence[str], output_tokens: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """How long each query would hold a slot of each LLM, relative to that LLM's average
        request: ``(a + b × tokens) / mean service time`` from the fitted line, shape
        ``output_tokens.shape`` (queries × ``llms``). 1 where nothing is known (no fit yet, a
        missing token count), so the penalty is then the same for every query.

        >>> t = LoadTracker()
        >>> for tokens, seconds in ((10, 0.7), (100, 2.5), (10, 0.7), (100, 2.5)):
        ...     t.served("a", service_s=seconds, output_tokens=tokens)
        >>> tokens = np.array([[10.0, 10.0], [400.0, 400.0]])
        >>> t.service_weights(["a", "b"], tokens).round(2).tolist()
        [[0.44, 1.0], [5.28, 1.0]]
        """
        tokens = np.asarray(output_tokens, dtype=np.float64)
        fits = self._fits(llms)
        weights = np.ones_like(tokens)
        for j, fit in enumerate(fits):
            if fit is None:
                continue
            intercept, slope, mean = fit.line()
            if slope > 0 and mean > 0:
                col = (intercept + slope * np.maximum(tokens[:, j], 0.0)) / mean
                weights[:, j] = np.where(np.isfinite(col), np.clip(col, 0.05, 20.0), 1.0)
        return weights

    def _fits(self, llms: Sequence[str]) -> list[_ServiceFit | None]:
        """Each LLM's service-time fit (``None``: nothing measured)."""
        with self._lock:
            return [self._llms[m].fit if m in self._llms else None for m in llms]

    def prediction_weights(
        self, pred: Prediction, prompt_tokens: NDArray[Any], prices: Mapping[str, LLM]
    ) -> NDArray[np.float64]:
        """:meth:`service_weights` for the answers ``pred`` predicts: its output tokens, or
        for a predictor of cost alone, the length its cost stands for at ``prices``."""
        tokens = pred.output_tokens
        if tokens is None:
            tokens = tokens_from_cost(
                prompt_tokens, pred.cost_usd,
                np.array([prices[m].price_in_per_mtok for m in pred.llms]),
                np.array([prices[m].price_out_per_mtok for m in pred.llms]),
            )  # fmt: skip
        return self.service_weights(pred.llms, tokens)

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
