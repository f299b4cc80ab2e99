"""Budget pacing: move λ so that spend follows a budget in USD per hour or per day.

A :class:`Pacer` holds one budget (:class:`Budget`: USD per UTC hour or UTC day, periods
aligned on Unix time) and the λ to route with (score = quality − λ·cost; a larger λ is
cheaper). Two things keep the spend on the budget:

* **The controller.** The rate to aim for is what the period has left divided by the time it
  has left, so an early overspend is paid back later in the period and an underspend is
  spent. The spend rate of the last ``window_s`` seconds (an exponentially weighted mean,
  corrected for a short history) is compared with it, and log λ follows a PI law on their
  relative gap (rate / aim − 1, clipped to ±1): λ rises when spend runs ahead, falls when it
  lags, whatever the traffic's volume or mix.
* **The hard limit.** A request *reserves* its worst-case cost before its call
  (:meth:`Pacer.reserve`) and *settles* the real cost after (:meth:`Pacer.settle`); a
  reservation that would pass the budget is refused, so a period never spends more than its
  budget (a settled answer is never charged more than its reservation).

Time comes from an injected :class:`~mixllm.clock.Clock` whose ``now()`` is Unix seconds
(a :class:`~mixllm.clock.ManualClock` in tests and simulations).

>>> from mixllm.clock import ManualClock
>>> clock = ManualClock(start=0.0)
>>> pacer = Pacer(Budget(usd=1.0, period="hour"), lam=10.0, clock=clock)
>>> hold = pacer.reserve(0.6)
>>> pacer.reserve(0.6) is None  # 1.2 would pass the hour's $1
True
>>> pacer.settle(hold, 0.25)
>>> round(pacer.spent, 6), pacer.resets_at
(0.25, 3600.0)
>>> clock.advance(3600.0); pacer.spent  # a new hour
0.0
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from dataclasses import dataclass

from mixllm.clock import Clock
from mixllm.errors import ConfigError

__all__ = ["PERIODS", "Budget", "Hold", "Pacer"]

#: A budget's period and its length in seconds (UTC hours and days).
PERIODS: dict[str, float] = {"hour": 3600.0, "day": 86400.0}

#: Slack when comparing a running total with a budget (sums of floats).
_SLACK_USD = 1e-9


@dataclass(frozen=True)
class Budget:
    """``usd`` to spend per ``period`` (``"hour"`` or ``"day"``, in UTC).

    >>> b = Budget(usd=24.0, period="day")
    >>> b.period_s, b.rate_usd_per_hour, b.describe()
    (86400.0, 1.0, '$24 per day')
    >>> b.start(90000.0), b.end(90000.0)
    (86400.0, 172800.0)
    """

    usd: float
    period: str = "day"

    def __post_init__(self) -> None:
        usd = self.usd
        if isinstance(usd, bool) or not (
            isinstance(usd, int | float) and math.isfinite(usd) and 0 < usd <= 1e12
        ):
            raise ConfigError(f"pacing budget usd={usd!r}; expected a number of USD in (0, 1e12]")
        if self.period not in PERIODS:
            raise ConfigError(f"pacing period={self.period!r}; expected one of {list(PERIODS)}")

    @property
    def period_s(self) -> float:
        """The period's length in seconds."""
        return PERIODS[self.period]

    @property
    def rate_usd_per_hour(self) -> float:
        """The even spend rate: the budget spread over its period."""
        return float(self.usd) * 3600.0 / self.period_s

    def start(self, t: float) -> float:
        """Unix time at which the period holding ``t`` began."""
        return math.floor(t / self.period_s) * self.period_s

    def end(self, t: float) -> float:
        """Unix time at which the period holding ``t`` ends (its budget is whole again)."""
        return self.start(t) + self.period_s

    def label(self, t: float) -> str:
        """The period holding ``t`` in UTC: ``2026-12-05`` (a day) or ``2026-12-05T13`` (an
        hour)."""
        at = dt.datetime.fromtimestamp(self.start(t), dt.timezone.utc)
        return at.strftime("%Y-%m-%d" if self.period == "day" else "%Y-%m-%dT%H")

    def describe(self) -> str:
        """The budget in words."""
        return f"${self.usd:g} per {self.period}"


@dataclass(frozen=True)
class Hold:
    """A reservation: ``usd`` held on the period that began at ``period_start``."""

    usd: float
    period_start: float


class Pacer:
    """λ for one budget, and its period's spend with worst-case reservations. Thread-safe.

    Parameters
    ----------
    budget:
        USD per hour or per day.
    lam:
        λ to start from (the controller moves it within ``[lam_min, lam_max]``).
    clock:
        ``now()`` in Unix seconds.
    window_s:
        How far back the spend rate looks (default: a twelfth of the period, at most 5
        minutes).
    gain:
        Proportional gain on the relative gap between the spend rate and the aimed rate (on
        log λ); the integral gain is ``gain`` per ``window_s``.
    spent:
        What the current period has already spent (from a store, after a restart).
    """

    def __init__(
        self,
        budget: Budget,
        *,
        lam: float,
        clock: Clock,
        lam_min: float = 1e-2,
        lam_max: float = 1e7,
        window_s: float | None = None,
        gain: float = 3.0,
        spent: float = 0.0,
    ) -> None:
        if not isinstance(budget, Budget):
            raise ConfigError(f"budget={budget!r}; expected a mixllm.policy.pacing.Budget")
        if not (0 < lam_min < lam_max and math.isfinite(lam_max)):
            raise ConfigError(f"lam_min={lam_min!r}, lam_max={lam_max!r}; expected 0 < min < max")
        if not (math.isfinite(lam) and lam >= 0):
            raise ConfigError(f"lam={lam!r}; expected a finite number >= 0")
        window = min(budget.period_s / 12, 300.0) if window_s is None else window_s
        if not (math.isfinite(window) and 0 < window <= budget.period_s):
            raise ConfigError(f"window_s={window_s!r}; expected seconds in (0, the period]")
        if not (math.isfinite(gain) and gain > 0):
            raise ConfigError(f"gain={gain!r}; expected a number > 0")
        self.budget, self.clock = budget, clock
        self.lam_min, self.lam_max, self.window_s, self.gain = lam_min, lam_max, window, gain
        self._lock = threading.Lock()
        now = clock.now()
        self._period = budget.start(now)
        self._spent = _usd("spent", spent)
        self._log_ref = math.log(min(max(lam, lam_min), lam_max))
        self._integral = 0.0
        self._log_lam = self._log_ref
        self._rate_sum = 0.0  # exponentially weighted spend (USD), decayed to _rate_at
        self._rate_at = now
        self._since = now  # when the rate's history began
        self._stepped_at = now

    # -- the period's money ---------------------------------------------------------------------
    @property
    def spent(self) -> float:
        """The current period's spend in USD, reservations in flight included."""
        with self._lock:
            self._roll(self.clock.now())
            return self._spent

    @property
    def remaining(self) -> float:
        """What the current period's budget has left (USD, >= 0)."""
        return max(self.budget.usd - self.spent, 0.0)

    @property
    def resets_at(self) -> float:
        """Unix time at which the current period ends."""
        return self.budget.end(self.clock.now())

    def restore(self, spent: float, lam: float | None = None) -> None:
        """Set the current period's spend (and λ) from a durable record."""
        with self._lock:
            self._roll(self.clock.now())
            self._spent = _usd("spent", spent)
            if lam is not None and math.isfinite(lam) and lam > 0:
                self._log_lam = math.log(min(max(lam, self.lam_min), self.lam_max))
                self._integral = self._log_lam - self._log_ref

    def covers(self, usd: float) -> bool:
        """Whether the period's budget has ``usd`` left."""
        return self.spent + _usd("usd", usd) <= self.budget.usd + _SLACK_USD

    def reserve(self, usd: float) -> Hold | None:
        """Hold ``usd`` (a request's worst case) on the current period, or ``None`` when that
        would pass the budget (nothing is held)."""
        amount = _usd("usd", usd)
        with self._lock:
            self._roll(self.clock.now())
            if self._spent + amount > self.budget.usd + _SLACK_USD:
                return None
            self._spent += amount
            return Hold(amount, self._period)

    def settle(self, hold: Hold, actual_usd: float) -> None:
        """Replace a reservation with what the answer cost (at most the reservation: the
        budget must hold); the cost counts toward the spend rate."""
        actual = min(_usd("actual_usd", actual_usd), hold.usd)
        with self._lock:
            now = self.clock.now()
            self._roll(now)
            if hold.period_start == self._period:  # an older period's hold stays charged
                self._spent = max(self._spent - hold.usd + actual, 0.0)
            self._observe(actual, now)

    def observe(self, usd: float) -> None:
        """Count ``usd`` spent now toward the spend rate only (spend held elsewhere, such as
        a gateway's store)."""
        amount = _usd("usd", usd)
        with self._lock:
            self._observe(amount, self.clock.now())

    # -- the controller -------------------------------------------------------------------------
    @property
    def lam(self) -> float:
        """λ to route with now."""
        with self._lock:
            self._step(self.clock.now())
            return math.exp(self._log_lam)

    @property
    def rate_usd_per_hour(self) -> float:
        """The recent spend rate (USD per hour over about ``window_s``)."""
        with self._lock:
            return self._rate(self.clock.now()) * 3600.0

    def aimed_usd_per_hour(self) -> float:
        """The spend rate the controller aims for now: the period's remaining budget over its
        remaining time."""
        with self._lock:
            return self._aim(self.clock.now()) * 3600.0

    def _roll(self, now: float) -> None:
        start = self.budget.start(now)
        if start != self._period:
            self._period, self._spent = start, 0.0

    def _decay(self, now: float) -> None:
        if now > self._rate_at:
            decay = math.exp(-(now - self._rate_at) / self.window_s)
            self._rate_sum *= decay
            self._rate_at = now

    def _observe(self, usd: float, now: float) -> None:
        self._decay(now)
        self._rate_sum += usd

    def _rate(self, now: float) -> float:
        """USD per second: the weighted sum over its weights' total (a short history counts
        as what it is, not as a window of zeros)."""
        self._decay(now)
        span = self.window_s * -math.expm1(-max(now - self._since, 1.0) / self.window_s)
        return self._rate_sum / span

    def _aim(self, now: float) -> float:
        self._roll(now)
        left = max(self.budget.usd - self._spent, 0.0)
        return left / max(self.budget.end(now) - now, 60.0)

    def _step(self, now: float) -> None:
        dt_s = now - self._stepped_at
        if dt_s <= 0 or now - self._since < self.window_s / 5:
            return  # nothing new since the last step, or too short a history to judge
        self._stepped_at = now
        rate, aim = self._rate(now), self._aim(now)
        floor = 1e-3 * self.budget.usd / self.budget.period_s  # nothing left to aim for
        error = max(min(rate / max(aim, floor) - 1.0, 1.0), -1.0)
        gain = self.gain
        # at most a window's worth per step: a long quiet spell is one window of evidence
        integral = self._integral + gain * error * min(dt_s, self.window_s) / self.window_s
        low, high = math.log(self.lam_min), math.log(self.lam_max)
        log_lam = self._log_ref + integral + gain * error
        if (log_lam > high and error > 0) or (log_lam < low and error < 0):
            integral = self._integral  # anti-windup: no integrating further past a bound
        self._integral = integral
        self._log_lam = min(max(self._log_ref + integral + gain * error, low), high)


def _usd(name: str, value: float) -> float:
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and math.isfinite(value) and value >= 0
    ):
        raise ConfigError(f"{name}={value!r}; expected a number of USD >= 0")
    return float(value)
