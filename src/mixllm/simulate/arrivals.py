"""When queries arrive: a fixed rate in batches (the paper's 100 queries every 10 s), a Poisson
process, or bursts on top of a base rate. Every process is seeded and returns arrival times in
seconds from the start of the stream, non-decreasing.

>>> FixedRate(batch=3, every_s=10.0).times(7, seed=0).tolist()
[0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 20.0]
>>> t = Poisson(rate_per_s=2.0).times(4000, seed=1)
>>> bool(np.all(np.diff(t) >= 0)), round(float(4000 / t[-1]), 1)
(True, 2.0)
>>> parse_arrivals("fixed:100/10")
FixedRate(batch=100, every_s=10.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError

__all__ = ["Arrivals", "Bursts", "FixedRate", "Poisson", "parse_arrivals"]

FloatArray = NDArray[np.float64]


class Arrivals(Protocol):
    """A seeded arrival process."""

    def times(self, n: int, *, seed: int) -> FloatArray:
        """Arrival times of ``n`` queries (seconds from the start, non-decreasing)."""
        ...


def _positive(name: str, value: float) -> None:
    if not (value > 0 and np.isfinite(value)):
        raise ConfigError(f"{name}={value!r}; expected a finite number > 0")


@dataclass(frozen=True)
class FixedRate:
    """``batch`` queries arrive together every ``every_s`` seconds (MixLLM §4: 100 per 10 s)."""

    batch: int = 100
    every_s: float = 10.0

    def __post_init__(self) -> None:
        if not (isinstance(self.batch, int) and self.batch >= 1):
            raise ConfigError(f"batch={self.batch!r}; expected an integer >= 1")
        _positive("every_s", self.every_s)

    def times(self, n: int, *, seed: int) -> FloatArray:
        out: FloatArray = (np.arange(n) // self.batch).astype(np.float64) * self.every_s
        return out


@dataclass(frozen=True)
class Poisson:
    """Independent arrivals at ``rate_per_s`` on average (exponential gaps)."""

    rate_per_s: float = 10.0

    def __post_init__(self) -> None:
        _positive("rate_per_s", self.rate_per_s)

    def times(self, n: int, *, seed: int) -> FloatArray:
        gaps = np.random.default_rng(seed).exponential(1.0 / self.rate_per_s, size=n)
        out: FloatArray = np.cumsum(gaps) - gaps[0] if n else np.zeros(0)
        return out


@dataclass(frozen=True)
class Bursts:
    """Poisson arrivals at ``base_per_s``, raised to ``burst_per_s`` for ``burst_s`` seconds at
    the start of every ``period_s`` seconds (exact: exponential gaps restart at each boundary)."""

    base_per_s: float = 5.0
    burst_per_s: float = 50.0
    period_s: float = 60.0
    burst_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("base_per_s", "burst_per_s", "period_s", "burst_s"):
            _positive(name, getattr(self, name))
        if self.burst_s >= self.period_s:
            raise ConfigError(
                f"burst_s={self.burst_s!r} with period_s={self.period_s!r}; "
                "expected a burst shorter than its period"
            )

    def _segment(self, t: float) -> tuple[float, float]:
        """The rate at time ``t`` and when it next changes."""
        start = np.floor(t / self.period_s) * self.period_s
        if t < start + self.burst_s:
            return self.burst_per_s, start + self.burst_s
        return self.base_per_s, start + self.period_s

    def times(self, n: int, *, seed: int) -> FloatArray:
        rng = np.random.default_rng(seed)
        out = np.empty(n, dtype=np.float64)
        t, k = 0.0, 0
        while k < n:
            rate, end = self._segment(t)
            nxt = t + rng.exponential(1.0 / rate)
            if nxt >= end:  # memoryless: restart the gap at the rate change
                t = end
                continue
            t = nxt
            out[k] = t
            k += 1
        return out


def parse_arrivals(spec: str) -> Arrivals:
    """``fixed:BATCH/SECONDS``, ``poisson:RATE`` or ``bursts:BASE,BURST,PERIOD,LENGTH``."""
    kind, _, args = spec.partition(":")
    try:
        if kind == "fixed":
            batch, _, every = (args or "100/10").partition("/")
            return FixedRate(int(batch), float(every or 10.0))
        if kind == "poisson":
            return Poisson(float(args or 10.0))
        if kind == "bursts":
            parts = [float(x) for x in args.split(",")] if args else []
            return Bursts(*parts)
    except ValueError:
        pass
    raise ConfigError(
        f"arrivals {spec!r}; expected fixed:BATCH/SECONDS (e.g. fixed:100/10), poisson:RATE "
        "or bursts:BASE,BURST,PERIOD,LENGTH (rates per second, times in seconds)"
    )
