"""A fitted router and a real uvicorn server on 127.0.0.1 for the gateway's tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm import Router
from mixllm.data import make_routing_dataset, split_random
from mixllm.serve.run import serve_in_thread


@pytest.fixture(scope="session")
def fitted_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A MixLLM router over 4 generated LLMs (hashing embedder: no model download), saved."""
    data = make_routing_dataset(n_queries=400, n_llms=4, seed=0)
    train, _ = split_random(data, seed=0)
    path = tmp_path_factory.mktemp("router") / "router"
    Router("mixllm", embedder="hashing", lam=50.0).fit(train).save(path)
    return path


@pytest.fixture
def router(fitted_dir: Any) -> Router:
    return Router.load(fitted_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: Any, *, timeout_s: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields the base URL (``.../v1``)."""
    with serve_in_thread(app, timeout_s=timeout_s) as base:
        yield base


@contextmanager
def serve_process(
    args: list[str], log: Path, *, prelude: str = "", start_timeout_s: float = 30.0,
    stop_timeout_s: float = 20.0,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:  # fmt: skip
    """``mixllm serve ARGS --port P`` in a subprocess (``prelude``: Python run first in it),
    its output appended to ``log``; yields it and its root URL once /healthz answers, and stops
    it with SIGTERM (graceful) on exit unless it is already dead."""
    port = free_port()
    code = f"{prelude}from mixllm.cli import main; main()"
    command = [sys.executable, "-c", code, "serve", *args, "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:  # bounded in time
            if proc.poll() is not None:
                raise AssertionError(f"the server exited ({proc.returncode}):\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log.read_text()}")
            try:
                if httpx.get(f"{root}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield proc, root
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
