"""Budget pacing in the gateway, and the λ a request is routed with.

Each pacing budget (``[pacing]`` for every request, ``[profiles.NAME.pacing]`` for a
profile's, a key's ``pacing`` for that key's) is a *scope* with its own
:class:`~mixllm.policy.pacing.Pacer`: λ moves so that the scope's spend follows its budget.
A request under several scopes is routed with the largest of their λ (the cheapest) and must
fit in each of their budgets.

The hard limit: before a call, the chosen LLM's worst case is held on every scope of the
request, in the store, in one transaction per scope; when it does not fit, the best-scored
capable LLM whose worst case fits is called instead; when none fits, the request is refused
with a 429 naming the budget, its period and when it resets (:class:`PacingBudgetError`).
A fallback LLM tops the holds up, and the answer's real cost replaces them. Each scope's
spend per period, and its λ, are kept in the store: a restart goes on where it stopped.

The λ of a request (:func:`request_lam`), first given wins: the request's ``lam``; the
request's target (``cost_share``... in its ``mixllm`` object); its scopes' paced λ; its
profile's target; its profile's ``lam``; the router's default. Targets are resolved by the
router's calibration (:meth:`~mixllm.router.Router.lam_for`).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from mixllm.clock import Clock
from mixllm.errors import ConfigError
from mixllm.policy.pacing import Budget, Pacer
from mixllm.policy.targets import TARGET_KINDS
from mixllm.serve._knobs import PacingSettings, quality_target
from mixllm.serve.errors import RateLimitError
from mixllm.serve.fallback import SkippedLLMError
from mixllm.serve.metrics import Metrics
from mixllm.serve.settings import ApiKey, Profile, Settings
from mixllm.serve.store import Store

if TYPE_CHECKING:
    from mixllm.router import Router
    from mixllm.serve.billing import Plan

__all__ = ["Pacing", "PacingBudgetError", "WallClock", "check_targets", "request_lam", "start_lam"]


class WallClock:
    """Unix time in seconds (a pacing period is a UTC hour or day)."""

    def now(self) -> float:
        return time.time()


class PacingBudgetError(RateLimitError):
    """A pacing budget cannot cover any capable LLM's worst case until its period ends
    (429 with ``Retry-After``: the seconds until it resets)."""


def _owner(scope: str) -> str:
    if scope == "gateway":
        return "the gateway"
    kind, _, name = scope.partition(":")
    return f"profile {name!r}" if kind == "profile" else "this key"  # a key's name stays out


class Pacing:
    """The gateway's pacing scopes: their pacers, holds in the store, and metrics."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        *,
        clock: Clock,
        start_lam: Callable[[Profile | None], float],
    ) -> None:
        self.store, self.metrics, self.clock = store, metrics, clock
        found: dict[str, tuple[PacingSettings, Profile | None]] = {}
        if settings.pacing is not None:
            found["gateway"] = (settings.pacing, None)
        for name, p in settings.profiles.items():
            if p.pacing is not None:
                found[f"profile:{name}"] = (p.pacing, p)
        for key in settings.keys:
            if key.pacing is not None:
                found[f"key:{key.name}"] = (key.pacing, None)
        self._profiles = [(p, f"profile:{n}") for n, p in settings.profiles.items()]
        self.pacers: dict[str, Pacer] = {}
        for scope, (pacing, owner) in found.items():
            budget = pacing.budget
            now = clock.now()
            lam = store.pacing_lam(scope)
            pacer = Pacer(
                budget, lam=start_lam(owner) if lam is None else lam, clock=clock,
                spent=store.pacing_spent(scope, budget.label(now)),
            )  # fmt: skip
            self.pacers[scope] = pacer
            self._watch(scope, pacer)

    def _watch(self, scope: str, pacer: Pacer) -> None:
        m = self.metrics
        m.pacing_lam.labels(scope).set_function(lambda: pacer.lam)
        m.pacing_rate.labels(scope).set_function(lambda: pacer.rate_usd_per_hour)
        m.pacing_spend.labels(scope).set_function(lambda: pacer.spent)
        m.pacing_budget.labels(scope).set(pacer.budget.usd)

    def scopes(self, profile: Profile, key: ApiKey | None) -> tuple[str, ...]:
        """The pacing scopes of a request with ``profile`` (one of the settings', or not) and
        ``key``."""
        named = next((s for p, s in self._profiles if p is profile), "")
        wanted = ("gateway", named, f"key:{key.name}" if key else "")
        return tuple(s for s in wanted if s in self.pacers)

    def lam(self, scopes: Sequence[str]) -> float | None:
        """The λ to route with under ``scopes`` (the largest), or ``None`` without any."""
        return max((self.pacers[s].lam for s in scopes), default=None)

    # -- holds ---------------------------------------------------------------------------------
    def _hold_all(self, scopes: Sequence[str], usd: float) -> list[list[Any]] | str:
        """Hold ``usd`` on every scope, or on none: the holds, or the scope that refused."""
        held: list[list[Any]] = []
        for scope in scopes:
            pacer = self.pacers[scope]
            period = pacer.budget.label(self.clock.now())
            total = self.store.reserve_pacing(scope, period, usd, limit_usd=pacer.budget.usd)
            if total is None:
                self._undo(held)
                return scope
            pacer.restore(total)
            held.append([scope, period, usd])
        return held

    def _undo(self, held: Sequence[list[Any]]) -> None:
        for scope, period, usd in held:
            total = self.store.settle_pacing(scope, period, usd, 0.0)
            self._sync(scope, period, total)

    def _sync(self, scope: str, period: str, total: float) -> None:
        pacer = self.pacers[scope]
        if pacer.budget.label(self.clock.now()) == period:
            pacer.restore(total)

    async def hold(self, plan: Plan, scopes: Sequence[str], worst: Callable[[str], float]) -> None:
        """Hold the chosen LLM's worst case on ``scopes``; else switch to the best-scored LLM
        of ``plan.order`` whose worst case fits; else :class:`PacingBudgetError`."""
        if not scopes:
            return
        refused = scopes[0]
        for llm in plan.order:
            held = await run_in_threadpool(self._hold_all, scopes, worst(llm))
            if isinstance(held, str):
                refused = held
                continue
            plan.paced = held
            if llm != plan.decision.llm:
                plan.decision = replace(plan.decision, llm=llm)
                plan.order = (llm, *(m for m in plan.order if m != llm))
            return
        self.metrics.pacing_refused.labels(refused).inc()
        cheapest = min(worst(m) for m in plan.order)
        raise self._refusal(refused, cheapest)

    def _refusal(self, scope: str, cheapest: float) -> PacingBudgetError:
        pacer = self.pacers[scope]
        budget: Budget = pacer.budget
        now = self.clock.now()
        resets = budget.end(now)
        at = dt.datetime.fromtimestamp(resets, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        wait = max(resets - now, 1.0)
        return PacingBudgetError(
            f"the pacing budget of {_owner(scope)} ({budget.describe()}) is spent for this "
            f"{budget.period} "
            f"({budget.label(now)} UTC: ${pacer.spent:.6g} held or spent, the cheapest capable "
            f"LLM's worst case is ${cheapest:.6g}); it resets at {at} (in {math.ceil(wait)} s)",
            retry_after_s=wait,
        )

    async def cover(self, plan: Plan, llm: str, usd: float) -> None:
        """Before a fallback LLM: hold more when its worst case ``usd`` is more than held
        (:class:`SkippedLLMError` when a budget cannot cover it)."""
        if not plan.paced:
            return
        more = usd - plan.paced[0][2]
        if more <= 0:
            return

        def top_up() -> bool:
            done: list[list[Any]] = []
            for scope, period, _ in plan.paced:
                pacer = self.pacers[scope]
                total = self.store.reserve_pacing(scope, period, more, limit_usd=pacer.budget.usd)
                if total is None:
                    self._undo(done)
                    return False
                self._sync(scope, period, total)
                done.append([scope, period, more])
            for hold in plan.paced:
                hold[2] += more
            return True

        if not await run_in_threadpool(top_up):
            raise SkippedLLMError(f"{llm}: not tried (a pacing budget's rest does not cover it)")

    async def settle(self, plan: Plan, actual_usd: float) -> None:
        """Replace the holds with the answer's cost (0: nothing answered); once."""
        held, plan.paced = plan.paced, []
        if not held:
            return

        def write() -> None:
            for scope, period, usd in held:
                pacer = self.pacers[scope]
                if actual_usd > 0:
                    pacer.observe(min(actual_usd, usd))
                total = self.store.settle_pacing(
                    scope, period, usd, min(actual_usd, usd), lam=pacer.lam
                )
                self._sync(scope, period, total)

        await run_in_threadpool(write)


def request_lam(
    router: Router,
    options: Mapping[str, Any],
    profile: Profile,
    paced: float | None,
) -> float | None:
    """The λ to route a request with (``None``: the router's default); see the module's
    docstring for the order. A bad or unreachable target is a :class:`ConfigError` (400)."""
    if options.get("lam") is not None:
        return float(options["lam"])
    kinds = [k for k in TARGET_KINDS if options.get(k) is not None]
    if len(kinds) > 1:
        raise ConfigError(f"mixllm targets {kinds}; expected at most one per request")
    if kinds:
        return router.lam_for(quality_target(kinds[0], options, "mixllm"))
    for name in ("confidence", "over"):
        if options.get(name) is not None:
            raise ConfigError(
                f"mixllm.{name}={options[name]!r} without min_quality_share; a {name} goes "
                "with min_quality_share only"
            )
    if paced is not None:
        return paced
    if profile.target is not None:
        return router.lam_for(profile.target)
    return profile.lam


def start_lam(router: Router, profile: Profile | None) -> float:
    """The λ a pacer starts from (before any λ of its own is stored): its profile's target's
    or ``lam``, else the router's default."""
    if profile is not None and profile.target is not None:
        return router.lam_for(profile.target)
    if profile is not None and profile.lam is not None:
        return float(profile.lam)
    return float(router.lam)


def check_targets(router: Router, settings: Settings) -> None:
    """Every profile's target resolved once, at start: a router without a calibration, or a
    target it cannot meet, is a :class:`ConfigError` naming the profile."""
    for name, profile in settings.profiles.items():
        if profile.target is not None:
            try:
                router.lam_for(profile.target)
            except ConfigError as exc:
                raise ConfigError(f"profile {name!r}: {exc}") from None
