"""The gateway settings that set how cheap routing is: a pacing budget (``[pacing]``,
``[profiles.NAME.pacing]``, a key's ``pacing``) and a profile's target (``cost_share``,
``budget_per_query``, ``strong_share`` or ``min_quality_share`` with ``confidence`` and
``over``), read
by :mod:`mixllm.serve.settings`.

>>> pacing_settings({"usd_per_day": 20}, "[pacing]").budget.describe()
'$20 per day'
>>> profile_target({"cost_share": 0.3}, "[profiles.cheap]").kind
'cost_share'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixllm.errors import ConfigError
from mixllm.policy.pacing import Budget
from mixllm.policy.targets import TARGET_KINDS, Target, parse_target

__all__ = ["PACING_FIELDS", "PacingSettings", "pacing_settings", "profile_target", "quality_target"]

#: What a pacing table may hold: one budget, per hour or per day.
PACING_FIELDS = ("usd_per_hour", "usd_per_day")


@dataclass(frozen=True)
class PacingSettings:
    """A pacing budget: ``usd_per_hour`` or ``usd_per_day`` (exactly one; UTC periods)."""

    usd_per_hour: float | None = None
    usd_per_day: float | None = None

    def __post_init__(self) -> None:
        given = [n for n in PACING_FIELDS if getattr(self, n) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"pacing {given or 'without a budget'}; expected exactly one of "
                "usd_per_hour or usd_per_day"
            )
        value = getattr(self, given[0])
        try:
            Budget(usd=value, period="hour")
        except ConfigError:
            raise ConfigError(
                f"pacing {given[0]}={value!r}; expected a number of USD > 0"
            ) from None

    @property
    def budget(self) -> Budget:
        """The budget and its period."""
        if self.usd_per_hour is not None:
            return Budget(usd=self.usd_per_hour, period="hour")
        assert self.usd_per_day is not None  # checked at construction
        return Budget(usd=self.usd_per_day, period="day")


def pacing_settings(raw: Any, where: str) -> PacingSettings:
    """:class:`PacingSettings` from a TOML table; a :class:`ConfigError` naming ``where``."""
    if isinstance(raw, PacingSettings):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {raw!r}; expected a table with usd_per_hour or usd_per_day")
    unknown = sorted(set(raw) - set(PACING_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown settings {unknown}; expected one of {PACING_FIELDS}")
    try:
        return PacingSettings(**raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def profile_target(raw: Mapping[str, Any], where: str) -> Target | None:
    """The target a profile's table sets (at most one kind; ``confidence`` goes with
    ``min_quality_share``), or ``None``."""
    kinds = [k for k in TARGET_KINDS if k in raw]
    if len(kinds) > 1:
        raise ConfigError(f"{where}: targets {kinds}; expected at most one")
    if not kinds:
        for name in ("confidence", "over"):
            if name in raw:
                raise ConfigError(f"{where}: {name} without min_quality_share")
        return None
    return quality_target(kinds[0], raw, where)


def quality_target(kind: str, raw: Mapping[str, Any], where: str) -> Target:
    """The ``kind`` target of a profile's table or a request's ``mixllm`` object, with
    ``confidence`` and ``over`` (the horizon: queries, or ``"inf"``) for ``min_quality_share``;
    a :class:`ConfigError` naming ``where`` and the bad value."""
    extra = {"horizon": raw["over"]} if raw.get("over") is not None else {}
    try:
        return parse_target(kind, raw[kind], raw.get("confidence"), **extra)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
