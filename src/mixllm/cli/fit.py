"""``mixllm fit``: train a router on routing data and save it."""

from __future__ import annotations

from pathlib import Path

import click

from mixllm.cli._common import _check_names, _console, _load
from mixllm.embed import DEFAULT_EMBEDDER

__all__ = ["fit"]

DEFAULT_ROUTER = "mixllm"


@click.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Directory.")
@click.option("--router", "router_name", default=DEFAULT_ROUTER, show_default=True)
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True)
@click.option("--lam", default=1.0, show_default=True, type=float, help="Default λ.")
@click.option("--seed", default=0, show_default=True, type=int)
def fit(
    data: tuple[str, ...], out: Path, router_name: str, embedder: str, lam: float, seed: int
) -> None:
    """Train a router on DATA (files or directories in any supported format) and save it."""
    from mixllm.router import Router

    _check_names(router_name, embedder)
    ds = _load(data)
    with _console().status(f"fitting {router_name} on {len(ds)} queries x {ds.n_llms} LLMs"):
        router = Router(router_name, embedder=embedder, lam=lam, seed=seed).fit(ds)
        router.save(out)
    click.echo(f"saved {router_name} router ({ds.n_llms} LLMs, {len(ds)} queries) to {out}")
