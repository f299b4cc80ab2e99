"""Faults end to end: with the upstreams failing (500s, 429s, timeouts, dropped connections,
slowness), every request is answered while one LLM is healthy; when none is, a clear 503 within
the deadline. A real uvicorn on 127.0.0.1, FakeBackends, and OpenAIBackends pointed at a socket
server that misbehaves on purpose (or at a port where nothing listens)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm import Router
from mixllm.clock import ManualClock
from mixllm.serve import Backend, FakeBackend, OpenAIBackend, Settings, Store, create_app
from mixllm.serve.chat import _chunks

from .conftest import free_port, running

TEXT = "The healthy upstream answers every request, however badly the others fail today."
PROMPTS = [f"question {i} about {('cats', 'tax law', 'rust', 'poems')[i % 4]}" for i in range(20)]
SLOW_S = 0.1  # how long the failing fakes take to fail
UPSTREAM_TIMEOUT_S = 0.3  # OpenAIBackend's timeout against the upstream that never answers
REQUEST_TIMEOUT_S = 20.0  # the test client's own bound on every request
# how each kind of failure shows in an attempt's error
ERRORS = {
    "500": "HTTP 500",
    "429": "HTTP 429",
    "timeout": "timed out",
    "connection": "connection failed",
    "empty": "no answer",
    "hang": "timed out",
    "drop": "connection failed (RemoteProtocolError)",
    "reset": "connection failed",
    "refused": "connection failed (ConnectError)",
    "midstream": "connection failed",
}


# -- an upstream that misbehaves for real -----------------------------------------------------
class _Upstream(socketserver.ThreadingTCPServer):
    """Raw sockets; the first path segment says how to fail: ``drop`` (hang up without a
    word), ``reset`` (TCP RST), ``hang`` (never answer), ``midstream`` (one SSE event of a
    chunked 200, then hang up)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 would make concurrent connects time out

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def base_url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/v1"


class _Handler(socketserver.BaseRequestHandler):
    server: _Upstream
    request: socket.socket

    def handle(self) -> None:
        sock = self.request
        sock.settimeout(5.0)
        try:
            mode = _read_request(sock).strip("/").split("/")[0]
        except OSError:
            return
        with self.server.lock:
            self.server.hits[mode] += 1
        if mode == "hang":
            self.server.stop.wait(10.0)
        elif mode == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        elif mode == "midstream":
            delta = {"index": 0, "delta": {"content": "Half an "}, "finish_reason": None}
            event = f"data: {json.dumps({'choices': [delta]})}\n\n".encode()
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            head += b"transfer-encoding: chunked\r\n\r\n"
            sock.sendall(head + f"{len(event):x}\r\n".encode() + event + b"\r\n")
            time.sleep(0.05)  # then hang up in the middle of the answer
        # "drop" and anything else: hang up without answering


def _read_request(sock: socket.socket) -> str:
    """Read one HTTP request (head and body); its path."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            raise ConnectionError("the client hung up")
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        got = sock.recv(65536)
        if not got:
            raise ConnectionError("the client hung up")
        body += got
    return head.split(b" ", 2)[1].decode()


@contextmanager
def _upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- helpers -----------------------------------------------------------------------------------
def _backend(
    llm: str, kind: str | None, upstream: _Upstream, *, latency_s: float,
    timeout_s: float = UPSTREAM_TIMEOUT_S,
) -> Backend:  # fmt: skip
    """A backend for ``llm`` that fails with ``kind`` (``None``: healthy): a FakeBackend that
    takes ``latency_s`` to fail, or an OpenAIBackend (timeout ``timeout_s``) for real sockets."""
    # Only a hanging upstream needs the short timeout; the others fail at once, and a long
    # timeout keeps a busy machine's stall from turning their failure into a timeout.
    timeout = timeout_s if kind == "hang" else max(timeout_s, 10.0)
    if kind in ("drop", "reset", "hang", "midstream"):
        url = upstream.base_url(kind)
        return OpenAIBackend(llm, base_url=url, model="m", timeout_s=timeout)
    if kind == "refused":  # nothing listens there
        url = f"http://127.0.0.1:{free_port()}/v1"
        return OpenAIBackend(llm, base_url=url, model="m", timeout_s=timeout)
    return FakeBackend(llm, text=TEXT, fail=kind, latency_s=latency_s)


def _calls(backend: Backend, upstream: _Upstream) -> int | None:
    """How many calls reached ``backend`` (``None``: not countable, e.g. a refused port)."""
    if isinstance(backend, FakeBackend):
        return backend.calls
    mode = backend.base_url.rstrip("/").split("/")[-2]
    return upstream.hits[mode] if mode in ("drop", "reset", "hang", "midstream") else None


def _order(decision: Any) -> list[str]:
    """The LLMs of a decision by score, best first (the gateway's fallback order)."""
    return sorted(decision.scores, key=lambda m: (-decision.scores[m], m))


def _ask(i: int, *, stream: bool) -> dict[str, Any]:
    prompt = PROMPTS[i % len(PROMPTS)]
    return {"model": "mixllm", "messages": [{"role": "user", "content": prompt}], "stream": stream}


def _outcome(reply: httpx.Response, seconds: float) -> dict[str, Any]:
    """What a chat reply says: status, who answered, attempts, text, how a stream ended."""
    out: dict[str, Any] = {"status": reply.status_code, "seconds": seconds}
    out["llm"] = reply.headers.get("x-mixllm-llm")
    out["fallbacks"] = reply.headers.get("x-mixllm-fallbacks")
    if reply.status_code != 200:
        out["error"] = reply.json()["error"]
        return out
    if reply.headers["content-type"].startswith("text/event-stream"):
        payloads = [ln[5:].strip() for ln in reply.text.splitlines() if ln.startswith("data:")]
        events = [json.loads(p) for p in payloads if p != "[DONE]"]
        chunks = [e for e in events if "choices" in e]
        out["done"] = payloads[-1:] == ["[DONE]"]
        out["stream_errors"] = [e["error"] for e in events if "error" in e]
        out["deltas"] = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
        out["text"] = "".join(out["deltas"])
        out["mixllm"] = chunks[0]["mixllm"]
    else:
        body = reply.json()
        out["done"], out["stream_errors"] = True, []
        out["text"] = body["choices"][0]["message"]["content"]
        out["mixllm"] = body["mixllm"]
    return out


def _post(base: str, body: Mapping[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    reply = httpx.post(f"{base}/chat/completions", json=body, timeout=REQUEST_TIMEOUT_S)
    return _outcome(reply, time.perf_counter() - started)


def _burst(base: str, bodies: Sequence[Mapping[str, Any]], *, concurrency: int) -> list[Any]:
    """Send ``bodies`` with asyncio and one httpx.AsyncClient, ``concurrency`` at a time."""

    async def main() -> list[dict[str, Any]]:
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

            async def one(body: Mapping[str, Any]) -> dict[str, Any]:
                async with gate:
                    started = time.perf_counter()
                    reply = await client.post(f"{base}/chat/completions", json=body)
                    return _outcome(reply, time.perf_counter() - started)

            return await asyncio.wait_for(
                asyncio.gather(*(one(b) for b in bodies)), timeout=2 * REQUEST_TIMEOUT_S
            )

    return asyncio.run(main())


def _threads(base: str, bodies: Sequence[Mapping[str, Any]], *, workers: int) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_post, base, b) for b in bodies]
        return [f.result(timeout=2 * REQUEST_TIMEOUT_S) for f in futures]


def _metric(text: str, name: str, llm: str) -> float:
    """The value of ``name{llm="..."}`` in a Prometheus exposition (0 when absent)."""
    found = re.search(rf'^{re.escape(name)}\{{llm="{re.escape(llm)}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _app(
    router: Router, tmp_path: Path, backends: Mapping[str, Backend], **kwargs: Any
) -> tuple[Any, Store]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "gateway.db")
    clock = kwargs.pop("clock", None)
    router.predict(PROMPTS[:1])  # load the tokenizer now: the tests time requests, not that
    return create_app(router, backends, store, Settings(**kwargs), clock=clock), store


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
