"""``mixllm fit``: train a router on routing data, calibrate its target, and save it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from mixllm.cli._common import _check_names, _console, _load
from mixllm.embed import DEFAULT_EMBEDDER
from mixllm.errors import ConfigError, UnknownLLMError

__all__ = ["DEFAULT_TARGET", "fit"]

DEFAULT_ROUTER = "mixllm"
#: The target of ``mixllm fit`` without ``--lam`` or a target option (see docs/targets.md).
DEFAULT_TARGET = ("cost_share", 0.5)

_TARGET_OPTIONS = {
    "cost_share": "--cost-share",
    "budget_per_query": "--budget-per-query",
    "strong_share": "--strong-share",
    "min_quality_share": "--min-quality-share",
}


@click.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Directory.")
@click.option("--router", "router_name", default=DEFAULT_ROUTER, show_default=True)
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True)
@click.option(
    "--cost-share", type=float, metavar="S", help="Mean cost at most S x the reference's (0, 1]."
)
@click.option("--budget-per-query", type=float, metavar="USD", help="Mean cost at most USD.")
@click.option(
    "--strong-share", type=float, metavar="S", help="At most a share S of calls to the reference."
)
@click.option(
    "--min-quality-share",
    type=float,
    metavar="Q",
    help="Mean quality at least Q x the reference's, with probability --confidence, over the "
    "next --over queries.",
)
@click.option("--confidence", type=float, metavar="C", help="With --min-quality-share [0.9].")
@click.option(
    "--over",
    metavar="N",
    help="With --min-quality-share: the number of future queries whose mean quality the "
    "guarantee is about, or 'inf' for the long run [500].",
)
@click.option("--reference", metavar="NAME", help="LLM the targets are relative to [best].")
@click.option("--lam", type=float, help="λ itself (quality points per USD), instead of a target.")
@click.option("--seed", default=0, show_default=True, type=int)
def fit(
    data: tuple[str, ...],
    out: Path,
    router_name: str,
    embedder: str,
    lam: float | None,
    reference: str | None,
    confidence: float | None,
    over: str | None,
    seed: int,
    **targets: float | None,
) -> None:
    """Train a router on DATA (files or directories in any supported format) and save it.

    Give what the routing should achieve (one target option), or λ itself with --lam. Without
    either, the target is --cost-share 0.5. A target is met by cross-fitting the router on DATA
    (5 folds), which takes about 5 times as long as fitting it once.
    """
    from mixllm.router import Router

    target = _target(targets, confidence, lam, reference, over)
    _check_names(router_name, embedder)
    ds = _load(data)
    if reference is not None and reference not in ds.llms:
        raise UnknownLLMError(f"--reference {reference!r}; known LLMs: {list(ds.llms)}")
    router = Router(
        router_name,
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


def _is_default(targets: dict[str, float | None], lam: float | None) -> bool:
    return lam is None and all(v is None for v in targets.values())


def _target(
    targets: dict[str, float | None],
    confidence: float | None,
    lam: float | None,
    reference: str | None,
    over: str | None = None,
) -> Any:
    """The target the options ask for (the default without any), or ``None`` with --lam."""
    from mixllm.policy.targets import parse_target

    given = {k: v for k, v in targets.items() if v is not None}
    if len(given) > 1:
        names = " and ".join(_TARGET_OPTIONS[k] for k in given)
        raise ConfigError(f"{names} given; expected at most one target option")
    if confidence is not None and "min_quality_share" not in given:
        raise ConfigError(f"--confidence {confidence:g} given without --min-quality-share")
    if over is not None and "min_quality_share" not in given:
        raise ConfigError(f"--over {over} given without --min-quality-share")
    if lam is not None:
        if given:
            raise ConfigError(
                f"--lam {lam:g} and {_TARGET_OPTIONS[next(iter(given))]} given; expected one: "
                "a target, or λ itself with --lam"
            )
        if reference is not None:
            raise ConfigError("--reference given with --lam; a reference goes with a target")
        return None
    kind, value = next(iter(given.items())) if given else DEFAULT_TARGET
    try:
        if over is not None:
            return parse_target(kind, value, confidence, horizon=over)
        return parse_target(kind, value, confidence)
    except ConfigError as exc:
        option = "--over" if str(exc).startswith("horizon=") else _TARGET_OPTIONS[kind]
        raise ConfigError(f"{option}: {exc}") from None


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
    router.lam = router.lam_for(router.target)


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
