"""Arrival processes, per-LLM queues and simulated users of mixllm.simulate."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy import LoadTracker
from mixllm.simulate import (
    Bursts,
    FixedRate,
    Poisson,
    Queues,
    Service,
    ThresholdUser,
    parse_arrivals,
)


def test_fixed_rate_sends_batches_at_fixed_times() -> None:
    t = FixedRate(batch=100, every_s=10.0).times(250, seed=3)
    assert t[:100].tolist() == [0.0] * 100
    assert t[100:200].tolist() == [10.0] * 100
    assert t[200:].tolist() == [20.0] * 50


def test_poisson_is_seeded_and_has_its_rate() -> None:
    a = Poisson(rate_per_s=4.0).times(20_000, seed=7)
    assert np.array_equal(a, Poisson(rate_per_s=4.0).times(20_000, seed=7))
    assert not np.array_equal(a, Poisson(rate_per_s=4.0).times(20_000, seed=8))
    gaps = np.diff(a)
    assert (gaps >= 0).all()
    assert abs(gaps.mean() - 0.25) < 0.01
    assert abs(gaps.std() - 0.25) < 0.01  # exponential: sd equals the mean


def test_bursts_are_denser_inside_the_burst_window() -> None:
    proc = Bursts(base_per_s=2.0, burst_per_s=20.0, period_s=30.0, burst_s=5.0)
    t = proc.times(20_000, seed=1)
    assert (np.diff(t) >= 0).all()
    in_burst = (t % 30.0) < 5.0
    periods = t[-1] / 30.0
    burst_rate = in_burst.sum() / (periods * 5.0)
    base_rate = (~in_burst).sum() / (periods * 25.0)
    assert burst_rate == pytest.approx(20.0, rel=0.05)
    assert base_rate == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("fixed:50/5", FixedRate(50, 5.0)),
        ("poisson:3", Poisson(3.0)),
        ("bursts:1,10,60,5", Bursts(1.0, 10.0, 60.0, 5.0)),
    ],
)
def test_parse_arrivals(spec: str, expected: object) -> None:
    assert parse_arrivals(spec) == expected


@pytest.mark.parametrize("spec", ["uniform:3", "poisson:abc", "fixed:0/10", "bursts:1,2,3,9"])
def test_parse_arrivals_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected"):
        parse_arrivals(spec)


def test_queue_serves_concurrency_requests_at_once_then_makes_others_wait() -> None:
    q = Queues({"a": Service(ttft_s=0.5, tokens_per_s=10.0, concurrency=2)})
    served = [q.submit("a", 0.0, output_tokens=5, tau_s=10.0) for _ in range(3)]
    assert [s.wait_s for s in served] == [0.0, 0.0, 1.0]
    assert all(s.service_s == 1.0 for s in served)
    assert q.wait_s("a", 0.0) == 1.0
    assert q.wait_s("a", 5.0) == 0.0


def test_request_waiting_past_tau_is_dropped_without_taking_a_slot() -> None:
    q = Queues({"a": Service(ttft_s=0.0, tokens_per_s=1.0, concurrency=1)})
    assert not q.submit("a", 0.0, output_tokens=10, tau_s=5.0).timed_out
    late = q.submit("a", 1.0, output_tokens=10, tau_s=5.0)
    assert late.timed_out and late.wait_s == 9.0
    # The dropped request took no slot: the next one waits only for the first.
    assert q.submit("a", 2.0, output_tokens=1, tau_s=100.0).wait_s == 8.0


def test_queue_is_fifo_work_conserving_and_never_over_its_concurrency() -> None:
    rng = np.random.default_rng(0)
    service = Service(ttft_s=0.2, tokens_per_s=20.0, concurrency=3)
    q = Queues({"a": service})
    arrivals = np.sort(rng.uniform(0, 60, size=400))
    spans = []
    for t in arrivals:
        s = q.submit("a", float(t), output_tokens=float(rng.integers(1, 200)), tau_s=np.inf)
        spans.append((t + s.wait_s, t + s.wait_s + s.service_s))
    starts = np.array([a for a, _ in spans])
    ends = np.array([b for _, b in spans])
    assert (np.diff(starts) >= -1e-12).all()  # first come, first served
    for a in starts:  # at most 3 in service at any start
        assert ((starts <= a + 1e-12) & (ends > a + 1e-12)).sum() <= 3
    for t, a in zip(arrivals, starts):  # one that waits starts the moment a slot frees up
        if a > t + 1e-12:
            assert np.isclose(ends, a, rtol=0, atol=1e-9).any()


def test_feed_sets_each_llms_wait_in_the_load_tracker() -> None:
    q = Queues(
        {
            "slow": Service(ttft_s=0.0, tokens_per_s=1.0, concurrency=1),
            "fast": Service(ttft_s=0.0, tokens_per_s=100.0, concurrency=4),
        }
    )
    q.submit("slow", 0.0, output_tokens=30, tau_s=60.0)
    tracker = LoadTracker()
    q.feed(tracker, 10.0)
    assert tracker.wait_s(["slow", "fast"]).tolist() == [20.0, 0.0]


def test_queue_pool_changes_and_bad_services() -> None:
    q = Queues({"a": Service()})
    q.add_llm("b", Service(concurrency=2))
    assert q.llms == ("a", "b")
    q.remove_llm("a")
    with pytest.raises(UnknownLLMError, match="'a'"):
        q.wait_s("a", 0.0)
    with pytest.raises(ConfigError, match="already"):
        q.add_llm("b", Service())
    with pytest.raises(ConfigError, match="tokens_per_s=0"):
        Service(tokens_per_s=0)
    with pytest.raises(ConfigError, match="concurrency=0"):
        Service(concurrency=0)


def test_threshold_user_follows_the_papers_rule() -> None:
    user, rng = ThresholdUser(), np.random.default_rng(0)
    assert user.reward(quality=0.8, wait_s=1.0, timed_out=False, rng=rng)
    assert not user.reward(quality=0.7, wait_s=1.0, timed_out=False, rng=rng)
    assert not user.reward(quality=1.0, wait_s=15.0, timed_out=False, rng=rng)
    assert not user.reward(quality=1.0, wait_s=0.0, timed_out=True, rng=rng)


def test_threshold_user_flips_the_given_share_of_judgements() -> None:
    user, rng = ThresholdUser(flip=0.2), np.random.default_rng(1)
    votes = [user.reward(quality=1.0, wait_s=0.0, timed_out=False, rng=rng) for _ in range(5000)]
    assert 1 - np.mean(votes) == pytest.approx(0.2, abs=0.02)
    with pytest.raises(ConfigError, match=r"flip=0\.7"):
        ThresholdUser(flip=0.7)
