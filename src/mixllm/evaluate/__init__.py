"""Evaluate routers offline: replay a test split, measure the frontier, write the report.

The metrics are those of ``docs/metrics.md``, defined once in :mod:`mixllm.evaluate.metrics`
(per run, upper hull, AIQ, quality at budget, cost to match, APGR) and
:mod:`mixllm.evaluate.bootstrap` (95% intervals over test queries).
:func:`evaluate` fits and replays each router through the public :class:`~mixllm.router.Router`
API and returns a :class:`Report`; :func:`write_report` writes ``report.md``, ``report.json``
and ``frontier.png``; :func:`render_table` gives the terminal table.

>>> from mixllm.evaluate import aiq, upper_hull
>>> aiq(upper_hull([1.0, 3.0], [0.5, 0.9]), 1.0, 3.0)
0.7
"""

from __future__ import annotations

from mixllm.evaluate.bootstrap import Estimate, bootstrap_frontier, interval, resample_counts
from mixllm.evaluate.degenerate import aiq_warning, best_single_llm
from mixllm.evaluate.harness import (
    DEFAULT_ROUTERS,
    ProgressCallback,
    cheapest_llm,
    default_reference,
    evaluate,
    summarise,
)
from mixllm.evaluate.metrics import (
    BUDGETS_PCT,
    FrontierMetrics,
    Hull,
    RunMetrics,
    Yardstick,
    aiq,
    apgr,
    cost_to_match_pct,
    cost_to_reach,
    frontier_metrics,
    hull_quality_at,
    quality_at_budget_pct,
    run_metrics,
    share_hull,
    upper_hull,
)
from mixllm.evaluate.plots import plot_frontier
from mixllm.evaluate.replay import SweepResult, replay, sweep_lams
from mixllm.evaluate.report import render_table, report_to_dict, write_report
from mixllm.evaluate.results import Report, ReportContext, RouterResult, SweepPoint

__all__ = [
    "BUDGETS_PCT",
    "DEFAULT_ROUTERS",
    "Estimate",
    "FrontierMetrics",
    "Hull",
    "ProgressCallback",
    "Report",
    "ReportContext",
    "RouterResult",
    "RunMetrics",
    "SweepPoint",
    "SweepResult",
    "Yardstick",
    "aiq",
    "aiq_warning",
    "apgr",
    "best_single_llm",
    "bootstrap_frontier",
    "cheapest_llm",
    "cost_to_match_pct",
    "cost_to_reach",
    "default_reference",
    "evaluate",
    "frontier_metrics",
    "hull_quality_at",
    "interval",
    "plot_frontier",
    "quality_at_budget_pct",
    "render_table",
    "replay",
    "report_to_dict",
    "resample_counts",
    "run_metrics",
    "share_hull",
    "summarise",
    "sweep_lams",
    "upper_hull",
    "write_report",
]
