"""Replicas sharing load, circuit breakers and rate limits through a real redis-server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixllm import Router
from mixllm.clock import ManualClock
from mixllm.errors import ConfigError
from mixllm.policy import LoadTracker
from mixllm.serve import FakeBackend, Gateway, Settings, Store
from mixllm.serve._redis import RedisLink
from mixllm.serve._redis_load import SharedLoadTracker
from mixllm.serve.errors import RateLimitError
from mixllm.serve.fallback import NoHealthyBackendError
from mixllm.serve.schemas import ChatRequest
from mixllm.serve.settings import ApiKey
from tests.conftest import make_clustered
from tests.redis_service import RedisServer, redis_server, redis_url, unique_prefix

__all__ = ["redis_server", "redis_url"]  # the fixtures, imported for pytest


def _eventually(check: Callable[[], bool], *, within_s: float = 5.0) -> bool:
    """Whether ``check()`` becomes true within ``within_s`` (polled, bounded)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def links(redis_url: str) -> Iterator[Callable[..., RedisLink]]:
    """Makes links of two or more replicas on one fresh key prefix; closes them after."""
    prefix, made = unique_prefix(), []

    def make(**kwargs: Any) -> RedisLink:
        link = RedisLink(redis_url, prefix=prefix, **kwargs)
        made.append(link)
        return link

    yield make
    for link in made:
        link.close()


@pytest.fixture
def trackers(links: Callable[..., RedisLink]) -> Iterator[Callable[..., SharedLoadTracker]]:
    made: list[SharedLoadTracker] = []

    def make(link: RedisLink | None = None, **kwargs: object) -> SharedLoadTracker:
        tracker = (link or links()).load_tracker(**kwargs)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close()


@pytest.fixture
def outage(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's server, started again after the test whatever it did to it."""
    yield redis_server
    redis_server.start()


def test_in_flight_of_one_replica_is_seen_by_the_other(
    trackers: Callable[..., SharedLoadTracker],
) -> None:
    a = trackers(concurrency={"m": 1}, default_service_s=2.0)
    b = trackers(concurrency={"m": 1}, default_service_s=2.0)
    for _ in range(3):
        a.started("m")
    assert a.sync() and b.sync()
    assert (a.in_flight("m"), b.in_flight("m")) == (3, 3)
    assert b.local_in_flight("m") == 0
    # 3 in flight on one slot: 3 queued ahead of a new request, 2 s each
    assert b.wait_s(["m", "other"]).tolist() == pytest.approx([6.0, 0.0])
    b.started("m")
    assert b.wait_s(["m"])[0] == pytest.approx(8.0)  # its own request counts at once
    a.finished("m", latency_s=1.0)
    a.finished("m", latency_s=1.0)
    assert a.sync() and b.sync()
    # a's measured 1 s, weighted by its two measurements, now stands for every replica
    assert b.in_flight("m") == 2
    assert b.wait_s(["m"])[0] == pytest.approx(2 * 1.0)


def test_heartbeat_pushes_without_sync(trackers: Callable[..., SharedLoadTracker]) -> None:
    a, b = trackers(cache_s=0.0), trackers(cache_s=0.0)
    a.started("m")
    assert _eventually(lambda: b.in_flight("m") == 1)
    a.finished("m")
    assert _eventually(lambda: b.in_flight("m") == 0)


def test_a_replica_that_stops_heartbeating_stops_counting(
    trackers: Callable[..., SharedLoadTracker],
) -> None:
    dead = trackers(heartbeat_ttl_s=1.0, cache_s=0.0)
    alive = trackers(cache_s=0.0)
    clean = trackers(cache_s=0.0)
    dead.started("m")
    clean.started("m")
    assert dead.sync() and clean.sync()
    assert alive.in_flight("m") == 2
    clean.close()  # a clean stop forgets its requests at once
    assert alive.in_flight("m") == 1
    dead.close(forget=False)  # as if killed: its load expires with its last heartbeat
    assert _eventually(lambda: alive.in_flight("m") == 0, within_s=5.0)
    assert dead.local_in_flight("m") == 1


def test_service_time_fits_are_pooled(trackers: Callable[..., SharedLoadTracker]) -> None:
    a, b = trackers(), trackers()
    tokens = np.array([[10.0], [400.0]])
    alone = LoadTracker()
    for _ in range(2):  # a sees short answers only, b long ones: neither alone has a slope
        a.served("m", service_s=0.7, output_tokens=10)
        alone.served("m", service_s=0.7, output_tokens=10)
        b.served("m", service_s=2.5, output_tokens=100)
    assert alone.service_weights(["m"], tokens)[:, 0].tolist() == [1.0, 1.0]
    assert a.sync() and b.sync() and a.sync()
    # pooled, both fit the line through every replica's measurements: 0.5 s + 0.02 s a token,
    # 1.6 s on average, so 10 tokens weigh 0.7 / 1.6 and 400 tokens 8.5 / 1.6
    for tracker in (a, b):
        weights = tracker.service_weights(["m"], tokens)[:, 0]
        assert weights == pytest.approx([0.7 / 1.6, 8.5 / 1.6], rel=1e-9)


def test_breaker_opened_on_one_replica_is_open_on_the_other(
    links: Callable[..., RedisLink],
) -> None:
    clock = ManualClock()
    one = links().breaker("m", failure_threshold=2, reset_after_s=0.5, clock=clock)
    two = links().breaker("m", failure_threshold=2, reset_after_s=0.5, clock=clock)
    assert one.allow() and two.allow()
    one.record_failure()
    two.record_failure()  # two replicas' failures add up to the threshold
    assert (one.state, two.state) == ("open", "open")
    assert not one.allow() and not two.allow()
    assert _eventually(lambda: two.state == "half_open")  # open for reset_after_s (Redis TTL)
    trials = [two.allow(), one.allow(), two.allow()]
    assert trials == [True, False, False]  # one trial call across the replicas
    one.record_success()  # ... whichever replica reports it
    assert (one.state, two.state) == ("closed", "closed")
    one.record_failure()
    two.record_success()  # a success anywhere resets the count of consecutive failures
    one.record_failure()
    assert two.state == "closed" and two.allow()


def test_rate_limit_holds_across_limiters(links: Callable[..., RedisLink]) -> None:
    one, two = links().rate_limiter(), links().rate_limiter()
    taken = [lim.take("key/requests", 1, per_minute=4) for lim in (one, two, one, two)]
    assert taken == [0.0, 0.0, 0.0, 0.0]
    wait = two.take("key/requests", 1, per_minute=4)
    assert 0 < wait <= 15.0 + 1e-6  # 4 a minute: one every 15 s
    assert one.take("key/requests", 1, per_minute=4) > 0
    one.give_back("key/requests", 1)  # a refused request's units come back, for every replica
    assert two.take("key/requests", 1, per_minute=4) == 0.0
    assert one.take("other/requests", 1, per_minute=4) == 0.0  # other keys are not touched
    # over a minute's worth goes through on a full bucket, and the others wait for it to refill
    assert two.take("key/tokens", 500, per_minute=60) == 0.0
    assert one.take("key/tokens", 1, per_minute=60) == pytest.approx(441.0, abs=1.0)


def test_redis_down_falls_back_to_local_state_then_shares_again(
    links: Callable[..., RedisLink],
    trackers: Callable[..., SharedLoadTracker],
    outage: RedisServer,
) -> None:
    a = trackers(links(retry_s=0.1), cache_s=0.0, heartbeat_s=0.25)
    link_b = links(retry_s=0.1)
    b = trackers(link_b, cache_s=0.0)
    breaker = link_b.breaker("m", failure_threshold=1, reset_after_s=60.0)
    limiter = link_b.rate_limiter()
    a.started("m")
    assert a.sync() and b.sync() and b.in_flight("m") == 1
    outage.stop()
    begun = time.monotonic()
    b.started("m")
    assert b.in_flight("m") == 1  # its own request only
    assert b.wait_s(["m"]).shape == (1,)
    assert not b.sync() and not link_b.up and link_b.errors >= 1
    assert [limiter.take("k", 1, per_minute=2) for _ in range(3)][:2] == [0.0, 0.0]
    assert breaker.allow()
    breaker.record_failure()  # counted on this replica alone
    assert breaker.state == "open" and not breaker.allow()
    breaker.record_success()
    # connection refused answers at once; a generous bound just shows nothing hangs
    assert time.monotonic() - begun < 5.0
    # an empty Redis: b, which saw it fail, publishes its load at once; a, which did not
    # call Redis meanwhile, with its next heartbeat
    outage.start()
    assert _eventually(lambda: b.in_flight("m") == 2 and a.in_flight("m") == 2)
    assert link_b.up


def test_a_hung_redis_blocks_a_call_for_the_socket_timeout_only(
    trackers: Callable[..., SharedLoadTracker], links: Callable[..., RedisLink]
) -> None:
    with socket.socket() as hung:  # accepts connections (the kernel does), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        port = hung.getsockname()[1]
        link = RedisLink(f"redis://127.0.0.1:{port}/0", timeout_s=0.1, retry_s=60.0)
        try:
            tracker = trackers(link)
            tracker.started("m")
            begun = time.monotonic()
            assert tracker.in_flight("m") == 1
            assert link.rate_limiter().take("k", 1, per_minute=1) == 0.0
            assert link.breaker("m").allow()
            assert time.monotonic() - begun < 3.0  # generous: one 0.1 s timeout, then local
        finally:
            link.close()


def test_bad_settings_are_config_errors(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        RedisLink(redis_url, timeout_s=0)
    with pytest.raises(ConfigError, match="expected redis://"):
        RedisLink("http://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="heartbeat_s"):
        RedisLink(redis_url).load_tracker(heartbeat_ttl_s=1.0, heartbeat_s=2.0)


def test_two_gateways_share_breakers_rate_limits_and_load(
    links: Callable[..., RedisLink], tmp_path: Path
) -> None:
    data = make_clustered(60)
    settings = Settings(breaker_failures=1, breaker_reset_s=60.0)
    key = ApiKey("app", "sk-app", requests_per_minute=3)
    body = ChatRequest.model_validate(
        {"model": "big", "messages": [{"role": "user", "content": "apple banana"}]}
    )
    backends = [
        {"small": FakeBackend("small"), "big": FakeBackend("big", fail="500")},
        {"small": FakeBackend("small"), "big": FakeBackend("big")},
    ]

    fitted = Router("mixllm", embedder="hashing").fit(data).save(tmp_path / "router")
    routers = [Router.load(fitted) for _ in range(2)]

    async def go() -> None:
        a, b = [
            Gateway(router, backends[i], Store(tmp_path / f"{i}.db"), settings, redis=links())
            for i, router in enumerate(routers)
        ]
        try:
            trackers = [a.tracker, b.tracker]
            assert all(isinstance(t, SharedLoadTracker) for t in trackers)
            a.tracker.started("small")
            assert all(t.sync() for t in trackers if isinstance(t, SharedLoadTracker))
            assert b.tracker.in_flight("small") == 1
            with pytest.raises(NoHealthyBackendError, match=r"big: .*HTTP 500"):
                await a.complete(await a.plan(body, key))  # a's failure opens the breaker ...
            with pytest.raises(NoHealthyBackendError, match="circuit open"):
                await b.complete(await b.plan(body, key))  # ... b does not call big
            assert backends[1]["big"].calls == 0
            await a.plan(body, key)  # the key's third request of the minute, on either replica
            with pytest.raises(RateLimitError, match="3 requests per minute"):
                await b.plan(body, key)
        finally:
            for gw in (a, b):
                gw.store.close()  # the links, closed after the test, stop the trackers

    asyncio.run(go())
