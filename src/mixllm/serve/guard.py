"""The gateway's defences against slow and abusive clients.

- :func:`guarded_protocol`: uvicorn's h11 protocol with a cap on open connections (the oldest
  idle one is closed to make room; with every one busy, a new one gets a raw 503 at once) and a
  header timeout (a connection that starts no request in time is closed, even if it trickles
  bytes).
- :class:`RequestGuard`: ASGI middleware answering 413 for a body over the limit, 408 for a body
  that stops arriving, and 503 with ``Retry-After`` when too many requests are in flight.
- :func:`serve_guarded`: what ``mixllm serve`` runs; the connection cap defaults to a share of
  the process's open-file limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import weakref
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixllm.errors import ConfigError
from mixllm.serve.errors import error_json, error_response
from mixllm.serve.settings import Settings

__all__ = [
    "ConnectionGuard",
    "RequestGuard",
    "accept_backlog",
    "default_max_connections",
    "guarded_protocol",
    "serve_guarded",
]

logger = logging.getLogger(__name__)

RESERVED_FILES = 64  # open files kept for the store, checkpoints, logs and the like
MAX_CONNECTIONS_CAP = 10_000


# -- connections -----------------------------------------------------------------------------
@dataclass
class ConnectionGuard:
    """The connection limits of a server, and counts of what enforcing them did.

    ``max_connections`` open connections at most; a connection that starts no request within
    ``header_timeout_s`` of connecting or of its last response is closed.
    """

    max_connections: int
    header_timeout_s: float
    evicted: int = 0  # idle connections closed to make room for a new one
    refused: int = 0  # new connections answered 503 because every open one was busy
    timed_out: int = 0  # connections closed by the header timeout
    _open: weakref.WeakKeyDictionary[Any, dict[Any, None]] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )

    def __post_init__(self) -> None:
        n = self.max_connections
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"max_connections={n!r}; expected an integer >= 1")
        t = self.header_timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < float("inf"):
            raise ConfigError(f"header_timeout_s={t!r}; expected a number of seconds > 0")

    def registry(self, server_state: Any) -> dict[Any, None]:
        """The open connections of one server, least recently active first."""
        found = self._open.get(server_state)
        if found is None:
            found = self._open[server_state] = {}
        return found

    @property
    def open_connections(self) -> int:
        """Connections open now, over every server using this guard."""
        return sum(len(r) for r in list(self._open.values()))


def guarded_protocol(guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class (``uvicorn.Config(http=...)``) enforcing ``guard``.

    Connections are kept per server in order of last activity (connecting or completing a
    response). When a new one would pass ``max_connections``, the least recently active one
    with no request in progress (idle keep-alive, or still sending its headers) is closed; if
    every one is busy, the new connection is answered ``503`` with ``Retry-After: 1`` and
    closed. Nothing is added to the reading of requests: the header timeout is one timer per
    connection, re-armed lazily.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    limit, timeout = guard.max_connections, guard.header_timeout_s
    overloaded = _raw_503(
        f"the gateway has {limit} connections open, all busy (max_connections); retry shortly"
    )

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._open = guard.registry(self.server_state)
            self._idle_since = 0.0
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self._open) >= limit and not self._make_room():
                guard.refused += 1
                logger.warning("refused a connection: all %d connections are busy", limit)
                transport.write(overloaded)
                transport.close()
                return
            self._open[self] = None
            self._idle_since = now = self.loop.time()
            self._header_timer = self.loop.call_at(now + timeout, self._header_deadline)

        def _make_room(self) -> bool:
            for other in self._open:
                cycle = other.cycle
                if cycle is None or cycle.response_complete:
                    break
            else:
                return False
            del self._open[other]
            other.transport.close()
            guard.evicted += 1
            logger.warning("closed an idle connection to make room (max_connections=%d)", limit)
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            self._open.pop(self, None)
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            self._idle_since = self.loop.time()
            if self._open.pop(self, 0) is None:  # still registered: now the most recent
                self._open[self] = None
            super().on_response_complete()

        def _header_deadline(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            now = self.loop.time()
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                due = now + timeout  # a request in progress: look again later
            else:
                due = self._idle_since + timeout
                if due <= now:
                    guard.timed_out += 1
                    logger.debug("closed a connection that sent no request in %g s", timeout)
                    self.transport.close()
                    return
            self._header_timer = self.loop.call_at(due, self._header_deadline)

    return GuardedH11Protocol


def _raw_503(message: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "overloaded", "code": 503}}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def default_max_connections(soft_limit: int | None = None) -> int:
    """The connection cap for an open-file limit (the process's soft ``RLIMIT_NOFILE`` by
    default): half of what is left after :data:`RESERVED_FILES`, the other half kept for
    upstream connections; between 8 and :data:`MAX_CONNECTIONS_CAP`."""
    soft = _soft_file_limit() if soft_limit is None else soft_limit
    return max(8, min(MAX_CONNECTIONS_CAP, (soft - RESERVED_FILES) // 2))


def accept_backlog(max_connections: int, soft_limit: int | None = None) -> int:
    """The listen backlog, which is also how many connections asyncio accepts in one go before
    any of them can close an idle one: a quarter of the files left beside the connections, so a
    burst of new connections cannot run the process out of files (16 to 2048)."""
    soft = _soft_file_limit() if soft_limit is None else soft_limit
    return max(16, min(2048, (soft - max_connections - RESERVED_FILES) // 4))


def _soft_file_limit() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 1024
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return 4 * MAX_CONNECTIONS_CAP
    return int(soft)


def serve_guarded(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Settings | None = None,
    log_level: str = "info",
) -> ConnectionGuard:
    """Run ``app`` with uvicorn and the guarded protocol until interrupted (SIGINT/SIGTERM drain
    requests for up to 30 s); returns the guard with its counts. Logging is left as configured
    (:func:`mixllm.serve.logs.configure_logging`); uvicorn's own access log is off."""
    import uvicorn

    settings = settings if settings is not None else Settings()
    soft = _soft_file_limit()
    limit = settings.max_connections or default_max_connections(soft)
    if limit > soft - RESERVED_FILES:
        logger.warning(
            "max_connections=%d is near or over the open-file limit %d: expect failed accepts",
            limit, soft,
        )  # fmt: skip
    guard = ConnectionGuard(limit, settings.header_timeout_s)
    backlog = accept_backlog(limit, soft)
    config = uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(guard), timeout_keep_alive=5,
        timeout_graceful_shutdown=30, log_config=None, log_level=log_level, access_log=False,
        backlog=backlog,
    )  # fmt: skip
    logger.info(
        "up to %d connections (open-file limit %d, backlog %d), header timeout %g s",
        limit, soft, backlog, settings.header_timeout_s,
    )  # fmt: skip

    class GuardedServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            # here, not after run(): on SIGTERM uvicorn re-raises the signal when run() ends
            logger.info(
                "connections: %d idle ones closed to make room, %d refused (all busy), "
                "%d closed by the header timeout",
                guard.evicted, guard.refused, guard.timed_out,
            )  # fmt: skip

    GuardedServer(config).run()
    return guard


# -- requests --------------------------------------------------------------------------------
class RequestGuard:
    """ASGI middleware: the request body is read here, in full, before the app runs.

    - ``413`` for a body over ``max_body_bytes`` (declared by ``Content-Length`` or streamed);
    - ``408`` when no piece of the body arrives within ``body_timeout_s``;
    - ``503`` with ``Retry-After: 1`` when ``max_in_flight`` requests are already being handled
      (``GET /healthz`` is not counted, so probes still reach the process). A request counts
      from the end of its body until its response's last body message is sent, or until it
      ends however else (error, cancellation, disconnect).
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, body_timeout_s: float, max_in_flight: int
    ) -> None:
        for name, value in (("max_body_bytes", max_body_bytes), ("max_in_flight", max_in_flight)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}; expected an integer >= 1")
        t = body_timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < float("inf"):
            raise ConfigError(f"body_timeout_s={t!r}; expected a number of seconds > 0")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = float(body_timeout_s)
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # requests being handled now (not counting GET /healthz)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await _closing(error_response(_too_large(limit)))(scope, receive, send)
                    return
                break
        counted = not (scope["path"] == "/healthz" and scope["method"] == "GET")
        if counted and self.in_flight >= self.max_in_flight:
            await self._overloaded(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        if counted:
            if self.in_flight >= self.max_in_flight:
                await self._overloaded(scope, receive, send)
                return
            self.in_flight += 1
        pending = True

        async def replay() -> Message:
            nonlocal pending
            if pending:
                pending = False
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if not counted:
            await self.app(scope, replay, send)
            return
        done = False

        async def counted_send(message: Message) -> None:
            nonlocal done
            try:
                await send(message)
            finally:
                last = message["type"] == "http.response.body" and not message.get("more_body")
                if last and not done:
                    done = True
                    self.in_flight -= 1

        try:
            await self.app(scope, replay, counted_send)
        finally:
            if not done:
                done = True
                self.in_flight -= 1

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or ``None`` when an error was answered instead (400 when the client
        left: never sent, but an app outside, such as Starlette's ``BaseHTTPMiddleware``,
        fails on a request that ends without a response)."""
        parts: list[bytes] = []
        seen = 0
        limit = self.max_body_bytes
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.body_timeout_s) as deadline:
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        break  # http.disconnect
                    chunk = message.get("body", b"")
                    seen += len(chunk)
                    if seen > limit:
                        break
                    parts.append(chunk)
                    if not message.get("more_body", False):
                        return parts[0] if len(parts) == 1 else b"".join(parts)
                    deadline.reschedule(loop.time() + self.body_timeout_s)
        except TimeoutError:
            why = (
                f"no part of the request body arrived in {self.body_timeout_s:g} s "
                f"(body_timeout_s) after {seen} bytes; expected the rest of the body"
            )
            await _closing(error_json(408, "timeout", why))(scope, receive, send)
            return None
        if seen > limit:
            response = error_response(_too_large(limit))
        else:  # an answer nobody reads, but middleware outside expects one (and logs it)
            why = f"the client left after {seen} bytes of the request body"
            response = error_json(400, "invalid_request_error", why)
        await _closing(response)(scope, receive, send)
        return None

    async def _overloaded(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"the gateway is handling {self.max_in_flight} requests, its limit (max_in_flight); "
            "retry after 1 s"
        )
        response = error_json(503, "overloaded", message, retry_after_s=1.0)
        await response(scope, receive, send)


def _too_large(limit: int) -> StarletteHTTPException:
    return StarletteHTTPException(413, f"request body over {limit} bytes")


def _closing(response: JSONResponse) -> JSONResponse:
    """``response`` ending the connection: the rest of the body is not worth reading."""
    response.headers["connection"] = "close"
    return response
