"""Target options of ``mixllm evaluate`` (each may be given several times): ``--cost-share``,
``--budget-per-query``, ``--strong-share``, ``--min-quality-share`` with ``--confidence`` and
``--over``, read into :class:`~mixllm.policy.targets.Target` values."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from mixllm.errors import ConfigError
from mixllm.policy.targets import TARGET_KINDS, Target, parse_target

__all__ = ["option_name", "parse_targets", "target_options"]

F = TypeVar("F", bound=Callable[..., Any])

_HELP = {
    "cost_share": ("S", "Mean cost at most S x the reference's, S in (0, 1]."),
    "budget_per_query": ("USD", "Mean cost at most USD per query."),
    "strong_share": ("S", "At most a share S of calls to the reference."),
    "min_quality_share": (
        "Q",
        "Mean quality at least Q x the reference's, with probability --confidence, over the "
        "next --over queries.",
    ),
}


def option_name(kind: str) -> str:
    """The command-line option of a target kind: ``cost_share`` -> ``--cost-share``."""
    return "--" + kind.replace("_", "-")


def target_options(f: F) -> F:
    """Add one repeatable option per target kind, and ``--confidence`` and ``--over``; the
    command receives them as keyword arguments named by kind (tuples), ``confidence`` and
    ``over``."""
    f = click.option(
        "--over",
        metavar="N",
        help="With --min-quality-share: the number of future queries whose mean quality the "
        "guarantee is about, or 'inf' for the long run [500].",
    )(f)
    f = click.option(
        "--confidence", type=float, metavar="C", help="With --min-quality-share [0.9]."
    )(f)
    for kind in reversed(TARGET_KINDS):
        metavar, text = _HELP[kind]
        f = click.option(
            option_name(kind), kind, type=float, multiple=True, metavar=metavar, help=text
        )(f)
    return f


def parse_targets(
    values: Mapping[str, Sequence[float]], confidence: float | None, over: str | None
) -> tuple[Target, ...]:
    """The targets the options ask for, in the order of :data:`TARGET_KINDS` then as given
    (:class:`ConfigError` naming the option and value when one is out of range)."""
    quality = bool(values.get("min_quality_share"))
    if confidence is not None and not quality:
        raise ConfigError(f"--confidence {confidence:g} given without --min-quality-share")
    if over is not None and not quality:
        raise ConfigError(f"--over {over} given without --min-quality-share")
    targets: list[Target] = []
    for kind in TARGET_KINDS:
        for value in values.get(kind, ()):
            try:
                if kind == "min_quality_share" and over is not None:
                    targets.append(parse_target(kind, value, confidence, horizon=over))
                elif kind == "min_quality_share":
                    targets.append(parse_target(kind, value, confidence))
                else:
                    targets.append(parse_target(kind, value))
            except ConfigError as exc:
                option = "--over" if str(exc).startswith("horizon=") else option_name(kind)
                raise ConfigError(f"{option}: {exc}") from None
    return tuple(targets)
