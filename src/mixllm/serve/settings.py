"""The gateway's settings: API keys, named profiles, fallback limits, upstreams, storage.

Read from a TOML file by :func:`load_settings` (secrets come from environment variables named in
the file, never from the file itself), or built directly in Python and tests.

>>> s = load_settings_text('''
... [server]
... max_attempts = 2
... [[keys]]
... name = "app"
... secret_env = "APP_KEY"
... spend_limit_usd = 5.0
... [profiles.cheap]
... lam = 1000.0
... ''', environ={"APP_KEY": "sk-test"})
>>> s.max_attempts, s.keys[0].name, s.keys[0].spend_limit_usd, s.profiles["cheap"].lam
(2, 'app', 5.0, 1000.0)
>>> "sk-test" in repr(s.keys[0])  # the secret is never shown
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from mixllm.errors import ConfigError

__all__ = ["ApiKey", "Profile", "Settings", "load_settings", "load_settings_text"]


@dataclass(frozen=True)
class ApiKey:
    """A client (chat and feedback) or admin key. ``name`` appears in logs and metrics; the
    secret never does (it is left out of ``repr``)."""

    name: str
    secret: str = field(repr=False)
    admin: bool = False
    spend_limit_usd: float | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True)
class Profile:
    """Routing options a request selects by its ``model`` name (``"mixllm"`` is the default)."""

    lam: float | None = None
    candidates: tuple[str, ...] | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs besides the router, its backends and its store.

    With no keys, chat and feedback are open (bind to 127.0.0.1) and the admin API is off.
    """

    keys: tuple[ApiKey, ...] = ()
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    max_attempts: int = 3
    deadline_s: float = 60.0
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    max_body_bytes: int = 1_000_000
    checkpoint_every: int = 100
    upstreams: tuple[Mapping[str, Any], ...] = ()
    upstream_key_envs: tuple[str, ...] = ()
    #: open connections (None: from the process's open-file limit, leaving room for upstreams)
    max_connections: int | None = None
    max_in_flight: int = 512  # requests being handled at once; more get 503 + Retry-After
    header_timeout_s: float = 10.0  # to read a request's headers, from its first byte
    body_timeout_s: float = 30.0  # between two pieces of a request body
    decision_retention_s: float = 30 * 86400.0  # feedback on an older decision is a 404
    session_margin: float = 0.05  # score by which another LLM must beat a conversation's own
    default_max_tokens: int = 4096  # answer length reserved when a request sets none
    tokens_per_image: int = 1500  # prompt tokens reserved per image, audio or file part
    protect_metrics: bool = False  # /metrics and /healthz details need an admin key
    error_logs_per_minute: int = 60  # per message kind; the rest are counted, not written

    def __post_init__(self) -> None:
        _positive("max_attempts", self.max_attempts, integer=True)
        _positive("deadline_s", self.deadline_s)
        _positive("breaker_failures", self.breaker_failures, integer=True)
        _positive("breaker_reset_s", self.breaker_reset_s)
        _positive("max_body_bytes", self.max_body_bytes, integer=True)
        _positive("checkpoint_every", self.checkpoint_every, integer=True)
        if self.max_connections is not None:
            _positive("max_connections", self.max_connections, integer=True)
        for name in ("max_in_flight", "default_max_tokens", "error_logs_per_minute"):
            _positive(name, getattr(self, name), integer=True)
        for name in ("header_timeout_s", "body_timeout_s", "decision_retention_s"):
            _positive(name, getattr(self, name))
        if isinstance(self.tokens_per_image, bool) or not (
            isinstance(self.tokens_per_image, int) and self.tokens_per_image >= 0
        ):
            raise ConfigError(f"tokens_per_image={self.tokens_per_image!r}; expected an int >= 0")
        margin = self.session_margin
        if isinstance(margin, bool) or not (
            isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0
        ):
            raise ConfigError(f"session_margin={margin!r}; expected a number >= 0")
        for key in self.keys:
            for name in ("requests_per_minute", "tokens_per_minute"):
                if getattr(key, name) is not None:
                    _positive(f"key {key.name!r} {name}", getattr(key, name), integer=True)
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names) or len({k.secret for k in self.keys}) != len(names):
            raise ConfigError(f"API keys {names!r}; expected distinct names and secrets")
        if any(not k.secret or not k.name for k in self.keys):
            raise ConfigError("an API key has an empty name or secret; expected both")
        for name, p in self.profiles.items():
            for field_name in ("lam", "max_cost_usd"):
                value = getattr(p, field_name)
                ok = value is None or (
                    isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1e12
                )
                if not ok:
                    raise ConfigError(
                        f"profile {name!r}: {field_name}={value!r}; expected a number in [0, 1e12]"
                    )

    def allowed_key_envs(self) -> set[str]:
        """Environment variables an upstream added by the admin API may read its key from:
        ``upstream_key_envs`` and those of the configured upstreams."""
        used = {str(u["api_key_env"]) for u in self.upstreams if u.get("api_key_env")}
        return set(self.upstream_key_envs) | used

    @property
    def open_access(self) -> bool:
        """No keys configured: anyone who can reach the server may chat and send feedback."""
        return not self.keys


def load_settings(path: str | Path, *, environ: Mapping[str, str]) -> Settings:
    """Settings from a TOML file (see ``docs/gateway.md`` for an example)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read gateway config {str(file)!r}: {exc}") from exc
    return load_settings_text(text, environ=environ, source=str(file))


def load_settings_text(
    text: str, *, environ: Mapping[str, str], source: str = "<config>"
) -> Settings:
    """Settings from TOML text; ``[[keys]]`` name the environment variable of each secret."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _only(data, {"server", "keys", "profiles", "upstreams"}, source)
    server = dict(data.get("server", {}))
    if "upstream_key_envs" in server:
        envs = server["upstream_key_envs"]
        if not (isinstance(envs, list) and all(isinstance(e, str) for e in envs)):
            raise ConfigError(
                f"{source} [server] upstream_key_envs={envs!r}; expected a list of names"
            )
        server["upstream_key_envs"] = tuple(envs)
    _only(
        server, {f for f in Settings.__dataclass_fields__ if f not in _TABLES}, f"{source} [server]"
    )
    keys = tuple(_key(k, environ, source) for k in data.get("keys", []))
    profiles = {
        str(n): _profile(p, f"{source} [profiles.{n}]") for n, p in data.get("profiles", {}).items()
    }
    upstreams = tuple(dict(u) for u in data.get("upstreams", []))
    try:
        return Settings(keys=keys, profiles=profiles, upstreams=upstreams, **server)
    except TypeError as exc:
        raise ConfigError(f"{source} [server]: {exc}") from exc


_TABLES = ("keys", "profiles", "upstreams")


def _key(raw: Mapping[str, Any], environ: Mapping[str, str], source: str) -> ApiKey:
    _only(raw, set(_KEY_FIELDS), f"{source} [[keys]]")
    name, env = raw.get("name"), raw.get("secret_env")
    if not isinstance(name, str) or not isinstance(env, str):
        raise ConfigError(f"{source} [[keys]] {raw!r}: expected string 'name' and 'secret_env'")
    if env not in environ or not environ[env]:
        raise ConfigError(
            f"{source}: key {name!r} reads environment variable {env!r}, which is unset"
        )
    limit = raw.get("spend_limit_usd")
    if limit is not None:
        _positive(f"key {name!r} spend_limit_usd", limit)
    return ApiKey(
        name, environ[env], admin=bool(raw.get("admin", False)), spend_limit_usd=limit,
        requests_per_minute=raw.get("requests_per_minute"),
        tokens_per_minute=raw.get("tokens_per_minute"),
    )  # fmt: skip


_KEY_FIELDS = (
    "name", "secret_env", "admin", "spend_limit_usd", "requests_per_minute", "tokens_per_minute",
)  # fmt: skip


def _profile(raw: Mapping[str, Any], where: str) -> Profile:
    _only(raw, {"lam", "candidates", "max_cost_usd"}, where)
    candidates = raw.get("candidates")
    if candidates is not None and not (
        isinstance(candidates, list) and candidates and all(isinstance(c, str) for c in candidates)
    ):
        raise ConfigError(f"{where}: candidates={candidates!r}; expected a list of LLM names")
    return Profile(
        lam=raw.get("lam"),
        candidates=None if candidates is None else tuple(candidates),
        max_cost_usd=raw.get("max_cost_usd"),
    )


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown settings {unknown}; expected some of {sorted(allowed)}"
        )


def _positive(name: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    ok = (
        isinstance(value, kind)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
    if not ok:
        expected = "an integer > 0" if integer else "a number > 0"
        raise ConfigError(f"{name}={value!r}; expected {expected}")
