"""Faults end to end: with the upstreams failing (500s, 429s, timeouts, dropped connections,
slowness), every request is answered while one LLM is healthy; when none is, a clear 503 within
the deadline. A real uvicorn on 127.0.0.1, FakeBackends, and OpenAIBackends pointed at a socket
server that misbehaves on purpose (or at a port where nothing listens)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from mixllm import Router
from mixllm.clock import ManualClock
from mixllm.serve import FakeBackend
from mixllm.serve.chat import _chunks

from .conftest import running
from .faults_setup import (
    ERRORS,
    PROMPTS,
    REQUEST_TIMEOUT_S,
    SLOW_S,
    TEXT,
    _app,
    _ask,
    _backend,
    _burst,
    _calls,
    _metric,
    _order,
    _post,
    _threads,
    _upstream,
)


# -- one healthy LLM is enough -----------------------------------------------------------------
@pytest.mark.parametrize(
    "kinds",
    [("500", "drop", "hang"), ("429", "timeout", "refused"), ("connection", "empty", "reset")],
    ids=["500-drop-hang", "429-timeout-refused", "connection-empty-reset"],
)
def test_every_request_is_answered_while_one_llm_is_healthy(
    router: Router, tmp_path: Path, kinds: tuple[str, str, str]
) -> None:
    # the healthy LLM is the router's last choice: every request tries the broken ones first
    # (until their circuits open)
    last_choice = Counter(_order(d)[-1] for d in router.route_many(PROMPTS))
    healthy, n_last = last_choice.most_common(1)[0]
    assert n_last == len(PROMPTS), f"no LLM is the router's last choice for all: {last_choice}"
    broken = dict(zip([m for m in router.llms if m != healthy], kinds, strict=True))
    settings = {"max_attempts": 4, "deadline_s": 5.0, "breaker_failures": 3}
    with _upstream() as upstream:
        backends = {m: _backend(m, broken.get(m), upstream, latency_s=SLOW_S) for m in broken}
        backends[healthy] = FakeBackend(healthy, text=TEXT, latency_s=0.01)
        app, store = _app(router, tmp_path, backends, breaker_reset_s=120.0, **settings)
        with running(app) as base:
            root = base.removesuffix("/v1")
            # 16 (asyncio, 8 at a time) while every circuit is still closed; then, once the
            # broken LLMs' circuits are open, 32 from 8 threads and 12 one by one
            first = _burst(base, [_ask(i, stream=i % 3 == 0) for i in range(16)], concurrency=8)
            calls_first = {m: _calls(backends[m], upstream) for m in broken}
            second = _threads(base, [_ask(i, stream=i % 2 == 0) for i in range(32)], workers=8)
            health = httpx.get(f"{root}/healthz", timeout=REQUEST_TIMEOUT_S).json()
            last = [_post(base, _ask(i, stream=i % 2 == 1)) for i in range(12)]
            calls_after = {m: _calls(backends[m], upstream) for m in broken}
            metrics = httpx.get(f"{root}/metrics", timeout=REQUEST_TIMEOUT_S).text
        store.close()

    replies = first + second + last
    assert len(replies) == 60
    assert [r["status"] for r in replies] == [200] * 60, [r.get("error") for r in replies]
    assert {r["llm"] for r in replies} == {healthy}
    assert all(r["text"] == TEXT and r["done"] and not r["stream_errors"] for r in replies)
    assert max(r["seconds"] for r in replies) < settings["deadline_s"]
    # each failed attempt is in an answer's attempts, in /metrics, and reached its backend
    failed = Counter(a["llm"] for r in replies for a in r["mixllm"]["attempts"] if not a["ok"])
    assert sum(r["fallbacks"] != "0" for r in replies) > 0  # the router did pick broken LLMs
    assert set(failed) <= set(broken)
    for llm, kind in broken.items():
        errors = {a["error"] for r in replies for a in r["mixllm"]["attempts"] if a["llm"] == llm}
        assert all(ERRORS[kind] in e for e in errors), (kind, errors)
        assert _metric(metrics, "mixllm_fallbacks_total", llm) == failed[llm]
        if calls_after[llm] is not None:
            assert calls_after[llm] == failed[llm], (llm, kind)
    assert _metric(metrics, "mixllm_answers_total", healthy) == 60
    for llm in router.llms:
        assert _metric(metrics, "mixllm_in_flight", llm) == 0, llm
    # their circuits opened: the last requests skip them
    assert all(failed[m] >= settings["breaker_failures"] for m in broken), failed
    assert health["circuits"] == {**dict.fromkeys(broken, "open"), healthy: "closed"}
    assert calls_first == calls_after
    for r in second + last:
        assert r["fallbacks"] == "0"
        assert [(a["llm"], a["ok"]) for a in r["mixllm"]["attempts"]] == [(healthy, True)]


def test_an_llm_that_recovers_gets_traffic_again(router: Router, tmp_path: Path) -> None:
    prompt = PROMPTS[0]
    sick = router.route(prompt).llm
    clock = ManualClock()
    backends = {m: FakeBackend(m, text=TEXT) for m in router.llms}
    backends[sick] = FakeBackend(sick, text=TEXT, fail="500", fail_times=3)
    app, store = _app(router, tmp_path, backends, breaker_failures=3, breaker_reset_s=30.0,
                      clock=clock)  # fmt: skip
    ask = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
    with running(app) as base:
        root = base.removesuffix("/v1")

        def circuit() -> str:
            health = httpx.get(f"{root}/healthz", timeout=REQUEST_TIMEOUT_S).json()
            return str(health["circuits"][sick])

        sick_down = [_post(base, ask) for _ in range(3)]
        assert circuit() == "open"
        skipped = _post(base, ask)
        clock.advance(30.0)
        assert circuit() == "half_open"
        back = _post(base, ask)
        assert circuit() == "closed"
        metrics = httpx.get(f"{root}/metrics", timeout=REQUEST_TIMEOUT_S).text
    store.close()
    for r in sick_down:
        assert r["status"] == 200 and r["llm"] != sick and r["fallbacks"] == "1"
        assert r["mixllm"]["attempts"][0]["llm"] == sick and r["mixllm"]["attempts"][0]["status"]
    assert skipped["status"] == 200 and skipped["llm"] != sick and skipped["fallbacks"] == "0"
    assert back["status"] == 200 and back["llm"] == sick and back["fallbacks"] == "0"
    assert backends[sick].calls == 4  # three failures, no call while open, the trial
    assert _metric(metrics, "mixllm_fallbacks_total", sick) == 3


# -- no fallback once a stream has started ------------------------------------------------------
def test_a_stream_that_breaks_midway_ends_with_an_error_event_and_is_not_retried(
    router: Router, tmp_path: Path
) -> None:
    prompt = PROMPTS[1]
    chosen = router.route(prompt).llm
    with _upstream() as upstream:
        fake = {m: FakeBackend(m, text=TEXT) for m in router.llms}
        fake[chosen] = FakeBackend(chosen, text=TEXT, fail="mid_stream", latency_s=SLOW_S)
        real = {m: FakeBackend(m, text=TEXT) for m in router.llms}
        real[chosen] = _backend(chosen, "midstream", upstream, latency_s=0.0)
        outcomes = []
        for i, backends in enumerate((fake, real)):
            app, store = _app(router, tmp_path / str(i), backends, max_attempts=4)
            with running(app) as base:
                root = base.removesuffix("/v1")
                ask = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
                broken = _post(base, {**ask, "stream": True})
                metrics = httpx.get(f"{root}/metrics", timeout=REQUEST_TIMEOUT_S).text
                others = sum(b.calls for m, b in backends.items() if m != chosen)
                # without streaming the same failure is a lost connection: next LLM
                whole = _post(base, {**ask, "stream": False})
                metrics_after = httpx.get(f"{root}/metrics", timeout=REQUEST_TIMEOUT_S).text
            store.close()
            outcomes.append((broken, metrics, others, whole, metrics_after))
        hits = upstream.hits["midstream"]

    first_deltas = [_chunks(TEXT)[0], "Half an "]
    for (broken, metrics, others, whole, metrics_after), first in zip(
        outcomes, first_deltas, strict=True
    ):
        assert broken["status"] == 200 and broken["llm"] == chosen
        assert broken["deltas"] == [first] and not broken["done"]
        assert len(broken["stream_errors"]) == 1
        error = broken["stream_errors"][0]
        assert error["code"] == 502 and error["type"] == "upstream_error"
        assert "mid" in error["message"] or "connection failed" in error["message"]
        assert others == 0  # not retried on another LLM
        assert _metric(metrics, "mixllm_fallbacks_total", chosen) == 0
        assert _metric(metrics, "mixllm_in_flight", chosen) == 0
        assert whole["status"] == 200 and whole["llm"] != chosen and whole["text"] == TEXT
        assert whole["mixllm"]["attempts"][0]["llm"] == chosen
        assert _metric(metrics_after, "mixllm_fallbacks_total", chosen) == 1
    assert fake[chosen].calls == 2 and hits == 2  # one stream, one whole answer each


# -- nobody answers: a clear 503, in time ------------------------------------------------------
def test_all_llms_failing_slowly_is_a_503_within_the_deadline(
    router: Router, tmp_path: Path
) -> None:
    deadline_s, margin_s = 1.0, 1.0  # the margin: HTTP, routing, a busy machine
    kinds = ("500", "timeout", "hang", "connection")
    latencies = (0.3, 0.4, 0.0, 0.2)  # and "hang" would wait 30 s: far past the deadline
    with _upstream() as upstream:
        backends = {
            m: _backend(m, kind, upstream, latency_s=s, timeout_s=30.0)
            for m, kind, s in zip(router.llms, kinds, latencies, strict=True)
        }
        app, store = _app(router, tmp_path, backends, max_attempts=4, deadline_s=deadline_s,
                          breaker_failures=50)  # fmt: skip
        with running(app) as base:
            root = base.removesuffix("/v1")
            started = time.perf_counter()
            replies = [_post(base, _ask(0, stream=False)), _post(base, _ask(1, stream=True))]
            replies += _burst(base, [_ask(i, stream=i % 2 == 0) for i in range(6)], concurrency=6)
            total_s = time.perf_counter() - started
            metrics = httpx.get(f"{root}/metrics", timeout=REQUEST_TIMEOUT_S).text
        store.close()

    assert len(replies) == 8
    for r in replies:
        assert r["status"] == 503, r
        assert r["seconds"] <= deadline_s + margin_s, r
        error = r["error"]
        assert error["type"] == "no_healthy_backend" and error["code"] == 503
        assert error["message"].startswith("no LLM answered; ")
        for llm in router.llms:  # each one: its attempt's error, or why it was not tried
            assert llm in error["message"], (llm, error["message"])
        assert (
            "no answer within the deadline" in error["message"]
            or "not tried (attempt limit or deadline)" in error["message"]
        )
    assert total_s <= 3 * (deadline_s + margin_s)  # 2 one by one, then 6 at once
    for llm in router.llms:
        assert _metric(metrics, "mixllm_in_flight", llm) == 0, llm
        assert _metric(metrics, "mixllm_answers_total", llm) == 0


def test_all_circuits_open_is_an_immediate_503_that_names_them(
    router: Router, tmp_path: Path
) -> None:
    backends = {m: FakeBackend(m, text=TEXT, fail="500") for m in router.llms}
    app, store = _app(router, tmp_path, backends, max_attempts=4, breaker_failures=1,
                      breaker_reset_s=120.0)  # fmt: skip
    with running(app) as base:
        root = base.removesuffix("/v1")
        tried = _post(base, _ask(0, stream=False))
        calls = sum(b.calls for b in backends.values())
        health = httpx.get(f"{root}/healthz", timeout=REQUEST_TIMEOUT_S).json()
        skipped = [_post(base, _ask(i, stream=i % 2 == 0)) for i in range(4)]
    store.close()
    assert tried["status"] == 503 and calls == 4
    for llm in router.llms:
        assert f"{llm}: fake upstream for {llm!r} returned HTTP 500" in tried["error"]["message"]
    assert health["circuits"] == dict.fromkeys(router.llms, "open")
    assert sum(b.calls for b in backends.values()) == 4  # nothing called while all are open
    for r in skipped:
        assert r["status"] == 503 and r["seconds"] < 1.0
        assert "skipped (circuit open)" in r["error"]["message"]
        assert all(llm in r["error"]["message"] for llm in router.llms)
