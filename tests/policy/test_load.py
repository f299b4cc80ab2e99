from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.policy import LoadTracker


def _taught(pairs: list[tuple[float, float]], rounds: int = 5) -> LoadTracker:
    tracker = LoadTracker()
    for _ in range(rounds):
        for tokens, seconds in pairs:
            tracker.served("a", service_s=seconds, output_tokens=tokens)
    return tracker


def test_weights_are_one_until_service_times_vary_with_length() -> None:
    tokens = np.array([[10.0, 10.0], [500.0, 500.0]])
    assert LoadTracker().service_weights(["a", "b"], tokens).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    same_length = _taught([(50.0, 1.0), (50.0, 3.0)])  # no spread in tokens: no slope
    assert same_length.service_weights(["a"], tokens[:, :1]).tolist() == [[1.0], [1.0]]


def test_service_fit_recovers_ttft_and_decoding_speed() -> None:
    # 0.5 s to the first token, then 40 tokens/s: service = 0.5 + tokens / 40.
    rng = np.random.default_rng(0)
    tokens = rng.uniform(5, 600, size=200)
    tracker = LoadTracker()
    for t in tokens:
        tracker.served("a", service_s=0.5 + t / 40.0, output_tokens=float(t))
    w = tracker.service_weights(["a"], np.array([[0.0], [40.0], [400.0]]))[:, 0]
    # Ratios between weights are ratios of service times whatever the mean is.
    assert w[1] / w[0] == pytest.approx(1.5 / 0.5, rel=1e-6)
    assert w[2] / w[0] == pytest.approx(10.5 / 0.5, rel=1e-6)
    # Relative to the average request (weighted to the recent ones, so near the sample mean).
    assert np.mean(0.5 + tokens / 40.0) * w[2] == pytest.approx(10.5, rel=0.1)


def test_weights_are_bounded_and_unknown_lengths_pay_the_average() -> None:
    tracker = _taught([(10.0, 0.75), (100.0, 3.0)])
    w = tracker.service_weights(["a"], np.array([[np.nan], [-5.0], [1e9]]))[:, 0]
    assert w[0] == 1.0  # unknown length
    assert 0.05 <= w[1] < 1.0  # negative counts as 0 tokens: the shortest answer
    assert w[2] == 20.0  # capped


def test_finished_with_tokens_fits_and_bad_observations_are_ignored() -> None:
    tracker = LoadTracker(concurrency={"a": 2})
    for tokens, seconds in ((10.0, 1.0), (200.0, 5.0)) * 3:
        tracker.started("a")
        tracker.finished("a", latency_s=seconds, output_tokens=tokens)
    before = tracker.service_weights(["a"], np.array([[10.0], [200.0]]))
    assert before[0, 0] < 1.0 < before[1, 0]
    tracker.served("a", service_s=float("nan"), output_tokens=10.0)
    tracker.served("a", service_s=-1.0, output_tokens=10.0)
    tracker.finished("a", latency_s=float("inf"), output_tokens=10.0)
    tracker.finished("a", latency_s=2.0, output_tokens=float("nan"))  # latency kept, no fit
    after = tracker.service_weights(["a"], np.array([[10.0], [200.0]]))
    np.testing.assert_array_equal(before, after)
    assert tracker.in_flight("a") == 0


def test_fit_decay_is_checked_and_forgets_old_speeds() -> None:
    with pytest.raises(ConfigError, match="fit_decay=0"):
        LoadTracker(fit_decay=0)
    tracker = LoadTracker(fit_decay=0.2)
    for _ in range(50):  # slow: 10 tokens/s
        for t in (10.0, 100.0):
            tracker.served("a", service_s=t / 10.0, output_tokens=t)
    for _ in range(50):  # then fast: 100 tokens/s, with the same 0.5 s to first token
        for t in (10.0, 100.0):
            tracker.served("a", service_s=0.5 + t / 100.0, output_tokens=t)
    w = tracker.service_weights(["a"], np.array([[0.0], [100.0]]))[:, 0]
    assert w[1] / w[0] == pytest.approx(1.5 / 0.5, rel=0.01)
