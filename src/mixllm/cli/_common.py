"""Helpers shared by the ``mixllm`` commands: the stderr console and the progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["_check_names", "_console", "_load", "_progress", "_run_and_print", "price_options"]

F = TypeVar("F", bound=Callable[..., Any])


def price_options(f: F) -> F:
    """Add ``--prices FILE`` and ``--output-tokens N`` (costs from a price table)."""
    f = click.option(
        "--output-tokens",
        type=click.FloatRange(min=0.0),
        default=None,
        help="With --prices: answer length assumed where the data has none.",
    )(f)
    return click.option(
        "--prices",
        type=click.Path(path_type=Path),
        default=None,
        help="Price table (.csv/.json/.toml: llm, price_in_per_mtok, price_out_per_mtok); "
        "costs become tokens × prices.",
    )(f)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=_console(),
        transient=False,
    )


def _load(data: Sequence[str]) -> Any:
    from mixllm.data import concat, load_dataset

    with _console().status(f"loading {', '.join(data)}"):
        return concat([load_dataset(d).require_quality() for d in data])


def _check_names(router_name: str, embedder: str, *, batch_ok: bool = False) -> None:
    """Reject an unknown router or embedder before any slow work; a batch policy only where
    ``batch_ok`` (``mixllm evaluate``: it cannot be fitted and saved as a router)."""
    from mixllm.embed import check_embedder_spec
    from mixllm.errors import ConfigError
    from mixllm.policy.batch_registry import check_router_name, is_batch_policy

    if is_batch_policy(router_name) and not batch_ok:
        raise ConfigError(
            f"router {router_name!r} decides for a whole batch (or reads answers); it runs in "
            "mixllm evaluate and cannot be fitted and saved as a router"
        )
    check_router_name(router_name)
    check_embedder_spec(embedder)


def _run_and_print(job: Any) -> None:
    """Run an evaluation job with a progress bar per dataset, then print each report's table."""
    from rich.console import Console

    from mixllm.evaluate import render_table
    from mixllm.evaluate.targets import render_targets_table

    with _progress() as progress:
        current: list[Any] = []

        def on_progress(step: str, done: int, total: int) -> None:
            if done == 0 or not current:  # a new evaluation starts
                current.append(progress.add_task(step, total=total))
            progress.update(current[-1], description=step, completed=done, total=total)

        reports = job(on_progress)
    out = Console()
    if not out.is_terminal:  # piped or logged: do not squeeze the table into 80 columns
        out.width = 160
    for report, paths in reports:
        out.print(render_table(report))
        if report.targets:
            out.print(render_targets_table(report.targets))
        out.print(f"report written to {paths[0].parent}")
