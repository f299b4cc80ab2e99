"""``mixllm route``: route a file of queries with a saved router."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mixllm.cli._common import _progress
from mixllm.errors import ConfigError

__all__ = ["route"]


@click.command(context_settings={"allow_extra_args": True})
@click.argument("router_dir", type=click.Path(path_type=Path))
@click.argument("queries", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path))
@click.option("--lam", "lams", type=float, multiple=True, help="λ values: --lam 0 10 100")
@click.option("--sweep", type=int, default=None, help="N values of λ, cheapest to best quality.")
@click.pass_context
def route(
    ctx: click.Context,
    router_dir: Path,
    queries: Path,
    out: Path,
    lams: tuple[float, ...],
    sweep: int | None,
) -> None:
    """Route every query in QUERIES (CSV/JSONL with prompt and sample_id/id) with a saved router."""
    from mixllm.data.queries import read_queries
    from mixllm.router import Router

    lam_values = list(lams) + [_float_arg(a) for a in ctx.args] if lams else []
    if ctx.args and not lams:
        raise ConfigError(f"unexpected arguments {ctx.args!r}")
    if bool(lam_values) == (sweep is not None):
        raise ConfigError("give exactly one of --lam X [X ...] or --sweep N")
    if sweep is not None and sweep < 1:
        raise ConfigError(f"--sweep {sweep}; expected a positive number of λ values")
    router = Router.load(router_dir)
    ids, prompts = read_queries(queries)
    if sweep is not None:
        lam_values = router.lambda_sweep(prompts, sweep)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f, _progress() as progress:
        task = progress.add_task("routing", total=len(lam_values))
        for lam in lam_values:
            for d in router.route_many(prompts, lam=lam, query_ids=ids):
                f.write(json.dumps({"id": d.query_id, "lam": lam, "llm": d.llm}) + "\n")
            progress.advance(task)
    click.echo(f"wrote {len(ids) * len(lam_values)} decisions ({len(lam_values)} λ) to {out}")


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--lam value {text!r} is not a number") from None
