"""``mixllm evaluate``: compare routers on routing data and write a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mixllm.cli._common import _check_names, _console, _load, _run_and_print, price_options
from mixllm.cli._targets import parse_targets, target_options
from mixllm.embed import DEFAULT_EMBEDDER
from mixllm.errors import ConfigError

__all__ = ["evaluate"]


@click.command()
@click.argument("data", nargs=-1, required=True)
@click.option(
    "--test",
    "test_data",
    default=None,
    help="Test data (file, folder or named set); DATA is then all training data.",
)
@click.option(
    "--test-size",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    help="Fraction of DATA held out by --split random.  [default: 0.2]",
)
@click.option("--split", type=click.Choice(["random", "task"]), default="random", show_default=True)
@click.option("--test-tasks", default=None, help="Comma-separated tasks held out by --split task.")
@click.option(
    "--reference",
    default=None,
    help="The LLM the report and the targets compare against (default: the best on the "
    "training data).",
)
@price_options
@click.option("--routers", default=None, help="Comma-separated router names (default: all).")
@click.option("--report", "report_dir", required=True, type=click.Path(path_type=Path))
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--n-boot", default=1000, show_default=True, type=int)
@target_options
def evaluate(
    data: tuple[str, ...],
    test_data: str | None,
    test_size: float | None,
    split: str,
    test_tasks: str | None,
    reference: str | None,
    prices: Path | None,
    output_tokens: float | None,
    routers: str | None,
    report_dir: Path,
    embedder: str,
    seed: int,
    n_boot: int,
    confidence: float | None,
    over: str | None,
    **targets: tuple[float, ...],
) -> None:
    """Evaluate routers on DATA and write a report (report.md, report.json, frontier.png).

    Each target option (any of them, each may be repeated) also fits the mixllm router on the
    training data calibrated for that target, as `mixllm fit` does, and reports whether routing
    the test data at its λ meets it.
    """
    from mixllm.evaluate.run import EvalSpec, run_evaluation

    if test_data is not None and (test_size is not None or split != "random" or test_tasks):
        raise ConfigError("--test gives the test data; drop --test-size, --split and --test-tasks")
    if split == "task" and test_size is not None:
        raise ConfigError("--test-size is for --split random; --split task holds out --test-tasks")
    spec = EvalSpec(
        routers=None if routers is None else tuple(r.strip() for r in routers.split(",")),
        split=split,
        test_tasks=None if test_tasks is None else tuple(test_tasks.split(",")),
        test_size=0.2 if test_size is None else test_size,
        embedder=embedder,
        seed=seed,
        n_boot=n_boot,
        reference=reference,
        prices=prices,
        output_tokens=output_tokens,
        targets=parse_targets(targets, confidence, over),
    )
    for r in spec.routers or ():
        _check_names(r, embedder, batch_ok=True)
    ds = _load(data)
    test = None if test_data is None else _load((test_data,))
    reports: list[Any] = []

    def job(progress: Any) -> list[Any]:
        reports.extend(run_evaluation(ds, spec, report_dir, test=test, progress=progress))
        return reports

    _run_and_print(job)
    for report, _ in reports:
        for warning in report.context.warnings:
            _console().print(
                f"warning: {warning}", style="bold yellow", markup=False, soft_wrap=True
            )
