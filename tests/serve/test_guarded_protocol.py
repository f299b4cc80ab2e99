"""The guarded uvicorn protocol on a real socket: a tiny Starlette app on 127.0.0.1 with small
limits, talked to with raw sockets (connection cap, eviction of the least recently active
idle connection, 503 when all are busy, header timeout, limits from the open-file limit)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mixllm.errors import ConfigError
from mixllm.serve.guard import (
    ConnectionGuard,
    accept_backlog,
    default_max_connections,
    guarded_protocol,
)
from mixllm.serve.run import serve_in_thread

WAIT_S = 5.0  # every wait on the server below is bounded by this


WAIT_S = 5.0  # every wait on the server below is bounded by this


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
