"""The gateway's :class:`RequestGuard` against slow and abusive clients, driven in-process
through ASGI calls: 413 for a body over the limit, 408 when a body stops arriving, 503 over
the in-flight cap, and its place released by streams, cancellations and app errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mixllm.errors import ConfigError
from mixllm.serve.guard import (
    RequestGuard,
)

WAIT_S = 5.0  # every wait on the server below is bounded by this


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
