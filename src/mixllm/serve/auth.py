"""API keys: ``Authorization: Bearer <key>`` compared in constant time with every configured
key; client keys chat and send feedback, admin keys may also use ``/admin``. The key's name
(never its secret) is kept on the request for the access log."""

from __future__ import annotations

import hmac

from fastapi import Request

from mixllm.serve.errors import AuthError
from mixllm.serve.settings import ApiKey, Settings

__all__ = ["admin_key", "client_key", "is_admin"]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.gateway.settings
    return settings


def _key(request: Request) -> ApiKey | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    found = None
    for key in _settings(request).keys:  # every key compared, in constant time
        if hmac.compare_digest(key.secret.encode(), token.strip().encode()):
            found = key
    request.state.key_name = None if found is None else found.name  # for the access log
    return found


def client_key(request: Request) -> ApiKey | None:
    """The caller's key for chat and feedback (``None`` when the gateway has no keys)."""
    if _settings(request).open_access:
        return None
    key = _key(request)
    if key is None:
        raise AuthError(
            "missing or invalid API key; expected 'Authorization: Bearer <key>'", status=401
        )
    return key


def is_admin(request: Request) -> bool:
    """Whether the caller holds an admin key."""
    key = _key(request)
    return key is not None and key.admin


def admin_key(request: Request) -> ApiKey:
    """The caller's admin key; 401 without a valid key, 403 for a client key or when no
    admin key is configured (the admin API is off)."""
    if not any(k.admin for k in _settings(request).keys):
        raise AuthError("the admin API is off: no admin key is configured", status=403)
    key = _key(request)
    if key is None:
        raise AuthError("missing or invalid API key; expected an admin key", status=401)
    if not key.admin:
        raise AuthError("this key is not an admin key", status=403)
    return key
