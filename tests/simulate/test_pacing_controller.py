"""The pacing controller on its own: the hard budget with worst-case holds, periods, restore,
and λ following a budget while the volume changes (a synthetic plant, a manual clock)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixllm.clock import ManualClock
from mixllm.errors import ConfigError
from mixllm.policy.pacing import Budget, Pacer


def test_holds_never_pass_the_budget() -> None:
    clock = ManualClock(start=1_000_000.0)
    pacer = Pacer(Budget(usd=2.0, period="hour"), lam=5.0, clock=clock)
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(500):  # bounded
        worst = float(rng.uniform(0.0, 0.2))
        hold = pacer.reserve(worst)
        if hold is None:
            refused += 1
            assert pacer.spent + worst > 2.0
            continue
        assert pacer.spent <= 2.0 + 1e-9
        pacer.settle(hold, worst * float(rng.uniform(0.0, 1.5)))  # more than held: capped
        assert pacer.spent <= 2.0 + 1e-9
        clock.advance(1.0)
    assert refused > 0
    assert pacer.remaining == pytest.approx(2.0 - pacer.spent)


def test_a_new_period_starts_from_zero() -> None:
    clock = ManualClock(start=86400.0 * 3 + 3500.0)
    pacer = Pacer(Budget(usd=1.0, period="hour"), lam=1.0, clock=clock)
    hold = pacer.reserve(0.8)
    assert hold is not None and pacer.resets_at == 86400.0 * 3 + 3600.0
    clock.advance(200.0)
    assert pacer.spent == 0.0
    pacer.settle(hold, 0.5)  # the old hour's hold stays there
    assert pacer.spent == 0.0
    assert Budget(usd=1.0, period="hour").label(clock.now()) == "1970-01-04T01"
    assert Budget(usd=1.0, period="day").label(clock.now()) == "1970-01-04"


def test_restore_sets_spend_and_lam() -> None:
    clock = ManualClock(start=0.0)
    pacer = Pacer(Budget(usd=10.0, period="day"), lam=1.0, clock=clock)
    pacer.restore(9.5, lam=250.0)
    assert pacer.spent == 9.5 and pacer.lam == pytest.approx(250.0)
    assert pacer.covers(0.5) and not pacer.covers(0.6)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"usd": 0.0}, "usd=0.0"),
        ({"usd": float("nan")}, "usd=nan"),
        ({"usd": 1.0, "period": "week"}, "period='week'"),
    ],
)
def test_bad_budgets_are_named(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Budget(**kwargs)  # type: ignore[arg-type]


def _day(volume: list[float], *, start_lam: float) -> tuple[list[float], list[float]]:
    """A day of ``volume[hour]`` requests a second (Poisson), each costing 0.01 / λ^0.7 USD
    (larger λ: cheaper); spend and mean λ per hour under $24 a day."""
    clock = ManualClock(start=0.0)
    pacer = Pacer(Budget(usd=24.0, period="day"), lam=start_lam, clock=clock)
    rng = np.random.default_rng(1)
    spend, lams = [0.0] * 24, [0.0] * 24
    counts = [0] * 24
    t = 0.0
    while t < 86400.0:  # bounded: t grows by at least 1/8 s a step
        hour = int(t // 3600)
        lam = pacer.lam
        cost = 0.01 / lam**0.7 * float(rng.uniform(0.5, 1.5))
        hold = pacer.reserve(cost)
        if hold is not None:
            pacer.settle(hold, cost)
            spend[hour] += cost
        lams[hour] += lam
        counts[hour] += 1
        t += float(rng.exponential(1.0 / volume[hour]))
        clock.advance(max(t - clock.now(), 0.0))
    return spend, [x / max(n, 1) for x, n in zip(lams, counts, strict=True)]


def test_lam_follows_the_volume_and_spend_follows_the_budget() -> None:
    volume = [0.5] * 8 + [2.0] * 8 + [1.0] * 8  # requests per second by hour
    spend, lams = _day(volume, start_lam=1.0)
    assert sum(spend) <= 24.0 + 1e-9
    for hour in range(1, 24):
        assert spend[hour] == pytest.approx(1.0, rel=0.10), (hour, spend[hour])
    # four times the volume needs λ about 4^(1/0.7) times larger
    ratio = lams[12] / lams[5]
    assert ratio == pytest.approx(4 ** (1 / 0.7), rel=0.25)
    assert math.isfinite(lams[0]) and lams[0] > 1.0
