"""``mixllm evaluate``: compare routers on routing data and write a report."""

from __future__ import annotations

from pathlib import Path

import click

from mixllm.cli._common import _check_names, _load, _run_and_print
from mixllm.embed import DEFAULT_EMBEDDER

__all__ = ["evaluate"]


@click.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--routers", default=None, help="Comma-separated router names (default: all).")
@click.option("--split", type=click.Choice(["random", "task"]), default="random", show_default=True)
@click.option("--test-tasks", default=None, help="Comma-separated tasks held out by --split task.")
@click.option("--report", "report_dir", required=True, type=click.Path(path_type=Path))
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--n-boot", default=1000, show_default=True, type=int)
def evaluate(
    data: tuple[str, ...],
    routers: str | None,
    split: str,
    test_tasks: str | None,
    report_dir: Path,
    embedder: str,
    seed: int,
    n_boot: int,
) -> None:
    """Evaluate routers on DATA and write a report (report.md, report.json, frontier.png)."""
    from mixllm.evaluate.run import EvalSpec, run_evaluation

    spec = EvalSpec(
        routers=None if routers is None else tuple(r.strip() for r in routers.split(",")),
        split=split,
        test_tasks=None if test_tasks is None else tuple(test_tasks.split(",")),
        embedder=embedder,
        seed=seed,
        n_boot=n_boot,
    )
    for r in spec.routers or ():
        _check_names(r, embedder)
    ds = _load(data)
    _run_and_print(lambda progress: run_evaluation(ds, spec, report_dir, progress=progress))
