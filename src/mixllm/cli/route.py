"""``mixllm route``: route a file of queries with a saved router."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from mixllm.cli._common import _progress
from mixllm.errors import ConfigError
from mixllm.types import Decision

__all__ = ["route"]


@click.command(context_settings={"allow_extra_args": True})
@click.argument("router_dir", type=click.Path(path_type=Path))
@click.argument("queries", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path))
@click.option("--lam", "lams", type=float, multiple=True, help="λ values: --lam 0 10 100")
@click.option("--sweep", type=int, default=None,
              help="N values of λ, from 0 (best predicted quality) to all-cheapest.")  # fmt: skip
@click.option(
    "--budget-usd",
    "budget",
    default=None,
    metavar="X",
    help="Route the whole file within X USD of predicted cost, best total quality.",
)
@click.option(
    "--confidence",
    type=float,
    default=None,
    metavar="C",
    help="With --budget-usd: hold X on what the answers will cost, with probability about C.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Add the predicted quality and cost of the chosen LLM and of the others.",
)
@click.pass_context
def route(
    ctx: click.Context,
    router_dir: Path,
    queries: Path,
    out: Path,
    lams: tuple[float, ...],
    sweep: int | None,
    budget: str | None,
    confidence: float | None,
    explain: bool,
) -> None:
    """Route every query in QUERIES (CSV/JSONL with prompt and sample_id/id) with a saved router.

    Without --lam or --sweep, the router's saved λ (its target's, when fitted with one).
    With --budget-usd X, one LLM per query for the whole file: the highest total predicted
    quality whose total predicted cost is at most X; with --confidence C, whose spend stays
    within X with probability about C (from the router's measure of its cost errors).
    """
    from mixllm.data.queries import read_queries
    from mixllm.router import Router

    lam_values = list(lams) + [_float_arg(a) for a in ctx.args] if lams else []
    if ctx.args and not lams:
        raise ConfigError(f"unexpected arguments {ctx.args!r}")
    if lam_values and sweep is not None:
        raise ConfigError("give one of --lam X [X ...] or --sweep N, not both")
    if budget is not None and (lam_values or sweep is not None):
        raise ConfigError("give one of --lam, --sweep or --budget-usd, not several")
    if confidence is not None and budget is None:
        raise ConfigError("--confidence goes with --budget-usd X (the budget it holds)")
    if sweep is not None and sweep < 1:
        raise ConfigError(f"--sweep {sweep}; expected a positive number of λ values")
    if budget is not None:
        _route_within_budget(
            router_dir, queries, out, _budget_arg(budget), confidence, explain=explain
        )
        return
    router = Router.load(router_dir)
    ids, prompts = read_queries(queries)
    if sweep is not None:
        lam_values = router.lambda_sweep(prompts, sweep)
    saved = not lam_values
    if saved:
        lam_values = [float(router.lam)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f, _progress() as progress:
        task = progress.add_task("routing", total=len(lam_values))
        for lam in lam_values:
            for d in router.route_many(prompts, lam=lam, query_ids=ids):
                f.write(json.dumps(_line(d, lam, explain=explain), ensure_ascii=False) + "\n")
            progress.advance(task)
    if saved:
        click.echo(f"routed with the router's saved λ = {lam_values[0]:g}{_target_of(router)}")
    click.echo(f"wrote {len(ids) * len(lam_values)} decisions ({len(lam_values)} λ) to {out}")


def _route_within_budget(
    router_dir: Path,
    queries: Path,
    out: Path,
    budget: float,
    confidence: float | None,
    *,
    explain: bool,
) -> None:
    from mixllm.data.queries import read_queries
    from mixllm.policy.budget import check_budget
    from mixllm.policy.targets import check_confidence
    from mixllm.router import Router

    check_budget(budget)
    if confidence is not None:
        check_confidence(confidence)
    router = Router.load(router_dir)
    ids, prompts = read_queries(queries)
    chosen = router.route_within_budget(prompts, budget, query_ids=ids, confidence=confidence)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for d in chosen:
            line = {**_line(d, d.lam, explain=explain), "budget_usd": budget}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    spend = math.fsum(d.predicted_cost_usd[d.llm] for d in chosen)
    quality = math.fsum(d.predicted_quality[d.llm] for d in chosen) / max(len(chosen), 1)
    lam = chosen[0].lam if chosen else 0.0
    click.echo(
        f"routed {len(chosen)} queries within ${budget:.6g}: predicted spend ${spend:.6g}, "
        f"predicted mean quality {quality:.4f} (λ = {lam:.6g} binds the budget)"
    )
    calibration = getattr(router, "calibration_", None)
    spend_errors = calibration.spend if calibration is not None else None
    if confidence is not None and spend_errors is not None:
        costs = [d.predicted_cost_usd[d.llm] for d in chosen]
        mean, upper = spend_errors.bound([d.llm for d in chosen], costs, confidence, lam)
        click.echo(
            f"expected spend ${mean:.6g}, at most ${upper:.6g} with probability {confidence:g} "
            "(from the router's cross-fitted cost errors)"
        )
    click.echo(f"wrote {len(chosen)} decisions to {out}")


def _budget_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--budget-usd {text!r} is not a number; expected USD >= 0") from None


def _r(x: float) -> float:
    """6 significant digits: enough to compare, short lines."""
    return float(f"{x:.6g}")


def _line(d: Decision, lam: float, *, explain: bool) -> dict[str, Any]:
    """One output line: id, λ, chosen LLM; with ``explain``, the predictions behind it.

    ``quality`` and ``cost_usd`` are the chosen LLM's predictions; ``others`` maps each other
    candidate to its ``[quality, cost_usd]``.
    """
    line: dict[str, Any] = {"id": d.query_id, "lam": lam, "llm": d.llm}
    if explain:
        q, c = d.predicted_quality, d.predicted_cost_usd
        line["quality"] = _r(q[d.llm])
        line["cost_usd"] = _r(c[d.llm])
        line["others"] = {m: [_r(q[m]), _r(c[m])] for m in q if m != d.llm}
    return line


def _target_of(router: Any) -> str:
    target = getattr(router, "target", None)
    describe = getattr(target, "describe", None)
    return f" (its target: {describe()})" if callable(describe) else ""


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--lam value {text!r} is not a number") from None
