"""What the fault tests share: an upstream that misbehaves on purpose (a socket server giving
500s, 429s, drops, hangs, resets or empty replies), backends pointed at it, and helpers that
send bursts of requests and read what came back."""

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

from mixllm import Router
from mixllm.serve import Backend, FakeBackend, OpenAIBackend, Settings, Store, create_app

from .conftest import free_port

__all__ = [
    "ERRORS",
    "PROMPTS",
    "REQUEST_TIMEOUT_S",
    "SLOW_S",
    "TEXT",
    "_app",
    "_ask",
    "_backend",
    "_burst",
    "_calls",
    "_metric",
    "_order",
    "_post",
    "_threads",
    "_upstream",
]


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
