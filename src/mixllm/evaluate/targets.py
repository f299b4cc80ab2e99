"""Targets met or not on the test split: a router calibrated on the training split for each
:class:`~mixllm.policy.targets.Target`, routed over the test split at that target's λ.

:func:`evaluate_targets` fits one router with the first target (the calibration cross-fits it
on the training split, :mod:`mixllm.policy.calibration`) and takes every other target's λ from
the same calibration (:meth:`~mixllm.router.Router.lam_for`). :func:`target_rows` routes the
test split at each λ and compares what it realised with the target:

- mean cost (a missing cost counted as that LLM's mean on the test split, as in the rest of the
  report) and its share of the reference's mean test cost;
- the share of calls to the reference;
- mean quality (a missing quality counted as 0) and its share of the reference's.

A target is *met* on the test split when that routing's figure is within it (a quality target:
mean quality at least Q × the reference's on the same queries). A quality target's confidence
and horizon are about the queries to come, so one test split can miss it by chance (see
``docs/targets.md``). A target no λ meets on the training split is a row that says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixllm.data.dataset import Dataset
from mixllm.embed import DEFAULT_EMBEDDER, Embedder
from mixllm.errors import ConfigError
from mixllm.evaluate.harness import default_reference
from mixllm.evaluate.replay import filled_costs, replay
from mixllm.policy.calibration import DEFAULT_FOLDS
from mixllm.policy.targets import Target
from mixllm.router import Router
from mixllm.types import resolve_llm

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = [
    "TargetFigures",
    "TargetResult",
    "evaluate_targets",
    "render_targets_table",
    "target_rows",
    "targets_markdown",
    "targets_to_dict",
]

_TOL = 1e-9


@dataclass(frozen=True)
class TargetFigures:
    """What one routing realised: mean cost (USD), mean quality, share of calls to the
    reference, and the reference's own mean cost and quality on the same queries."""

    cost_usd: float
    quality: float
    reference_share: float
    reference_cost_usd: float
    reference_quality: float

    @property
    def cost_share(self) -> float | None:
        """Mean cost as a share of the reference's (None if the reference costs nothing)."""
        return self.cost_usd / self.reference_cost_usd if self.reference_cost_usd > 0 else None

    @property
    def quality_share(self) -> float | None:
        """Mean quality as a share of the reference's (None if the reference's is 0)."""
        return self.quality / self.reference_quality if self.reference_quality > 0 else None

    def figure(self, kind: str) -> float | None:
        """The number a target of ``kind`` is about."""
        return {
            "cost_share": self.cost_share,
            "budget_per_query": self.cost_usd,
            "strong_share": self.reference_share,
            "min_quality_share": self.quality_share,
        }[kind]

    def meets(self, target: Target) -> bool:
        """Whether these figures are within ``target``."""
        if target.kind == "cost_share":
            return self.cost_usd <= target.value * self.reference_cost_usd * (1 + _TOL)
        if target.kind == "budget_per_query":
            return self.cost_usd <= target.value * (1 + _TOL)
        if target.kind == "strong_share":
            return self.reference_share <= target.value + _TOL
        return self.quality >= target.value * self.reference_quality - _TOL


@dataclass(frozen=True)
class TargetResult:
    """A target's row: its λ, the out-of-fold figures it was calibrated to, what routing the
    test split at that λ realised, and whether that meets it. A target no λ meets has
    ``lam`` None and says why in ``reason``."""

    target: Target
    reference: str
    lam: float | None = None
    out_of_fold: TargetFigures | None = None
    test: TargetFigures | None = None
    n_missing: int = 0
    reason: str = ""

    @property
    def description(self) -> str:
        """The target in words."""
        return self.target.describe(self.reference)

    @property
    def met(self) -> bool | None:
        """Met on the test split; None when no λ meets it."""
        return None if self.test is None else self.test.meets(self.target)


def evaluate_targets(
    train: Dataset,
    test: Dataset,
    targets: Sequence[Target],
    *,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    reference: str | None = None,
    router: str = "mixllm",
    seed: int = 0,
    folds: int = DEFAULT_FOLDS,
) -> tuple[TargetResult, ...]:
    """Fit ``router`` on ``train`` calibrated for ``targets`` (once) and route ``test`` at each
    target's λ; one :class:`TargetResult` per target, in order.

    ``reference`` is the LLM targets are relative to (default: that of the evaluation report,
    :func:`~mixllm.evaluate.harness.default_reference` of ``train``).
    """
    if not targets:
        return ()
    ref = resolve_llm(reference, train.llms, what="reference LLM") if reference else None
    ref = ref or default_reference(train)
    fitted = Router(
        router, embedder=embedder, seed=seed, target=targets[0], reference=ref, folds=folds
    )
    try:
        fitted.fit(train)
    except ConfigError as exc:
        if getattr(fitted, "calibration_", None) is None:  # no calibration at all
            return tuple(TargetResult(t, ref, reason=str(exc)) for t in targets)
    return target_rows(fitted, test, targets)


def target_rows(
    router: Router, test: Dataset, targets: Sequence[Target]
) -> tuple[TargetResult, ...]:
    """Route ``test`` through ``router`` (fitted with a target, so calibrated) at each of
    ``targets``' λ and compare the outcomes with each target."""
    calibration = router.calibration_
    if calibration is None:
        raise ConfigError("target_rows needs a router fitted with a target (Router(target=...))")
    ref = calibration.reference
    points, reasons = {}, {}
    for i, target in enumerate(targets):
        try:
            points[i] = calibration.point_for(target)
        except ConfigError as exc:
            reasons[i] = str(exc)
    lams = sorted({p.lam for p in points.values()})
    j = test.llm_index(ref)
    ref_cost = float(filled_costs(test)[:, j].mean())
    ref_quality = float(np.nan_to_num(test.quality[:, j], nan=0.0).mean())
    sweep = replay(router, test, lams=lams) if lams else None
    rows = []
    for i, target in enumerate(targets):
        if i not in points or sweep is None:
            rows.append(TargetResult(target, ref, reason=reasons[i]))
            continue
        p = points[i]
        k = lams.index(p.lam)
        quality = sweep.quality[k]
        oof = TargetFigures(
            p.cost_usd,
            p.quality,
            p.reference_share,
            calibration.reference_cost_usd,
            calibration.reference_quality,
        )
        realised = TargetFigures(
            float(sweep.cost_usd[k].mean()),
            float(np.nan_to_num(quality, nan=0.0).mean()),
            float((sweep.choice[k] == j).mean()),
            ref_cost,
            ref_quality,
        )
        missing = int(np.isnan(quality).sum())
        rows.append(TargetResult(target, ref, p.lam, oof, realised, missing))
    return tuple(rows)


# -- output -----------------------------------------------------------------------------------
def _r(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def _figures_dict(f: TargetFigures | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "cost_usd": _r(f.cost_usd),
        "cost_share": _r(f.cost_share),
        "reference_share": _r(f.reference_share),
        "quality": _r(f.quality),
        "quality_share": _r(f.quality_share),
    }


def targets_to_dict(rows: Sequence[TargetResult]) -> list[Any]:
    """The rows as JSON-ready data (``report.json``'s ``targets``)."""
    return [
        {
            "target": dict(r.target.to_dict()),
            "description": r.description,
            "reference": r.reference,
            "lam": _r(r.lam),
            "out_of_fold": _figures_dict(r.out_of_fold),
            "test": _figures_dict(r.test),
            "n_missing": r.n_missing,
            "met": r.met,
            "infeasible": r.reason or None,
        }
        for r in rows
    ]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _figure(kind: str, f: TargetFigures | None) -> str:
    if f is None:
        return "–"
    x = f.figure(kind)
    if kind == "budget_per_query":
        return f"${x:.6g}" if x is not None else "–"
    what = {"cost_share": "cost", "strong_share": "calls", "min_quality_share": "quality"}[kind]
    return f"{_pct(x)} {what}"


def _cells(r: TargetResult) -> list[str]:
    kind, t = r.target.kind, r.test
    if t is None:
        return [r.description, "–", "–", "–", "infeasible", "–", "–", "–"]
    return [
        r.description,
        f"{r.lam:.4g}",
        _figure(kind, r.out_of_fold),
        _figure(kind, t),
        "met" if r.met else "not met",
        f"${t.cost_usd:.6g} ({_pct(t.cost_share)})",
        _pct(t.reference_share),
        f"{t.quality:.4f} ({_pct(t.quality_share)})",
    ]


_COLUMNS = (
    "target", "λ", "out of fold", "on test", "met on test",
    "test cost per query (% of ref.)", "calls to ref.", "test quality (% of ref.)",
)  # fmt: skip


#: Column titles of the terminal table, after the target's.
_SHORT_COLUMNS = (
    "λ", "out of fold", "on test", "met on test", "cost/query (% ref.)", "ref. calls",
    "quality (% ref.)",
)  # fmt: skip


def targets_markdown(rows: Sequence[TargetResult], router: str = "mixllm") -> list[str]:
    """The lines of ``report.md``'s section on targets (empty without rows)."""
    if not rows:
        return []
    table = [
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
        *("| " + " | ".join(_cells(r)) + " |" for r in rows),
    ]
    reasons = [f"- {r.reason}" for r in rows if r.reason]
    return [
        "## Targets on the test split",
        "",
        f"Per target, the `{router}` router fitted on the training split and calibrated by "
        "cross-fitting (`mixllm fit`), routing the test split at the λ that meets the target "
        f"out of fold; relative to {rows[0].reference} on the same queries. *Out of fold*: the "
        "figure the λ was calibrated to; *on test*: what routing the test split at it realised, "
        "and whether that meets the target.",
        "",
        *table,
        "",
        *([*reasons, ""] if reasons else []),
    ]


def render_targets_table(rows: Sequence[TargetResult], router: str = "mixllm") -> RenderableType:
    """The targets for the terminal: a :class:`rich.table.Table` and, below it, why each
    infeasible target is (needs ``rich``)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"Targets on the test split ({router}, reference {rows[0].reference})",
        caption="λ: calibrated by cross-fitting on the training split. Out of fold: the figure "
        "it was calibrated to. On test: what routing the test split at λ realised.",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("target", min_width=30, overflow="fold")
    for title in _SHORT_COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for r in rows:
        style = None if r.met else "bold red" if r.met is False else "yellow"
        table.add_row(*_cells(r), style=style)
    reasons = [Text(r.reason, style="yellow") for r in rows if r.reason]
    return Group(table, *reasons)
