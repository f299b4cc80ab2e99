"""In-process gateways for tests: fake OpenAI-compatible upstreams and the gateway itself
reached through httpx's ASGI transport (no socket, no thread), the app's lifespan run around
them. Tests that need a real socket (slow clients, timeouts, kill -9) use ``conftest.running``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai

from mixllm import Router
from mixllm.serve import OpenAIBackend, Settings, Store, create_app
from mixllm.serve.capabilities import Capabilities
from mixllm.serve.fake import fake_openai_upstream

T = TypeVar("T")


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async test body to its end."""
    return asyncio.run(work())


def upstream_backend(
    llm: str,
    *,
    text: str | None = None,
    capabilities: Capabilities | None = None,
    seen: list[dict[str, Any]] | None = None,
    **upstream: Any,
) -> OpenAIBackend:
    """An :class:`OpenAIBackend` whose upstream is :func:`fake_openai_upstream` in process."""
    answer = text if text is not None else f"answer from {llm}"
    app = fake_openai_upstream(lambda model, question: answer, seen=seen, **upstream)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return OpenAIBackend(
        llm, base_url="http://upstream.invalid/v1", model=f"up-{llm}", client=client,
        capabilities=capabilities,
    )  # fmt: skip


@asynccontextmanager
async def gateway(
    router: Router,
    backends: Mapping[str, Any],
    tmp_path: Path,
    settings: Settings | None = None,
    *,
    clock: Any = None,
    busy_timeout_s: float = 5.0,
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The gateway app (lifespan running) and an httpx client for it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "gateway.db", busy_timeout_s=busy_timeout_s)
    app = create_app(
        router, backends, store, settings or Settings(deadline_s=10.0),
        state_dir=tmp_path / "state", clock=clock,
    )  # fmt: skip
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway.test", timeout=30.0
            ) as client:
                yield app, client
    finally:
        for backend in backends.values():
            inner = getattr(backend, "_client", None)
            if inner is not None:
                await inner.aclose()
        store.close()


def openai_client(client: httpx.AsyncClient, api_key: str = "unused") -> openai.AsyncOpenAI:
    """The official async OpenAI client, talking to the in-process gateway."""
    return openai.AsyncOpenAI(
        base_url="http://gateway.test/v1", api_key=api_key, http_client=client, max_retries=0
    )


class _SyncASGITransport(httpx.BaseTransport):
    """A sync httpx transport onto an ASGI app: requests run on an event loop in a thread
    (what sync code, like the sync openai client, needs in process)."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = loop
        self._timeout_s = timeout_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def go() -> tuple[int, httpx.Headers, bytes]:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._inner.handle_async_request(forwarded)
            content = await response.aread()
            return response.status_code, response.headers, content

        future = asyncio.run_coroutine_threadsafe(go(), self._loop)
        status, headers, content = future.result(self._timeout_s)
        hop = ("content-length", "transfer-encoding")
        kept = [(k, v) for k, v in headers.multi_items() if k.lower() not in hop]
        return httpx.Response(status, headers=httpx.Headers(kept), content=content)


@contextmanager
def serving(app: Any, *, timeout_s: float = 30.0) -> Iterator[httpx.Client]:
    """A sync httpx client for ``app`` in process (base URL ``http://gateway.test``), with the
    app's lifespan run on an event loop in a background thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    lifespan = app.router.lifespan_context(app)
    try:
        asyncio.run_coroutine_threadsafe(lifespan.__aenter__(), loop).result(timeout_s)
        transport = _SyncASGITransport(app, loop, timeout_s)
        with httpx.Client(
            transport=transport, base_url="http://gateway.test", timeout=timeout_s
        ) as client:
            yield client
        asyncio.run_coroutine_threadsafe(lifespan.__aexit__(None, None, None), loop).result(
            timeout_s
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        loop.close()


def sync_openai(client: httpx.Client, api_key: str = "unused") -> openai.OpenAI:
    """The official sync OpenAI client on a :func:`serving` client."""
    return openai.OpenAI(
        base_url="http://gateway.test/v1", api_key=api_key, http_client=client, max_retries=0
    )
