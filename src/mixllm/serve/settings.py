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
from mixllm.policy.targets import TARGET_KINDS, Target
from mixllm.serve._knobs import PacingSettings, pacing_settings, profile_target

__all__ = [
    "GRADER_NAMES",
    "ApiKey",
    "PacingSettings",
    "Profile",
    "Settings",
    "ShadowSettings",
    "load_settings",
    "load_settings_text",
]


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
    pacing: PacingSettings | None = None  # a budget for this key's requests (docs/pacing.md)


@dataclass(frozen=True)
class Profile:
    """Routing options a request selects by its ``model`` name (``"mixllm"`` is the default):
    λ or a target (resolved by the router's calibration), candidates, a cost ceiling, and a
    pacing budget (:mod:`mixllm.serve.pacing`)."""

    lam: float | None = None
    candidates: tuple[str, ...] | None = None
    max_cost_usd: float | None = None
    target: Target | None = None
    pacing: PacingSettings | None = None


#: What grades a shadow answer against the served one when no judge LLM is set.
GRADER_NAMES = ("auto", "choice", "number", "exact", "normalised")


@dataclass(frozen=True)
class ShadowSettings:
    """Shadow traffic (``[shadow]``): a ``share`` of chat requests is also sent, after the
    client's answer, to the LLM the router is least sure about, graded and learned
    (:mod:`mixllm.serve.shadow`). ``share = 0`` (the default) turns it off.

    ``judge`` (an upstream's LLM name) grades the shadow answer with ``judge_template`` (a file;
    default :data:`mixllm.grade.DEFAULT_JUDGE_TEMPLATE`), the served answer as the reference;
    without a judge, ``grader`` compares the two answers (default ``"auto"``). Shadow calls
    spend at most ``budget_usd_per_day`` (UTC days, answers and judge together), write at most
    ``max_tokens`` each, and at most ``max_in_flight`` run at once (more are dropped).
    ``judge_price_in_per_mtok`` and ``judge_price_out_per_mtok`` price a judge that the router
    does not know (the router's prices otherwise).
    """

    share: float = 0.0
    budget_usd_per_day: float | None = None
    max_tokens: int = 512
    judge: str | None = None
    judge_template: str | None = None
    grader: str | None = None
    max_in_flight: int = 4
    seed: int = 0
    judge_price_in_per_mtok: float = 0.0
    judge_price_out_per_mtok: float = 0.0

    def __post_init__(self) -> None:
        share = self.share
        if isinstance(share, bool) or not (
            isinstance(share, int | float) and math.isfinite(share) and 0 <= share <= 1
        ):
            raise ConfigError(f"[shadow] share={share!r}; expected a number in [0, 1]")
        if self.budget_usd_per_day is not None:
            _positive("[shadow] budget_usd_per_day", self.budget_usd_per_day)
        elif share > 0:
            raise ConfigError(
                f"[shadow] share={share!r} without budget_usd_per_day; expected a daily "
                "budget in USD > 0 for the shadow calls"
            )
        _positive("[shadow] max_tokens", self.max_tokens, integer=True)
        _positive("[shadow] max_in_flight", self.max_in_flight, integer=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"[shadow] seed={self.seed!r}; expected an integer")
        for name in ("judge", "judge_template"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"[shadow] {name}={value!r}; expected a non-empty string")
        for name in ("judge_price_in_per_mtok", "judge_price_out_per_mtok"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1e6
            ):
                raise ConfigError(f"[shadow] {name}={value!r}; expected a number in [0, 1e6]")
        if self.grader is not None and self.grader not in GRADER_NAMES:
            raise ConfigError(
                f"[shadow] grader={self.grader!r}; expected one of {', '.join(GRADER_NAMES)}"
            )
        if self.judge is not None and self.grader is not None:
            raise ConfigError(
                f"[shadow] judge={self.judge!r} and grader={self.grader!r}; expected one of "
                "them (a judge LLM grades, or a grader compares with the served answer)"
            )
        if self.judge is None and self.judge_template is not None:
            raise ConfigError(
                f"[shadow] judge_template={self.judge_template!r} without a judge; expected "
                'judge = "<upstream LLM name>"'
            )

    @property
    def on(self) -> bool:
        """Whether any request is shadowed."""
        return self.share > 0


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
    store_prompts: bool = True  # keep each decision's prompt text (for mixllm export)
    shadow: ShadowSettings = field(default_factory=ShadowSettings)
    pacing: PacingSettings | None = None  # a budget for all requests (docs/pacing.md)

    def __post_init__(self) -> None:
        _positive("max_attempts", self.max_attempts, integer=True)
        _positive("deadline_s", self.deadline_s)
        _positive("breaker_failures", self.breaker_failures, integer=True)
        _positive("breaker_reset_s", self.breaker_reset_s)
        _positive("max_body_bytes", self.max_body_bytes, integer=True)
        _positive("checkpoint_every", self.checkpoint_every, integer=True)
        if not isinstance(self.store_prompts, bool):
            raise ConfigError(f"store_prompts={self.store_prompts!r}; expected true or false")
        if not isinstance(self.shadow, ShadowSettings):
            raise ConfigError(f"shadow={self.shadow!r}; expected a ShadowSettings")
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
            if p.lam is not None and p.target is not None:
                raise ConfigError(
                    f"profile {name!r}: lam={p.lam!r} and {p.target.kind}={p.target.value!r}; "
                    "expected one of them (a target sets λ)"
                )
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
    return load_settings_text(text, environ=environ, source=str(file), base_dir=file.parent)


def load_settings_text(
    text: str,
    *,
    environ: Mapping[str, str],
    source: str = "<config>",
    base_dir: str | Path | None = None,
) -> Settings:
    """Settings from TOML text; ``[[keys]]`` name the environment variable of each secret.
    A relative ``[shadow] judge_template`` is relative to ``base_dir`` (the config file's
    folder; the current directory without it)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _only(data, {"server", "keys", "profiles", "upstreams", "shadow", "pacing"}, source)
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
    shadow = _shadow(data.get("shadow", {}), f"{source} [shadow]", base_dir)
    pacing = data.get("pacing")
    if pacing is not None:
        pacing = pacing_settings(pacing, f"{source} [pacing]")
    try:
        return Settings(
            keys=keys, profiles=profiles, upstreams=upstreams, shadow=shadow, pacing=pacing,
            **server,
        )  # fmt: skip
    except TypeError as exc:
        raise ConfigError(f"{source} [server]: {exc}") from exc


_TABLES = ("keys", "profiles", "upstreams", "shadow", "pacing")


def _shadow(raw: Any, where: str, base_dir: str | Path | None) -> ShadowSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {raw!r}; expected a table")
    _only(raw, set(ShadowSettings.__dataclass_fields__), where)
    values = dict(raw)
    template = values.get("judge_template")
    if isinstance(template, str) and template and base_dir is not None:
        values["judge_template"] = str(Path(base_dir) / template)  # an absolute one stays
    return ShadowSettings(**values)


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
    pacing = raw.get("pacing")
    return ApiKey(
        name, environ[env], admin=bool(raw.get("admin", False)), spend_limit_usd=limit,
        requests_per_minute=raw.get("requests_per_minute"),
        tokens_per_minute=raw.get("tokens_per_minute"),
        pacing=None if pacing is None else pacing_settings(pacing, f"{source} key {name!r} pacing"),
    )  # fmt: skip


_KEY_FIELDS = (
    "name", "secret_env", "admin", "spend_limit_usd", "requests_per_minute", "tokens_per_minute",
    "pacing",
)  # fmt: skip


def _profile(raw: Mapping[str, Any], where: str) -> Profile:
    _only(
        raw,
        {"lam", "candidates", "max_cost_usd", "pacing", "confidence", "over", *TARGET_KINDS},
        where,
    )
    candidates = raw.get("candidates")
    if candidates is not None and not (
        isinstance(candidates, list) and candidates and all(isinstance(c, str) for c in candidates)
    ):
        raise ConfigError(f"{where}: candidates={candidates!r}; expected a list of LLM names")
    pacing = raw.get("pacing")
    return Profile(
        lam=raw.get("lam"),
        candidates=None if candidates is None else tuple(candidates),
        max_cost_usd=raw.get("max_cost_usd"),
        target=profile_target(raw, where),
        pacing=None if pacing is None else pacing_settings(pacing, f"{where[:-1]}.pacing]"),
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
