"""A fitted router and a real uvicorn server on 127.0.0.1 for the gateway's tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
