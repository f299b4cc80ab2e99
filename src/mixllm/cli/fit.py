"""``mixllm fit``: train a router on routing data, calibrate its target, and save it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from mixllm.cli._common import _check_names, _console, _load, price_options
from mixllm.cli._targets import option_name, parse_targets, target_options
from mixllm.embed import DEFAULT_EMBEDDER
from mixllm.errors import ConfigError, UnknownLLMError

__all__ = ["DEFAULT_TARGET", "fit"]

DEFAULT_ROUTER = "mixllm"
#: The target of ``mixllm fit`` without ``--lam`` or a target option (see docs/targets.md).
DEFAULT_TARGET = ("cost_share", 0.5)


@click.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Directory.")
@click.option("--router", "router_name", default=DEFAULT_ROUTER, show_default=True)
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True)
@click.option(
    "--tags",
    default=None,
    metavar="SOURCE",
    help="mixllm router: the domains of its tag head: task, domain (the data's domain labels), "
    "kmeans, kmeans:K, or none.  [default: task]",
)
@click.option(
    "--task-prior/--no-task-prior",
    default=None,
    help="mixllm router: blend each task's training means into its quality predictions "
    "(needs task labels of >= 2 tasks).  [default: on]",
)
@price_options
@target_options
@click.option("--reference", metavar="NAME", help="LLM the targets are relative to [best].")
@click.option("--lam", type=float, help="λ itself (quality points per USD), instead of a target.")
@click.option("--seed", default=0, show_default=True, type=int)
def fit(
    data: tuple[str, ...],
    out: Path,
    router_name: str,
    embedder: str,
    tags: str | None,
    task_prior: bool | None,
    prices: Path | None,
    output_tokens: float | None,
    lam: float | None,
    reference: str | None,
    confidence: float | None,
    over: str | None,
    seed: int,
    **targets: tuple[float, ...],
) -> None:
    """Train a router on DATA (files or directories in any supported format) and save it.

    Give what the routing should achieve (one target option), or λ itself with --lam. Without
    either, the target is --cost-share 0.5. A target is met by cross-fitting the router on DATA
    (5 folds), which takes about 5 times as long as fitting it once.
    """
    from mixllm.router import Router

    target = _target(targets, confidence, over, lam, reference)
    _check_names(router_name, embedder)
    plain = tags is None and task_prior is None
    predictor = router_name if plain else _mixllm(router_name, tags, task_prior, seed)
    ds = _priced(_load(data), prices, output_tokens)
    if reference is not None and reference not in ds.llms:
        raise UnknownLLMError(f"--reference {reference!r}; known LLMs: {list(ds.llms)}")
    router = Router(
        predictor,
        embedder=embedder,
        lam=1.0 if lam is None else lam,
        seed=seed,
        target=target,
        reference=reference,
    )
    what = "fitting" if target is None else "cross-fitting and fitting"
    with _console().status(f"{what} {router_name} on {len(ds)} queries x {ds.n_llms} LLMs"):
        try:
            router.fit(ds)
        except ConfigError:
            if not _is_default(targets, lam) or router.calibration_ is None:
                raise
            _cheapest_instead(router)
        router.save(out)
    if router.calibration_ is not None and router.target is not None:
        _print_calibration(router)
    click.echo(f"saved {router_name} router ({ds.n_llms} LLMs, {len(ds)} queries) to {out}")


def _priced(ds: Any, prices: Path | None, output_tokens: float | None) -> Any:
    """``ds`` with costs from the price table ``prices`` (unchanged without one)."""
    if prices is None:
        if output_tokens is not None:
            raise ConfigError("--output-tokens without --prices; give --prices FILE")
        return ds
    from mixllm.data.price_table import price_dataset, read_price_table

    priced, notes = price_dataset(ds, read_price_table(prices), output_tokens=output_tokens)
    for note in notes:
        click.echo(note, err=True)
    return priced


def _mixllm(router_name: str, tags: str | None, task_prior: bool | None, seed: int) -> Any:
    """The mixllm predictor with ``--tags`` (``none``: no tag head) and ``--task-prior``."""
    from mixllm.policy import MixLLMPredictor
    from mixllm.policy._tags import check_tags

    if router_name != "mixllm":
        given = "--tags" if tags is not None else f"--{'' if task_prior else 'no-'}task-prior"
        raise ConfigError(f"{given} is an option of the mixllm router, not of {router_name!r}")
    value = "task" if tags is None else None if tags.lower() == "none" else tags
    check_tags(value)
    return MixLLMPredictor(tags=value, task_prior=task_prior is not False, seed=seed)


def _is_default(targets: dict[str, tuple[float, ...]], lam: float | None) -> bool:
    return lam is None and not any(targets.values())


def _target(
    targets: dict[str, tuple[float, ...]],
    confidence: float | None,
    over: str | None,
    lam: float | None,
    reference: str | None,
) -> Any:
    """The target the options ask for (the default without any), or ``None`` with --lam."""
    from mixllm.policy.targets import parse_target

    given = parse_targets(targets, confidence, over)
    if len(given) > 1:
        names = " and ".join(option_name(t.kind) for t in given)
        raise ConfigError(f"{names} given; expected at most one target option")
    if lam is not None:
        if given:
            raise ConfigError(
                f"--lam {lam:g} and {option_name(given[0].kind)} given; expected one: "
                "a target, or λ itself with --lam"
            )
        if reference is not None:
            raise ConfigError("--reference given with --lam; a reference goes with a target")
        return None
    return given[0] if given else parse_target(*DEFAULT_TARGET)


def _cheapest_instead(router: Any) -> None:
    """The default target cannot be met (the reference is cheap): take the cheapest routing."""
    from mixllm.policy.targets import parse_target

    calibration = router.calibration_
    share = float(calibration.arrays["cost_usd"].min()) / calibration.reference_cost_usd
    share = min(1.0, math.ceil(share * 1000) / 1000)
    click.echo(
        f"the default target ({router.target.describe(calibration.reference)}) cannot be met "
        f"on this data; using --cost-share {share:g} (the cheapest routing) instead",
        err=True,
    )
    router.target = parse_target("cost_share", share)
    router.set_params(lam=router.lam_for(router.target))


def _print_calibration(router: Any) -> None:
    calibration, target = router.calibration_, router.target
    ref = calibration.reference
    point = calibration.point_for(target)
    click.echo(f"target: {target.describe(ref)} -> λ = {point.lam:.6g}")
    click.echo(
        f"out of fold ({calibration.folds} folds): mean cost ${point.cost_usd:.6g} per query "
        f"({point.cost_usd / calibration.reference_cost_usd:.1%} of {ref}'s), mean quality "
        f"{point.quality:.4g} ({point.quality / calibration.reference_quality:.1%} of {ref}'s), "
        f"{point.reference_share:.1%} of calls to {ref}"
    )
