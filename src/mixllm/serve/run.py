"""Build and run the gateway from a router folder, a config file and/or replay data (what
``mixllm serve`` calls)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mixllm.data import load_dataset
from mixllm.errors import ConfigError
from mixllm.serve.app import create_app
from mixllm.serve.backends import Backend, make_backend
from mixllm.serve.replay import RECORDED_JUDGE, RecordedJudge, ReplayBackend
from mixllm.serve.replicas import open_shared_state
from mixllm.serve.restore import open_state
from mixllm.serve.settings import Settings, load_settings
from mixllm.serve.store import store_target

__all__ = ["build_app", "default_state_dir", "serve", "serve_in_thread"]

logger = logging.getLogger(__name__)


def default_state_dir(router_dir: Path) -> Path:
    """``<router_dir>.state`` beside the router folder: the store and checkpoints."""
    return router_dir.with_name(router_dir.name + ".state")


def build_app(
    router_dir: str | Path,
    *,
    environ: Mapping[str, str],
    config: str | Path | None = None,
    replay: str | None = None,
    state_dir: str | Path | None = None,
    store: str | None = None,
    redis: str | None = None,
) -> FastAPI:
    """The gateway for the router in ``router_dir`` (or its newest good checkpoint in
    ``state_dir``, with the feedback stored after it: :func:`~mixllm.serve.restore.open_state`).

    ``store`` is where decisions, feedback, spend and checkpoints live: ``None`` or
    ``sqlite:///FILE`` for one machine (default ``state_dir/gateway.db``), or a
    ``postgresql://`` URL shared by replicas (:func:`~mixllm.serve.replicas.open_shared_state`:
    the checkpoints go into it, and ``state_dir`` is not used). ``redis`` (a ``redis://`` URL)
    shares in-flight counts, service times, breakers and rate limits between replicas.

    Backends come from the config's ``[[upstreams]]`` and, with ``replay``, from the recorded
    answers of that dataset for every router LLM it has (and, when ``[shadow] judge`` is
    ``"recorded-judge"``, a :class:`~mixllm.serve.replay.RecordedJudge` of it); at least one is
    needed.
    """
    router_path = Path(router_dir)
    if not (router_path / "manifest.json").is_file():
        raise ConfigError(
            f"{str(router_path)!r} is not a router folder; expected one written by 'mixllm fit'"
        )
    settings = Settings() if config is None else load_settings(config, environ=environ)
    state: Path | None = Path(state_dir) if state_dir is not None else None
    kind, where = ("sqlite", None) if store is None else store_target(store)
    retention = settings.decision_retention_s
    if kind == "postgresql":
        db, router = open_shared_state(router_path, str(where), retention_s=retention)
        state = None  # checkpoints go into the database
    else:
        if where == ":memory:":
            raise ConfigError(
                f"store {store!r}; expected sqlite:///FILE (a gateway keeps its state)"
            )
        state = state or default_state_dir(router_path)
        file = None if where is None else Path(where)
        db, router = open_state(router_path, state, retention_s=retention, store_file=file)
    link = None
    try:
        if redis is not None:
            from mixllm.serve._redis import RedisLink

            link = RedisLink(redis)
        backends: dict[str, Backend] = {}
        if replay is not None:
            data = load_dataset(replay)
            for llm in router.llms:
                if llm in data.llms:
                    backends[llm] = ReplayBackend(llm, data, embedder=router.embedder_)
            if settings.shadow.judge == RECORDED_JUDGE:  # grades shadow calls by the data
                backends[RECORDED_JUDGE] = RecordedJudge(data, template=_template(settings))
        for upstream in settings.upstreams:
            backend = make_backend(upstream, environ=environ)
            backends[backend.llm] = backend
        unknown = sorted(set(backends) - set(router.llms) - {settings.shadow.judge})
        if unknown:
            raise ConfigError(
                f"upstreams for LLMs the router does not know: {unknown}; "
                f"known: {sorted(router.llms)}"
            )
        if not backends:
            raise ConfigError("no backends: give --replay DATA or [[upstreams]] in --config")
        # load the tokenizer and embedder now, not in the first request (seconds, while
        # /healthz already says the gateway is up)
        router.predict(["warm up"])
    except BaseException:
        db.close()
        if link is not None:
            link.close()
        raise
    missing = sorted(set(router.llms) - set(backends))
    if missing:
        logger.warning("no backend for %s: the router will not choose them", missing)
    return create_app(router, backends, db, settings, state_dir=state, redis=link)


def _template(settings: Settings) -> str | None:
    """The shadow judge's template (``None``: the default one)."""
    path = settings.shadow.judge_template
    if path is None:
        return None
    from mixllm.grade import load_template

    return load_template(path)


def serve(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> None:
    """Run ``app`` until interrupted (SIGINT/SIGTERM drain requests, then the app checkpoints
    and closes), guarded against slow and abusive clients with the limits of the app's settings
    (see :func:`mixllm.serve.guard.serve_guarded`)."""
    from mixllm.serve.guard import serve_guarded

    gateway = getattr(app.state, "gateway", None)
    settings = getattr(gateway, "settings", None)
    serve_guarded(app, host=host, port=port, settings=settings, log_level=log_level)


@contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 30.0,
    keep_alive_s: int = 5, protocol: type[asyncio.Protocol] | None = None,
) -> Iterator[str]:  # fmt: skip
    """Run ``app`` (any ASGI app) with uvicorn in a background thread, for tests, benchmarks and
    notebooks; yields its base URL (``http://host:port/v1``) and stops it on exit. ``port=None``
    picks a free one; ``keep_alive_s`` is how long idle connections are kept; ``protocol`` is
    uvicorn's HTTP protocol class (e.g. :func:`mixllm.serve.guard.guarded_protocol`'s)."""
    import uvicorn

    if port is None:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_keep_alive=keep_alive_s,
        http=protocol if protocol is not None else "auto",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the server on {host}:{port} did not start in {timeout_s:g} s")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
