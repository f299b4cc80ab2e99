"""The records an evaluation returns: one :class:`RouterResult` per router and the
:class:`ReportContext` they share, together a :class:`Report` (all frozen)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mixllm.errors import ConfigError
from mixllm.evaluate.bootstrap import Estimate
from mixllm.evaluate.metrics import Yardstick

if TYPE_CHECKING:
    from mixllm.evaluate.targets import TargetResult

__all__ = ["KINDS", "Report", "ReportContext", "RouterResult", "SweepPoint"]

#: Kinds of rows: single LLMs, fixed baselines (random, cheapest), the oracle, learned routers.
KINDS = ("single", "baseline", "oracle", "router")

_UNDEFINED = Estimate(None)


@dataclass(frozen=True)
class SweepPoint:
    """One run of a router: its λ, mean quality (missing as 0), mean cost, missing count and the
    share of calls sent to each LLM."""

    lam: float
    quality: float
    cost_usd: float
    n_missing: int
    shares: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RouterResult:
    """A router's row in a report.

    ``quality_at_budget_pct[k]`` is read at ``ReportContext.budgets_pct[k]`` % of the reference
    cost (as % of reference quality); ``frontier`` holds the hull's (cost_usd, quality) vertices.
    ``quality_at_lam0`` is the mean quality at λ = 0 (cost does not count) and
    ``gain_over_best_single`` its difference to always calling the best single LLM of the test
    split (paired over the same resamples): the numbers to compare when the AIQ range is empty.
    When the test split has tasks (``ReportContext.tasks``), ``task_quality_at_lam0`` is the same
    quality averaged over tasks (each task's mean, then their mean) and
    ``task_gain_over_best_single`` its difference to the best single LLM by that average
    (``ReportContext.task_best_single``); undefined otherwise.
    ``fit_s`` and ``route_s_per_query`` are wall-clock timings (not reproducible).
    """

    name: str
    kind: str
    aiq: Estimate
    quality_at_budget_pct: tuple[Estimate, ...]
    cost_to_match_pct: float | None
    apgr: Estimate
    max_quality: float
    min_cost_usd: float
    points: tuple[SweepPoint, ...]
    frontier: tuple[tuple[float, float], ...]
    quality_at_lam0: Estimate = _UNDEFINED
    gain_over_best_single: Estimate = _UNDEFINED
    task_quality_at_lam0: Estimate = _UNDEFINED
    task_gain_over_best_single: Estimate = _UNDEFINED
    fit_s: float = 0.0
    route_s_per_query: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"router kind {self.kind!r}; expected one of {list(KINDS)}")


@dataclass(frozen=True)
class ReportContext:
    """What the numbers of a report are relative to, and how they were computed.

    ``apgr_axis`` is ``"share"`` on two-LLM sets (mean over the share of calls to the strong LLM)
    and ``"cost"`` otherwise (mean over the AIQ cost range). ``best_single`` is the LLM with the
    highest quality on the test split. ``warnings`` say when a headline number means nothing
    (:mod:`mixllm.evaluate.degenerate`). ``embed_s_per_query`` is the wall-clock time to embed
    one prompt (not reproducible, so not in ``report.json``). ``tasks`` are the test split's
    tasks when every test query has one and there are at least two (else empty), and
    ``task_best_single`` the LLM with the best task-averaged quality on it
    (:mod:`mixllm.evaluate.task_average`).
    """

    dataset: str
    n_train: int
    n_test: int
    llms: tuple[str, ...]
    reference: str
    reference_quality: float
    reference_cost_usd: float
    cheapest: str
    cheapest_quality: float
    cheapest_cost_usd: float
    seed: int
    embedder: str
    n_boot: int
    n_lams: int
    budgets_pct: tuple[float, ...]
    apgr_axis: str
    notes: tuple[str, ...] = ()
    best_single: str = ""
    best_single_quality: float = 0.0
    warnings: tuple[str, ...] = ()
    embed_s_per_query: float = 0.0
    tasks: tuple[str, ...] = ()
    task_best_single: str = ""
    task_best_single_quality: float = 0.0

    @property
    def yardstick(self) -> Yardstick:
        return Yardstick(
            cheapest_quality=self.cheapest_quality,
            cheapest_cost_usd=self.cheapest_cost_usd,
            reference_quality=self.reference_quality,
            reference_cost_usd=self.reference_cost_usd,
        )


@dataclass(frozen=True)
class Report:
    """An evaluation: its context, one row per router (single LLMs included) and, when targets
    were asked for, one row per target (:mod:`mixllm.evaluate.targets`)."""

    context: ReportContext
    rows: tuple[RouterResult, ...]
    targets: tuple[TargetResult, ...] = ()

    def row(self, name: str) -> RouterResult:
        """The row of router ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise ConfigError(
            f"no router {name!r} in this report; known: {[r.name for r in self.rows]}"
        )
