"""The quality-vs-cost figure of a report: each router's frontier, the single LLMs, the AIQ range.

matplotlib is imported inside :func:`plot_frontier` (the ``[plot]`` extra) and used through its
object API with the Agg canvas: no pyplot, no global state, the same bytes for the same report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.evaluate.results import Report, RouterResult

__all__ = ["hull_curve", "plot_frontier"]

_SEGMENT_SAMPLES = 24


def hull_curve(
    frontier: tuple[tuple[float, float], ...], *, until: float | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points tracing a frontier on a log-cost axis (each linear segment sampled densely), flat
    past its last vertex up to ``until``.

    >>> x, y = hull_curve(((1.0, 0.5), (3.0, 0.9)), until=4.0)
    >>> float(x[0]), float(y[0]), float(x[-1]), float(y[-1])
    (1.0, 0.5, 4.0, 0.9)
    """
    c = np.array([p[0] for p in frontier], dtype=np.float64)
    q = np.array([p[1] for p in frontier], dtype=np.float64)
    xs = [c[:1]]
    for k in range(1, len(c)):
        xs.append(np.linspace(c[k - 1], c[k], _SEGMENT_SAMPLES)[1:])
    if until is not None and until > c[-1]:
        xs.append(np.array([until]))
    x = np.concatenate(xs)
    return x, np.interp(x, c, q)


def _short(name: str) -> str:
    return name.removeprefix("single:").split("/")[-1]


def _draw_router(ax: Any, row: RouterResult, color: Any, right: float) -> None:
    x, y = hull_curve(row.frontier)
    style = "--" if row.kind == "oracle" else "-"
    label = row.name if row.aiq.value is None else f"{row.name} (AIQ {row.aiq.value:.3f})"
    ax.plot(x, y, style, color=color, lw=1.8, label=label, marker="o", ms=4.5, markevery=[0])
    if x[-1] < right:
        ax.plot([x[-1], right], [y[-1], y[-1]], ":", color=color, lw=1.0, zorder=2)
    costs = [p.cost_usd for p in row.points]
    quals = [p.quality for p in row.points]
    ax.scatter(costs, quals, s=14, color=color, alpha=0.45, lw=0, zorder=3)


def _draw_singles(ax: Any, report: Report) -> None:
    ref = f"single:{report.context.reference}"
    for row in report.rows:
        if row.kind != "single":
            continue
        p = row.points[0]
        is_ref = row.name == ref
        ax.scatter(
            [p.cost_usd],
            [p.quality],
            marker="*" if is_ref else "o",
            s=180 if is_ref else 36,
            color="crimson" if is_ref else "0.25",
            edgecolor="white",
            lw=0.6,
            zorder=5,
        )
        label = _short(row.name) + (" (reference)" if is_ref else "")
        ax.annotate(
            label,
            (p.cost_usd, p.quality),
            xytext=(-7, 7) if is_ref else (5, 4),
            textcoords="offset points",
            ha="right" if is_ref else "left",
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            color="crimson" if is_ref else "0.25",
            fontweight="bold" if is_ref else "normal",
            zorder=6,
        )


def plot_frontier(report: Report, path: str | Path) -> Path:
    """Draw quality vs cost per query for every router of ``report`` into ``path`` (PNG).

    Each router's frontier (its upper hull) is a line, dotted where it stays flat past its
    last point, over its sweep points; single LLMs are labelled dots, the reference LLM a star;
    the AIQ cost range is shaded. Cost is on a log scale (costs span orders of magnitude),
    linear if some run costs nothing.
    """
    from matplotlib.figure import Figure

    c = report.context
    fig = Figure(figsize=(11, 6.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    costs = [p.cost_usd for r in report.rows for p in r.points]
    log = min(costs) > 0
    span = max(costs) - min(costs) or 1.0
    left, right = (min(costs) / 1.5, max(costs) * 1.5) if log else (min(costs), max(costs))
    if not log:
        left, right = left - 0.05 * span, right + 0.05 * span
    ax.axvspan(c.cheapest_cost_usd, c.reference_cost_usd, color="0.93", zorder=0, label="AIQ range")
    ax.axhline(c.reference_quality, color="crimson", lw=0.8, ls=(0, (4, 4)), alpha=0.6, zorder=1)
    routers = [r for r in report.rows if r.kind != "single"]
    for row, color in zip(routers, _palette(len(routers))):
        _draw_router(ax, row, color, right)
    _draw_singles(ax, report)
    _cost_axis(ax, log=log)
    ax.set_xlim(left, right)
    ax.set_ylabel("mean quality")
    ax.set_title(f"{c.dataset}: quality vs cost on {c.n_test} test queries")
    ax.grid(True, which="major", color="0.85", lw=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    out = Path(path)
    fig.savefig(out, format="png", metadata={"Software": None})
    return out


def _cost_axis(ax: Any, *, log: bool) -> None:
    from matplotlib.ticker import FuncFormatter

    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(FuncFormatter(_usd_minor))
    ax.xaxis.set_major_formatter(FuncFormatter(_usd))
    scale = "log scale" if log else "linear scale"
    ax.set_xlabel(f"mean cost per query (USD, {scale})")


def _usd(x: float, _pos: object = None) -> str:
    return f"${x:.2g}"


def _usd_minor(x: float, _pos: object = None) -> str:
    """Label the minor ticks at 2x and 5x a power of ten only."""
    lead = round(x / 10 ** np.floor(np.log10(x)))
    return _usd(x) if lead in (2, 5) else ""


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(n)]
