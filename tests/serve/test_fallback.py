"""Circuit breakers and call_with_fallbacks, with FakeBackends and a ManualClock."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from mixllm.clock import ManualClock
from mixllm.errors import BackendError, ConfigError
from mixllm.serve.chat import ChatResult
from mixllm.serve.fake import FakeBackend
from mixllm.serve.fallback import (
    Attempt,
    CircuitBreaker,
    NoHealthyBackendError,
    call_with_fallbacks,
)


# -- CircuitBreaker ------------------------------------------------------------------------
def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = ManualClock()
    b = CircuitBreaker(failure_threshold=3, reset_after_s=10.0, clock=clock)
    b.record_failure()
    b.record_failure()
    b.record_success()  # resets the count
    b.record_failure()
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    clock.advance(9.9)
    assert b.state == "open" and not b.allow()


def test_breaker_half_open_allows_one_trial_then_closes_on_success() -> None:
    clock = ManualClock()
    b = CircuitBreaker(failure_threshold=1, reset_after_s=10.0, clock=clock)
    b.record_failure()
    clock.advance(10.0)
    assert b.state == "half_open"
    assert b.allow() and not b.allow() and not b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow() and b.allow()


def test_breaker_half_open_failure_reopens() -> None:
    clock = ManualClock()
    b = CircuitBreaker(failure_threshold=2, reset_after_s=5.0, clock=clock)
    b.record_failure()
    b.record_failure()
    clock.advance(5.0)
    assert b.allow()
    b.record_failure()  # the trial failed
    assert b.state == "open" and not b.allow()
    clock.advance(4.0)
    assert not b.allow()
    clock.advance(1.0)
    assert b.state == "half_open" and b.allow()


def test_breaker_lost_trial_is_retried_after_reset_time() -> None:
    clock = ManualClock()
    b = CircuitBreaker(failure_threshold=1, reset_after_s=5.0, clock=clock)
    b.record_failure()
    clock.advance(5.0)
    assert b.allow()  # trial let through, never reported back
    clock.advance(4.0)
    assert not b.allow()
    clock.advance(1.0)
    assert b.allow()


@pytest.mark.parametrize(
    "kwargs", [{"failure_threshold": 0}, {"failure_threshold": 1.5}, {"reset_after_s": 0}]
)
def test_breaker_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        CircuitBreaker(**kwargs)


# -- call_with_fallbacks -------------------------------------------------------------------
def _run(
    backends: dict[str, FakeBackend],
    order: list[str] | None = None,
    breakers: dict[str, CircuitBreaker] | None = None,
    **kw: Any,
) -> tuple[str, ChatResult, list[Attempt]]:
    async def call(llm: str) -> ChatResult:
        return await backends[llm].complete([], {}, prompt="q")

    order = list(backends) if order is None else order
    coro = call_with_fallbacks(order, call, breakers=breakers or {}, **kw)
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_first_fails_second_answers() -> None:
    backends = {"a": FakeBackend("a", fail="500"), "b": FakeBackend("b", text="from b")}
    breakers = {m: CircuitBreaker(failure_threshold=1) for m in backends}
    llm, result, attempts = _run(backends, breakers=breakers)
    assert (llm, result.text) == ("b", "from b")
    assert [(a.llm, a.ok, a.status) for a in attempts] == [("a", False, 500), ("b", True, None)]
    assert "HTTP 500" in attempts[0].error
    assert breakers["a"].state == "open" and breakers["b"].state == "closed"


def test_all_failing_lists_each_attempt() -> None:
    backends = {
        "a": FakeBackend("a", fail="500"),
        "b": FakeBackend("b", fail="timeout"),
        "c": FakeBackend("c", fail="empty"),
    }
    with pytest.raises(NoHealthyBackendError) as info:
        _run(backends)
    err = info.value
    assert err.retryable and [a.llm for a in err.attempts] == ["a", "b", "c"]
    message = str(err)
    for piece in ("a: fake upstream for 'a' returned HTTP 500", "b: ", "timed out", "c: "):
        assert piece in message
    assert "no answer" in message


def test_non_retryable_error_stops_and_is_recorded() -> None:
    backends = {"a": FakeBackend("a", fail="400"), "b": FakeBackend("b")}
    breakers = {"a": CircuitBreaker(failure_threshold=1)}
    attempts: list[Attempt] = []
    with pytest.raises(BackendError) as info:
        _run(backends, breakers=breakers, attempts=attempts)
    assert not isinstance(info.value, NoHealthyBackendError)
    assert info.value.status == 400 and not info.value.retryable
    assert backends["b"].calls == 0
    assert [(a.llm, a.ok, a.status) for a in attempts] == [("a", False, 400)]
    assert breakers["a"].state == "closed"  # the upstream is up; the request was bad


def test_deadline_bounds_a_slow_backend() -> None:
    backends = {"slow": FakeBackend("slow", latency_s=2.0), "b": FakeBackend("b")}
    t0 = time.monotonic()
    with pytest.raises(NoHealthyBackendError) as info:
        _run(backends, deadline_s=0.15)
    assert time.monotonic() - t0 < 1.5  # the deadline, plus a generous margin
    assert backends["b"].calls == 0
    [attempt] = info.value.attempts
    assert attempt.llm == "slow" and not attempt.ok and "deadline" in attempt.error
    assert 0.1 < attempt.seconds < 1.5
    assert "not tried (attempt limit or deadline): ['b']" in str(info.value)


def test_slow_failure_leaves_time_for_the_next() -> None:
    backends = {"a": FakeBackend("a", latency_s=0.05, fail="500"), "b": FakeBackend("b")}
    llm, _, attempts = _run(backends, deadline_s=2.0)
    assert llm == "b" and attempts[0].seconds >= 0.04


def test_open_breaker_is_skipped() -> None:
    clock = ManualClock()
    backends = {"a": FakeBackend("a"), "b": FakeBackend("b")}
    breakers = {m: CircuitBreaker(failure_threshold=1, clock=clock) for m in backends}
    breakers["a"].record_failure()
    llm, _, attempts = _run(backends, breakers=breakers)
    assert llm == "b" and backends["a"].calls == 0
    assert [a.llm for a in attempts] == ["b"]
    breakers["b"].record_failure()
    with pytest.raises(NoHealthyBackendError, match=r"skipped \(circuit open\): \['a', 'b'\]"):
        _run(backends, breakers=breakers)


def test_max_attempts_bound_and_each_llm_once() -> None:
    backends = {m: FakeBackend(m, fail="connection") for m in "abcd"}
    with pytest.raises(NoHealthyBackendError) as info:
        _run(backends, order=["a", "a", "b", "c", "d"], max_attempts=2)
    assert [a.llm for a in info.value.attempts] == ["a", "b"]
    assert [backends[m].calls for m in "abcd"] == [1, 1, 0, 0]


def test_empty_order_and_bad_settings() -> None:
    with pytest.raises(NoHealthyBackendError, match="order is empty"):
        _run({}, order=[])
    with pytest.raises(ConfigError, match="max_attempts"):
        _run({"a": FakeBackend("a")}, max_attempts=0)
    with pytest.raises(ConfigError, match="deadline_s"):
        _run({"a": FakeBackend("a")}, deadline_s=0)


def test_attempts_list_of_the_caller_is_appended_to() -> None:
    earlier = Attempt("z", False, "earlier call")
    attempts = [earlier]
    backends = {"a": FakeBackend("a", fail="500"), "b": FakeBackend("b")}
    _, _, mine = _run(backends, attempts=attempts, max_attempts=2)
    assert [a.llm for a in mine] == ["a", "b"]
    assert attempts[0] is earlier and [a.llm for a in attempts] == ["z", "a", "b"]
