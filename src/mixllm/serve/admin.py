"""The admin API (admin keys only): list, add and remove LLMs, change the router's defaults,
take a checkpoint."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from mixllm.errors import ConfigError
from mixllm.serve.backends import make_backend
from mixllm.serve.gateway import Gateway
from mixllm.serve.schemas import AddLLMRequest, DefaultsRequest
from mixllm.serve.settings import ApiKey
from mixllm.types import LLM

__all__ = ["admin_routes"]


def admin_routes(gw: Gateway, require_admin: Callable[[Request], ApiKey]) -> APIRouter:
    """The ``/admin`` endpoints of ``gw``; ``require_admin`` checks the caller's key."""
    api = APIRouter(prefix="/admin")

    @api.get("/llms")
    async def list_llms(request: Request) -> dict[str, Any]:
        require_admin(request)
        return {"llms": [_describe(gw, m) for m in gw.router.llms]}

    @api.post("/llms", status_code=201)
    async def add_llm(body: AddLLMRequest, request: Request) -> dict[str, Any]:
        require_admin(request)
        if body.name in gw.router.llms:
            raise ConfigError(f"LLM {body.name!r} is already in the pool")
        if body.upstream is None and body.name not in gw.backends:
            raise ConfigError(
                f"LLM {body.name!r} has no backend; expected an 'upstream' "
                "(base_url, model, api_key_env)"
            )
        backend = None
        if body.upstream is not None:
            _check_key_env(gw, body.upstream.api_key_env)
            config = {"llm": body.name, **body.upstream.model_dump(exclude_none=True)}
            backend = make_backend(config, environ=os.environ)
        llm = LLM(body.name, body.price_in_per_mtok, body.price_out_per_mtok)
        try:
            await run_in_threadpool(gw.router.add_llm, llm)
        except BaseException:
            if backend is not None:
                await backend.aclose()
            raise
        if backend is not None:
            gw.backends[body.name] = backend
        return _describe(gw, body.name)

    @api.delete("/llms/{name:path}")
    async def remove_llm(name: str, request: Request) -> dict[str, Any]:
        require_admin(request)
        await run_in_threadpool(gw.router.remove_llm, name)
        backend = gw.backends.pop(name, None)
        gw.breakers.pop(name, None)
        if backend is not None:  # closed once the requests in flight have finished
            gw.retire(name, backend)
        return {"removed": name, "llms": list(gw.router.llms)}

    @api.patch("/defaults")
    async def defaults(body: DefaultsRequest, request: Request) -> dict[str, float | None]:
        require_admin(request)
        for name, value in body.model_dump(exclude_none=True).items():
            setattr(gw.router, name, float(value))
        r = gw.router
        return {"lam": r.lam, "alpha": r.alpha, "beta": r.beta, "tau_s": _finite(r.tau_s)}

    @api.post("/checkpoint")
    async def checkpoint(request: Request) -> dict[str, str | None]:
        require_admin(request)
        path = await run_in_threadpool(gw.checkpoint)
        return {"checkpoint": None if path is None else path.name}

    return api


def _describe(gw: Gateway, name: str) -> dict[str, Any]:
    price = gw.router.prices_.get(name)
    breaker = gw.breakers.get(name)
    return {
        "name": name,
        "price_in_per_mtok": None if price is None else price.price_in_per_mtok,
        "price_out_per_mtok": None if price is None else price.price_out_per_mtok,
        "backend": type(gw.backends[name]).__name__ if name in gw.backends else None,
        "circuit": "closed" if breaker is None else breaker.state,
        "in_flight": gw.tracker.in_flight(name),
    }


def _check_key_env(gw: Gateway, name: str | None) -> None:
    """An upstream added at run time may read only the key variables the config allows (else
    an admin could send any of the server's environment variables to any URL)."""
    if name is None:
        return
    allowed = gw.settings.allowed_key_envs()
    if name not in allowed:
        raise ConfigError(
            f"api_key_env {name!r} is not allowed; expected one of {sorted(allowed)} "
            "(the config's upstreams and [server] upstream_key_envs)"
        )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
