"""The admin API (admin keys only): list, add and remove LLMs (with their capabilities),
change the router's defaults, take a checkpoint, read and reset a key's spend."""

from __future__ import annotations

import math
import os
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.serve.auth import admin_key
from mixllm.serve.backends import make_backend
from mixllm.serve.gateway import Gateway
from mixllm.serve.schemas import AddLLMRequest, DefaultsRequest
from mixllm.serve.settings import ApiKey
from mixllm.types import LLM

__all__ = ["admin_routes"]


admin_routes = APIRouter(prefix="/admin", dependencies=[Depends(admin_key)])
"""The ``/admin`` endpoints; every one needs an admin key."""


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


@admin_routes.get("/llms")
async def list_llms(request: Request) -> dict[str, Any]:
    gw = _gateway(request)
    return {"llms": [_describe(gw, m) for m in gw.router.llms]}


@admin_routes.post("/llms", status_code=201)
async def add_llm(body: AddLLMRequest, request: Request) -> dict[str, Any]:
    gw = _gateway(request)
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


@admin_routes.delete("/llms/{name:path}")
async def remove_llm(name: str, request: Request) -> dict[str, Any]:
    gw = _gateway(request)
    await run_in_threadpool(gw.router.remove_llm, name)
    backend = gw.backends.pop(name, None)
    gw.breakers.pop(name, None)
    if backend is not None:  # closed once the requests in flight have finished
        gw.retire(name, backend)
    return {"removed": name, "llms": list(gw.router.llms)}


@admin_routes.patch("/defaults")
async def defaults(body: DefaultsRequest, request: Request) -> dict[str, float | None]:
    gw = _gateway(request)
    changes = {k: float(v) for k, v in body.model_dump(exclude_none=True).items()}
    gw.router.set_params(**changes)  # checked, all or none, under the router's lock
    r = gw.router
    return {"lam": r.lam, "alpha": r.alpha, "beta": r.beta, "tau_s": _finite(r.tau_s)}


@admin_routes.post("/checkpoint")
async def checkpoint(request: Request) -> dict[str, str | None]:
    path = await run_in_threadpool(_gateway(request).learning.checkpoint)
    return {"checkpoint": None if path is None else path.name}


@admin_routes.get("/keys/{name}/spend")
async def read_spend(name: str, request: Request) -> dict[str, Any]:
    """A key's spend so far (answers charged plus reservations of requests in flight)."""
    gw = _gateway(request)
    key = _configured_key(gw, name)
    spent = await run_in_threadpool(gw.store.spent, key.name)
    return {"key": key.name, "spent_usd": spent, "limit_usd": key.spend_limit_usd}


@admin_routes.post("/keys/{name}/spend/reset")
async def reset_spend(name: str, request: Request) -> dict[str, Any]:
    """Set a key's spend back to 0 (a new billing period); says what it was."""
    gw = _gateway(request)
    key = _configured_key(gw, name)
    before = await run_in_threadpool(gw.store.reset_spend, key.name)
    return {"key": key.name, "spent_usd": 0.0, "was_usd": before, "limit_usd": key.spend_limit_usd}


def _configured_key(gw: Gateway, name: str) -> ApiKey:
    for key in gw.settings.keys:
        if key.name == name:
            return key
    raise UnknownLLMError(f"unknown key name {name!r}; expected one of the config's [[keys]]")


def _describe(gw: Gateway, name: str) -> dict[str, Any]:
    price = gw.router.prices.get(name)
    breaker = gw.breakers.get(name)
    return {
        "name": name,
        "price_in_per_mtok": None if price is None else price.price_in_per_mtok,
        "price_out_per_mtok": None if price is None else price.price_out_per_mtok,
        "backend": type(gw.backends[name]).__name__ if name in gw.backends else None,
        "circuit": "closed" if breaker is None else breaker.state,
        "in_flight": gw.tracker.in_flight(name),
        "capabilities": gw.capabilities(name).to_dict(),
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
