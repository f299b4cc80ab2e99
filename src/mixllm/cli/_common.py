"""Helpers shared by the ``mixllm`` commands: the stderr console and the progress bar."""

from __future__ import annotations

from typing import Any

__all__ = ["_console", "_progress"]


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
