"""Write a :class:`~mixllm.evaluate.results.Report` as files (markdown, JSON, PNG) or a table.

``report.json`` holds every reproducible number, floats rounded to 6 significant digits, keys in
a fixed order, so two runs with the same data and seed write identical bytes. Wall-clock timings
are not reproducible and go to ``timings.json`` (and the markdown) instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from mixllm.evaluate.bootstrap import Estimate
from mixllm.evaluate.results import Report, ReportContext, RouterResult
from mixllm.evaluate.targets import targets_markdown, targets_to_dict

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["render_table", "report_to_dict", "router_cells", "write_report"]

JSONScalar = float | int | str | bool | None
JSONValue = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]

#: Column titles of the router table (markdown and terminal); budgets are filled in per report.
_ROUTER_COLUMNS = ("router", "kind", "AIQ [95% CI]", "cost to match", "APGR [95% CI]")


def _r(x: float | None) -> float | None:
    """Round to 6 significant digits (stable bytes across reruns and platforms)."""
    return None if x is None else float(f"{x:.6g}")


def _est(e: Estimate) -> dict[str, JSONValue]:
    return {"value": _r(e.value), "low": _r(e.low), "high": _r(e.high)}


def _context_dict(c: ReportContext) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {
        "dataset": c.dataset,
        "n_train": c.n_train,
        "n_test": c.n_test,
        "llms": list(c.llms),
        "reference": {
            "llm": c.reference,
            "quality": _r(c.reference_quality),
            "cost_usd": _r(c.reference_cost_usd),
        },
        "cheapest": {
            "llm": c.cheapest,
            "quality": _r(c.cheapest_quality),
            "cost_usd": _r(c.cheapest_cost_usd),
        },
        "best_single": {"llm": c.best_single, "quality": _r(c.best_single_quality)},
        "aiq_cost_range_usd": [_r(c.cheapest_cost_usd), _r(c.reference_cost_usd)],
        "apgr_axis": c.apgr_axis,
        "budgets_pct": [_r(b) for b in c.budgets_pct],
        "embedder": c.embedder,
        "seed": c.seed,
        "n_boot": c.n_boot,
        "n_lams": c.n_lams,
        "notes": list(c.notes),
        "warnings": list(c.warnings),
    }
    return out | _task_context(c)


def _task_context(c: ReportContext) -> dict[str, JSONValue]:
    """The tasks of the task-averaged columns (none: no key, as before they existed)."""
    if not c.tasks:
        return {}
    best: dict[str, JSONValue] = {
        "llm": c.task_best_single,
        "quality": _r(c.task_best_single_quality),
    }
    return {"task_average": {"tasks": list(c.tasks), "best_single": best}}


def _row_dict(
    row: RouterResult, budgets: tuple[float, ...], by_task: bool = False
) -> dict[str, JSONValue]:
    tasks: dict[str, JSONValue] = {}
    if by_task:
        tasks = {
            "task_quality_at_lam0": _est(row.task_quality_at_lam0),
            "task_gain_over_best_single": _est(row.task_gain_over_best_single),
        }
    return {
        "name": row.name,
        "kind": row.kind,
        "aiq": _est(row.aiq),
        "quality_at_budget_pct": {
            f"{b:g}": _est(e) for b, e in zip(budgets, row.quality_at_budget_pct)
        },
        "cost_to_match_pct": _r(row.cost_to_match_pct),
        "apgr": _est(row.apgr),
        "quality_at_lam0": _est(row.quality_at_lam0),
        "gain_over_best_single": _est(row.gain_over_best_single),
        "max_quality": _r(row.max_quality),
        "min_cost_usd": _r(row.min_cost_usd),
        "frontier": [[_r(c), _r(q)] for c, q in row.frontier],
        "points": [
            {
                "lam": _r(p.lam),
                "quality": _r(p.quality),
                "cost_usd": _r(p.cost_usd),
                "n_missing": p.n_missing,
                "shares": {m: _r(s) for m, s in p.shares.items()},
            }
            for p in row.points
        ],
        **tasks,  # after the keys that were there before
    }


def report_to_dict(report: Report) -> dict[str, JSONValue]:
    """Every reproducible number of ``report`` as JSON-ready data (no timings)."""
    budgets = report.context.budgets_pct
    out: dict[str, JSONValue] = {
        "format": "mixllm-report/1",
        "context": _context_dict(report.context),
        "routers": [_row_dict(r, budgets, bool(report.context.tasks)) for r in report.rows],
    }
    if report.targets:  # only when targets were asked for
        out["targets"] = targets_to_dict(report.targets)
    return out


def _fmt(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _fmt_est(e: Estimate, digits: int, bound_digits: int | None = None) -> str:
    if e.value is None:
        return "–"
    if e.low is None or e.high is None:
        return _fmt(e.value, digits)
    b = digits if bound_digits is None else bound_digits
    return f"{e.value:.{digits}f} [{e.low:.{b}f}, {e.high:.{b}f}]"


def _budget_titles(report: Report) -> list[str]:
    return [f"Q @ {b:g}% cost" for b in report.context.budgets_pct]


def router_cells(row: RouterResult) -> list[str]:
    """One table row as text: name, kind, AIQ, each budget, cost to match, APGR."""
    budgets = [_fmt_est(e, 1) for e in row.quality_at_budget_pct]
    return [row.name, row.kind, _fmt_est(row.aiq, 3), *budgets, _ctm(row), _fmt_est(row.apgr, 3)]


def _ctm(row: RouterResult) -> str:
    return "never" if row.cost_to_match_pct is None else f"{row.cost_to_match_pct:.1f}%"


def _titles(report: Report) -> list[str]:
    return [*_ROUTER_COLUMNS[:3], *_budget_titles(report), *_ROUTER_COLUMNS[3:]]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _md_singles(report: Report) -> list[str]:
    c = report.context
    rows = []
    for r in report.rows:
        if r.kind != "single":
            continue
        q, cost = r.points[0].quality, r.points[0].cost_usd
        rows.append(
            [
                r.name.removeprefix("single:")
                + (" (reference)" if r.name == f"single:{c.reference}" else ""),
                f"{q:.3f}",
                str(r.points[0].n_missing),
                f"{cost:.6f}",
                _fmt(100 * q / c.reference_quality if c.reference_quality else None, 1),
                _fmt(100 * cost / c.reference_cost_usd if c.reference_cost_usd else None, 1),
            ]
        )
    header = [
        "LLM",
        "quality",
        "missing",
        "cost per query ($)",
        "% of ref. quality",
        "% of ref. cost",
    ]
    return _md_table(header, rows)


def _md_intro(c: ReportContext) -> list[str]:
    axis = "share of calls to the strong LLM" if c.apgr_axis == "share" else "AIQ cost range"
    return [
        f"# mixllm report: {c.dataset}",
        "",
        f"{c.n_train} training and {c.n_test} test queries; embedder `{c.embedder}`, "
        f"seed {c.seed}, {c.n_boot} bootstrap resamples, {c.n_lams} values of λ per router.",
        "",
        f"- Reference LLM: **{c.reference}**, quality {c.reference_quality:.3f} at "
        f"${c.reference_cost_usd:.6f} per query (the 100% marks).",
        f"- Cheapest LLM: **{c.cheapest}**, quality {c.cheapest_quality:.3f} at "
        f"${c.cheapest_cost_usd:.6f} per query.",
        f"- AIQ: mean frontier quality over costs ${c.cheapest_cost_usd:.6f} to "
        f"${c.reference_cost_usd:.6f}. Q @ X% cost: frontier quality at X% of the reference "
        f"cost, as % of reference quality. APGR: mean gap recovered over the {axis}.",
        "- [95% bootstrap intervals over test queries]; routers whose intervals overlap are not "
        "called better or worse.",
        *(f"- Note: {n}" for n in c.notes),
        *(f"- **Warning:** {w}" for w in c.warnings),
        "",
    ]


def _md_lam0(report: Report) -> list[str]:
    c = report.context
    header = ["router", "quality at λ = 0 [95% CI]", f"gain over {c.best_single} [95% CI]"]
    rows = [
        [r.name, _fmt_est(r.quality_at_lam0, 3), _fmt_est(r.gain_over_best_single, 3)]
        for r in report.rows
    ]
    by_task = []
    if c.tasks:
        header += ["task-averaged [95% CI]", f"gain over {c.task_best_single} [95% CI]"]
        for cells, r in zip(rows, report.rows):
            cells += [
                _fmt_est(r.task_quality_at_lam0, 3),
                _fmt_est(r.task_gain_over_best_single, 3),
            ]
        by_task = [
            "",
            f"Task-averaged: the mean over the {len(c.tasks)} tasks of the test split "
            f"({', '.join(c.tasks)}) of each task's mean quality, so that every task counts the "
            f"same; its gain is over the best single LLM by that average, {c.task_best_single} "
            f"({c.task_best_single_quality:.3f}).",
        ]
    return [
        f"Each router's mean quality when cost does not count (λ = 0), and its gain over always "
        f"calling the best single LLM on the test split, {c.best_single} "
        f"({c.best_single_quality:.3f}), paired over the same resamples. A router swept over "
        "its own knob instead of λ (a cascade's threshold, a budget) counts with its run of "
        "highest quality.",
        *by_task,
        "",
        *_md_table(header, rows),
    ]


def render_markdown(report: Report) -> str:
    """The text of ``report.md``."""
    timings = [[r.name, f"{r.fit_s:.2f}", f"{1000 * r.route_s_per_query:.3f}"] for r in report.rows]
    lines = [
        *_md_intro(report.context),
        "## Routers",
        "",
        *_md_table(_titles(report), [router_cells(r) for r in report.rows]),
        "",
        *targets_markdown(report.targets),
        "## Best quality (λ = 0)",
        "",
        *_md_lam0(report),
        "",
        "## Single LLMs",
        "",
        *_md_singles(report),
        "",
        "## Timings (wall clock)",
        "",
        *_md_table(["router", "fit (s)", "route (ms per query)"], timings),
        "",
        f"Embedding (once, shared by all routers): "
        f"{1000 * report.context.embed_s_per_query:.3f} ms per prompt; not included above.",
        "",
        "![quality vs cost](frontier.png)",
        "",
    ]
    return "\n".join(lines)


def _dump(data: JSONValue) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write ``report.md``, ``report.json``, ``timings.json`` and ``frontier.png`` into ``out_dir``.

    Returns the paths written. Needs matplotlib for the PNG.
    """
    from mixllm.evaluate.plots import plot_frontier

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, JSONValue] = {
        "embed_s_per_query": float(f"{report.context.embed_s_per_query:.4g}"),
    }
    timings |= {
        r.name: {
            "fit_s": round(r.fit_s, 4),
            "route_s_per_query": float(f"{r.route_s_per_query:.4g}"),
        }
        for r in report.rows
    }
    files = {
        out / "report.md": render_markdown(report),
        out / "report.json": _dump(report_to_dict(report)),
        out / "timings.json": _dump(timings),
    }
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    png = plot_frontier(report, out / "frontier.png")
    return [*files, png]


def _terminal_cells(row: RouterResult, by_task: bool = False) -> list[str]:
    name = row.name
    if row.kind == "single":
        name = name.removeprefix("single:").split("/")[-1]
    budgets = [_fmt(e.value, 1) for e in row.quality_at_budget_pct]
    lam0 = [_fmt(row.quality_at_lam0.value, 3), _signed(row.gain_over_best_single.value)]
    if by_task:
        lam0 += [_fmt(row.task_quality_at_lam0.value, 3)]
        lam0 += [_signed(row.task_gain_over_best_single.value)]
    return [name, _fmt_est(row.aiq, 3, 2), *budgets, _ctm(row), _fmt_est(row.apgr, 3, 2), *lam0]


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def render_table(report: Report) -> Table:
    """The router table for the terminal (a :class:`rich.table.Table`; needs ``rich``).

    Narrower than ``report.md`` (about 100 columns): single LLMs, dimmed, show their short name;
    the budget columns show point values only (their intervals are in the files).
    """
    from rich import box
    from rich.table import Table

    c = report.context
    task_note = (
        f"Task avg: Q@λ0 averaged over the {len(c.tasks)} tasks, each counting the same; its "
        f"gain: over {c.task_best_single}, the best LLM by that average. "
        if c.tasks
        else ""
    )
    table = Table(
        title=f"{c.dataset}: {c.n_test} test queries, reference {c.reference}",
        caption="[95% bootstrap CI]. AIQ: mean quality over the cost range from the cheapest "
        "LLM's cost to the reference's (a single LLM counts from its own cost on, so the "
        "reference scores 0). APGR: share of the cheapest-to-reference quality gap recovered "
        "(0 = cheapest, 1 = reference). Q@X%: quality at X% of the reference cost, in % of "
        "reference quality. Q@λ0: quality at λ = 0 (a router swept over its own knob: its run "
        f"of highest quality); gain: over {c.best_single or 'the best LLM'}. "
        f"{task_note}Cost to match: the lowest cost at which the router's frontier reaches the "
        "reference's quality, in % of the reference's cost. Single LLMs dimmed.",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("router", min_width=12, overflow="fold")
    table.add_column("AIQ [95% CI]", justify="right", no_wrap=True)
    for b in c.budgets_pct:
        table.add_column(f"Q@{b:g}%", justify="right", no_wrap=True)
    table.add_column("cost to\nmatch", justify="right", no_wrap=True)
    table.add_column("APGR [95% CI]", justify="right", no_wrap=True)
    table.add_column("Q@λ0", justify="right", no_wrap=True)
    table.add_column("gain", justify="right", no_wrap=True)
    if c.tasks:
        table.add_column("task\navg", justify="right", no_wrap=True)
        table.add_column("task\ngain", justify="right", no_wrap=True)
    for r in report.rows:
        cells = _terminal_cells(r, bool(c.tasks))
        table.add_row(*cells, style="dim" if r.kind == "single" else None)
    return table
