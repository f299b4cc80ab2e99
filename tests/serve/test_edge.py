"""The gateway's edge against slow and abusive clients: :class:`RequestGuard` (413, 408, 503
over the in-flight cap), the guarded uvicorn protocol (connection cap, eviction, 503 when all
are busy, header timeout) and the rate-limited error log.

RequestGuard is driven in-process through ASGI calls; the protocol runs a tiny Starlette app on
127.0.0.1 with small limits and talks to it with raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mixllm.clock import ManualClock
from mixllm.errors import ConfigError
from mixllm.serve.guard import (
    ConnectionGuard,
    RequestGuard,
    accept_backlog,
    default_max_connections,
    guarded_protocol,
)
from mixllm.serve.logs import RateLimitedErrors, configure_logging
from mixllm.serve.run import serve_in_thread

WAIT_S = 5.0  # every wait on the server below is bounded by this


# -- RequestGuard, in-process ----------------------------------------------------------------
class Client:
    """One ASGI request: feeds ``receive`` from a queue, records what is sent."""

    def __init__(self, method: str = "POST", path: str = "/v1/chat/completions",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
        self.scope: dict[str, Any] = {
            "type": "http", "method": method, "path": path, "headers": headers or [],
        }  # fmt: skip
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    def body(self, data: bytes, more: bool = False) -> Client:
        self.incoming.put_nowait({"type": "http.request", "body": data, "more_body": more})
        return self

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def run(self, app: Any) -> None:
        await app(self.scope, self.receive, self.send)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


class EchoApp:
    """Answers 200 with the body it read; ``hold`` keeps it streaming until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        message = await receive()
        self.bodies.append(message)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/hold":
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            await self.release.wait()
        await send({"type": "http.response.body", "body": message["body"]})


def guard_for(app: Any, **kw: Any) -> RequestGuard:
    limits = {"max_body_bytes": 100, "body_timeout_s": 5.0, "max_in_flight": 4} | kw
    return RequestGuard(app, **limits)


def test_body_passes_through_whole_and_uncounted_after() -> None:
    async def main() -> None:
        app = EchoApp()
        guard = guard_for(app)
        client = Client().body(b"ab", more=True).body(b"cd", more=True).body(b"e")
        await client.run(guard)
        assert client.status == 200 and client.sent[-1]["body"] == b"abcde"
        assert app.bodies == [{"type": "http.request", "body": b"abcde", "more_body": False}]
        assert guard.in_flight == 0

    asyncio.run(main())


@pytest.mark.parametrize("declared", [b"101", b"10e9", b"-1"])
def test_413_for_a_declared_body_over_the_limit(declared: bytes) -> None:
    async def main() -> None:
        app = EchoApp()
        client = Client(headers=[(b"content-length", declared)])
        await client.run(guard_for(app))
        assert client.status == 413 and app.calls == 0
        assert client.headers[b"connection"] == b"close"
        error = client.json()["error"]
        assert error == {
            "message": "request body over 100 bytes", "type": "invalid_request_error", "code": 413,
        }  # fmt: skip

    asyncio.run(main())


def test_413_for_a_streamed_body_over_the_limit() -> None:
    async def main() -> None:
        app = EchoApp()
        guard = guard_for(app)
        client = Client().body(b"x" * 60, more=True).body(b"x" * 41, more=True)
        await client.run(guard)
        assert client.status == 413 and app.calls == 0 and guard.in_flight == 0
        assert "100 bytes" in client.json()["error"]["message"]
        exact = Client().body(b"x" * 60, more=True).body(b"x" * 40)  # at the limit: fine
        await exact.run(guard)
        assert exact.status == 200 and exact.sent[-1]["body"] == b"x" * 100

    asyncio.run(main())


def test_408_when_the_body_stops_arriving() -> None:
    async def main() -> None:
        app = EchoApp()
        guard = guard_for(app, body_timeout_s=0.05)
        client = Client().body(b"abc", more=True)  # and nothing more
        await asyncio.wait_for(client.run(guard), WAIT_S)
        assert client.status == 408 and app.calls == 0 and guard.in_flight == 0
        assert client.headers[b"connection"] == b"close"
        error = client.json()["error"]
        assert error["type"] == "timeout" and error["code"] == 408
        assert "body_timeout_s" in error["message"] and "after 3 bytes" in error["message"]

    asyncio.run(main())


def test_the_body_timeout_is_per_piece_not_for_the_whole_body() -> None:
    async def main() -> None:
        app = EchoApp()
        guard = guard_for(app, body_timeout_s=0.2)
        client = Client()

        async def trickle() -> None:  # 6 pieces 0.05 s apart: 0.3 s in all, > the timeout
            for i in range(6):
                await asyncio.sleep(0.05)
                client.body(b"x", more=i < 5)

        await asyncio.wait_for(asyncio.gather(client.run(guard), trickle()), WAIT_S)
        assert client.status == 200 and client.sent[-1]["body"] == b"x" * 6

    asyncio.run(main())


def test_a_client_that_leaves_during_the_body_never_reaches_the_app() -> None:
    async def main() -> None:
        app = EchoApp()
        guard = guard_for(app)
        client = Client().body(b"abc", more=True)
        client.incoming.put_nowait({"type": "http.disconnect"})
        await client.run(guard)
        assert app.calls == 0 and guard.in_flight == 0
        assert client.status == 400  # for the logs; uvicorn drops it
        assert client.json()["error"]["message"].startswith("the client left after 3 bytes")

    asyncio.run(main())


async def _passthrough(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers["x-outer"] = "seen"
    return response


def _stack(guard_kw: dict[str, Any]) -> Starlette:
    """RequestGuard inside a ``@app.middleware("http")`` one, as in the gateway's app."""

    async def echo(request: Request) -> Response:
        return PlainTextResponse(await request.body())

    return Starlette(
        routes=[Route("/echo", echo, methods=["POST"])],
        middleware=[
            Middleware(BaseHTTPMiddleware, dispatch=_passthrough),
            Middleware(RequestGuard, **({"max_body_bytes": 100, "body_timeout_s": 5.0,
                                         "max_in_flight": 4} | guard_kw)),
        ],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("pieces", "status"),
    [
        ([(b"x" * 50, True), (b"y" * 50, False)], 200),
        ([(b"x" * 60, True), (b"y" * 41, False)], 413),
        ([(b"x" * 10, True), None], 408),
        ([(b"x" * 10, True), "disconnect"], 400),
    ],
)
def test_request_guard_inside_starlette_middleware(pieces: list[Any], status: int) -> None:
    async def main() -> None:
        app = _stack({"body_timeout_s": 0.05})
        client = Client(path="/echo")
        client.scope |= {"query_string": b"", "root_path": "", "scheme": "http",
                         "server": ("127.0.0.1", 80), "http_version": "1.1"}  # fmt: skip
        for piece in pieces:
            if piece == "disconnect":
                client.incoming.put_nowait({"type": "http.disconnect"})
            elif piece is not None:
                client.body(*piece)
        await asyncio.wait_for(client.run(app), WAIT_S)
        assert client.status == status and client.headers[b"x-outer"] == b"seen"
        if status == 200:
            assert b"".join(m.get("body", b"") for m in client.sent[1:]) == b"x" * 50 + b"y" * 50

    asyncio.run(main())


def test_503_over_max_in_flight_released_by_streams_and_cancellation() -> None:
    async def main() -> None:
        app = EchoApp()
        guard = guard_for(app, max_in_flight=2)
        held = [Client(path="/hold").body(b"a"), Client(path="/hold").body(b"b")]
        tasks = [asyncio.create_task(c.run(guard)) for c in held]
        for _ in range(100):  # both streams started, bounded
            if all(len(c.sent) == 2 for c in held):
                break
            await asyncio.sleep(0.01)
        assert guard.in_flight == 2

        over = Client().body(b"c")
        await over.run(guard)
        assert over.status == 503 and over.headers[b"retry-after"] == b"1"
        assert over.json()["error"]["type"] == "overloaded"
        assert "max_in_flight" in over.json()["error"]["message"]
        probe = Client(method="GET", path="/healthz").body(b"")
        await probe.run(guard)  # probes are not counted
        assert probe.status == 200 and guard.in_flight == 2

        tasks[0].cancel()  # a cancelled request gives its place back
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        assert guard.in_flight == 1
        app.release.set()  # the other stream sends its last body message
        await asyncio.wait_for(tasks[1], WAIT_S)
        assert held[1].sent[-1]["body"] == b"b" and guard.in_flight == 0

        after = Client().body(b"d")
        await after.run(guard)
        assert after.status == 200 and guard.in_flight == 0

    asyncio.run(main())


def test_an_app_error_releases_its_place() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("boom")

    async def main() -> None:
        guard = guard_for(broken, max_in_flight=1)
        with pytest.raises(RuntimeError, match="boom"):
            await Client().body(b"x").run(guard)
        assert guard.in_flight == 0

    asyncio.run(main())


def test_request_guard_rejects_bad_limits() -> None:
    with pytest.raises(ConfigError, match=r"max_in_flight=0; expected an integer >= 1"):
        guard_for(EchoApp(), max_in_flight=0)
    with pytest.raises(ConfigError, match=r"body_timeout_s=-1; expected a number"):
        guard_for(EchoApp(), body_timeout_s=-1)
    with pytest.raises(ConfigError, match=r"max_body_bytes=1.5; expected an integer"):
        guard_for(EchoApp(), max_body_bytes=1.5)


# -- the error log's rate limit --------------------------------------------------------------
class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


def test_rate_limited_errors_per_template_and_window() -> None:
    clock = ManualClock()
    out = Collect()
    limit = RateLimitedErrors(2, clock=clock)
    limit.install(out)
    log = _logger("test.edge.flood", out)
    other = _logger("test.edge.other", out)
    try:
        for i in range(5):
            log.error("accept failed: %d", i)
            log.info("fine %d", i)  # below WARNING: never limited
        other.error("accept failed: %d", 9)  # another logger: its own count
        log.error("socket.accept() out of system resource\nsocket: <fd=%d>", 6)
        log.error("socket.accept() out of system resource\nsocket: <fd=%d>", 7)
        log.error("socket.accept() out of system resource\nsocket: <other %d>", 8)
        assert limit.suppressed == 4
        errors = [line for line in out.lines if " ERROR " in line]
        assert errors == [
            "test.edge.flood ERROR accept failed: 0",
            "test.edge.flood ERROR accept failed: 1",
            "test.edge.other ERROR accept failed: 9",
            "test.edge.flood ERROR socket.accept() out of system resource\nsocket: <fd=6>",
            "test.edge.flood ERROR socket.accept() out of system resource\nsocket: <fd=7>",
        ]
        assert sum(" INFO " in line for line in out.lines) == 5
        out.lines.clear()
        clock.advance(59.0)
        log.error("accept failed: %d", 5)  # same window: still dropped
        assert out.lines == [] and limit.suppressed == 5
        clock.advance(1.0)
        log.error("accept failed: %d", 6)  # a new window: the summaries, then the record
        assert out.lines == [
            "test.edge.flood WARNING suppressed 4 similar messages: accept failed: %d",
            "test.edge.flood WARNING suppressed 1 similar messages: "
            "socket.accept() out of system resource",
            "test.edge.flood ERROR accept failed: 6",
        ]
    finally:
        for name in ("test.edge.flood", "test.edge.other"):
            logging.getLogger(name).handlers = []


def test_rate_limited_summary_comes_with_the_next_record_of_any_level() -> None:
    clock = ManualClock()
    out = Collect()
    RateLimitedErrors(1, clock=clock).install(out)
    log = _logger("test.edge.quiet", out)
    try:
        log.warning("slow client")
        log.warning("slow client")
        clock.advance(61.0)
        log.info("next")
        assert out.lines == [
            "test.edge.quiet WARNING slow client",
            "test.edge.quiet WARNING suppressed 1 similar messages: slow client",
            "test.edge.quiet INFO next",
        ]
    finally:
        logging.getLogger("test.edge.quiet").handlers = []


def test_rate_limit_rejects_a_bad_rate() -> None:
    with pytest.raises(ConfigError, match=r"errors per minute=0; expected an integer >= 1"):
        RateLimitedErrors(0)


_LOGGERS = ("", "mixllm", "mixllm.serve.access", "uvicorn", "uvicorn.error", "uvicorn.access",
            "httpx", "httpcore")  # fmt: skip


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = {}
    for name in _LOGGERS:
        log = logging.getLogger(name)
        saved[name] = (list(log.handlers), log.level, log.propagate)
    yield
    for name, (handlers, level, propagate) in saved.items():
        log = logging.getLogger(name)
        for h in log.handlers:
            if h not in handlers:
                h.close()
        log.handlers, log.level, log.propagate = handlers, level, propagate


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_writes_the_access_log_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text('{"earlier": true}\n')
    configure_logging("warning", access_log=path, errors_per_minute=3)
    configure_logging("warning", access_log=path, errors_per_minute=3)
    root, access = logging.getLogger(), logging.getLogger("mixllm.serve.access")
    ours = [h for h in root.handlers if getattr(h, "_mixllm_serve_handler", False)]
    assert len(ours) == 1 and len(access.handlers) == 1 and not access.propagate
    assert root.level == logging.WARNING and logging.getLogger("mixllm").level == logging.WARNING
    assert (
        logging.getLogger("uvicorn.error").propagate and not logging.getLogger("uvicorn").handlers
    )
    line = json.dumps({"method": "POST", "status": 200})
    access.info(line)  # written even though the level is warning
    assert path.read_text() == '{"earlier": true}\n' + line + "\n"
    limit = [f for f in ours[0].filters if isinstance(f, RateLimitedErrors)]
    assert len(limit) == 1 and limit[0].per_minute == 3


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"log level 'nonsense'; expected one of debug, info"):
        configure_logging("nonsense")
    with pytest.raises(ConfigError, match=r"access log .*missing.* cannot be opened"):
        configure_logging("info", access_log=tmp_path / "missing" / "access.log")


# -- the guarded protocol on a real socket ---------------------------------------------------
class HoldApp:
    """``/`` answers at once; ``/hold`` answers once ``release`` is set (5 s at most)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = 0
        self.app = Starlette(routes=[Route("/", self.ok), Route("/hold", self.hold)])

    async def ok(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def hold(self, request: Request) -> Response:
        self.entered += 1
        for _ in range(500):
            if self.release.is_set():
                break
            await asyncio.sleep(0.01)
        return PlainTextResponse("held")


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1].split("/")[0])


def _connect(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(data)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (bounded by WAIT_S per read and 100 reads)."""
    sock.settimeout(WAIT_S)
    chunks = []
    for _ in range(100):
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    raise AssertionError("the server did not close the connection")


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(WAIT_S)


def _wait(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


PARTIAL = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
HOLD = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_new_connection_closes_the_least_recently_active_idle_one() -> None:
    guard = ConnectionGuard(max_connections=3, header_timeout_s=30.0)
    hold = HoldApp()
    with serve_in_thread(hold.app, protocol=guarded_protocol(guard)) as base:
        port = _port(base)
        with httpx.Client(timeout=WAIT_S) as keep_alive:
            assert keep_alive.get(f"http://127.0.0.1:{port}/").text == "ok"  # conn 1, idle
            slow = [_connect(port, PARTIAL) for _ in range(2)]  # conns 2, 3: headers unsent
            try:
                _wait(lambda: guard.open_connections == 3)
                assert keep_alive.get(f"http://127.0.0.1:{port}/").text == "ok"  # 1 active again
                assert httpx.get(f"http://127.0.0.1:{port}/", timeout=WAIT_S).text == "ok"
                assert guard.evicted == 1 and guard.refused == 0
                assert _read_all(slow[0]) == b""  # the least recently active: closed silently
                assert _still_open(slow[1])
                assert keep_alive.get(f"http://127.0.0.1:{port}/").text == "ok"
            finally:
                for sock in slow:
                    sock.close()


def test_503_at_once_when_every_connection_is_busy() -> None:
    guard = ConnectionGuard(max_connections=2, header_timeout_s=30.0)
    hold = HoldApp()
    with serve_in_thread(hold.app, protocol=guarded_protocol(guard)) as base:
        port = _port(base)
        busy = [_connect(port, HOLD) for _ in range(2)]
        try:
            _wait(lambda: hold.entered == 2)
            with _connect(port, b"") as refused:
                answer = _read_all(refused)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"retry-after: 1" in head and b"connection: close" in head
            error = json.loads(body)["error"]
            assert error["type"] == "overloaded" and error["code"] == 503
            assert "max_connections" in error["message"]
            assert guard.refused == 1 and guard.evicted == 0
            hold.release.set()
            for sock in busy:  # the busy ones were left alone and are answered
                sock.settimeout(WAIT_S)
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in busy:
                sock.close()


def test_header_timeout_closes_tricklers_and_idle_ones_but_not_busy_ones() -> None:
    guard = ConnectionGuard(max_connections=10, header_timeout_s=0.3)
    hold = HoldApp()
    with serve_in_thread(hold.app, protocol=guarded_protocol(guard), keep_alive_s=30) as base:
        port = _port(base)
        trickler = _connect(port, b"G")
        closed = False
        try:
            for byte in b"ET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100:  # 0.05 s a byte
                time.sleep(0.05)
                try:
                    trickler.sendall(bytes([byte]))
                except OSError:  # reset by the server
                    closed = True
                    break
                if not _still_open(trickler):
                    closed = True
                    break
            assert closed, "a connection trickling its headers was never closed"
        finally:
            trickler.close()
        with _connect(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") as idle:
            answer = _read_all(idle)  # closed after its response, long before keep-alive (30 s)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nok")
        with _connect(port, HOLD) as busy:  # a request in progress is not cut
            time.sleep(0.6)
            hold.release.set()
            busy.settimeout(WAIT_S)
            assert busy.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert guard.timed_out == 2


def test_limits_from_the_open_file_limit() -> None:
    assert default_max_connections(1024) == 480
    assert default_max_connections(100) == 18 and default_max_connections(10) == 8
    assert default_max_connections(1_000_000) == 10_000
    assert accept_backlog(480, 1024) == 120  # 480 + 120 accepted at once stays under 1024
    assert accept_backlog(10_000, 1_000_000) == 2048 and accept_backlog(2000, 1024) == 16
    with pytest.raises(ConfigError, match=r"max_connections=0; expected an integer >= 1"):
        ConnectionGuard(max_connections=0, header_timeout_s=1.0)
    with pytest.raises(ConfigError, match=r"header_timeout_s=0; expected a number of seconds"):
        ConnectionGuard(max_connections=1, header_timeout_s=0)
