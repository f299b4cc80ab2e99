"""Targets in user terms, instead of a willingness to pay λ.

A router scores each LLM by quality − λ × cost; λ is in quality points per USD, a unit nobody
thinks in. A :class:`Target` says what the routing should achieve on average instead:

- ``cost_share`` S: mean cost at most S × the reference LLM's mean cost;
- ``budget_per_query`` USD: mean cost at most USD per query;
- ``strong_share`` S: at most a share S of the calls go to the reference LLM;
- ``min_quality_share`` Q (with ``confidence`` C and ``horizon`` m): mean quality over the next
  m queries at least Q × the reference's on the same queries, with probability at least C
  (``horizon`` None: the expected quality, i.e. the long run).

The reference is, unless named, the LLM with the best mean quality on the training data.
:class:`~mixllm.policy.calibration.Calibration` turns a target into the λ that meets it.

>>> parse_target("cost_share", "0.25").describe("gpt-4")
"mean cost at most 25% of gpt-4's"
>>> parse_target("min_quality_share", 0.95, 0.9).describe()
"mean quality over 500 queries at least 95% of the reference's, with 90% confidence"
>>> parse_target("min_quality_share", 0.95, 0.9, horizon="inf").describe()
"mean quality in the long run at least 95% of the reference's, with 90% confidence"
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mixllm.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIDENCE", "DEFAULT_HORIZON", "TARGET_KINDS", "Target", "check_confidence",
    "parse_target",
]  # fmt: skip

#: The kinds of target, in the order the CLI lists them.
TARGET_KINDS = ("cost_share", "budget_per_query", "strong_share", "min_quality_share")

#: The confidence of a ``min_quality_share`` target given without one.
DEFAULT_CONFIDENCE = 0.9

#: The horizon of a ``min_quality_share`` target given without one: the guarantee is about the
#: mean over the next 500 queries (the size of a typical evaluation set; see docs/targets.md).
DEFAULT_HORIZON = 500

#: What each kind's value is, for error messages.
_EXPECTED = {
    "cost_share": "a share of the reference's mean cost in (0, 1]",
    "budget_per_query": "a mean cost per query in USD, > 0",
    "strong_share": "a share of calls to the reference in (0, 1]",
    "min_quality_share": "a share of the reference's mean quality in (0, 1]",
}


@dataclass(frozen=True)
class Target:
    """What routing should achieve on average (see the module docstring for each kind).

    Build one with :func:`parse_target`, which checks the values; ``confidence`` and
    ``horizon`` (a number of queries, None: the long run) are used by ``min_quality_share`` only.
    """

    kind: str
    value: float
    confidence: float | None = None
    horizon: int | None = DEFAULT_HORIZON

    def __post_init__(self) -> None:
        checked = parse_target(self.kind, self.value, self.confidence, horizon=self.horizon)
        object.__setattr__(self, "value", checked.value)
        object.__setattr__(self, "confidence", checked.confidence)
        object.__setattr__(self, "horizon", checked.horizon)

    def describe(self, reference: str | None = None) -> str:
        """The target in words, e.g. ``"mean cost at most 25% of gpt-4's"``."""
        ref = f"{reference}'s" if reference else "the reference's"
        if self.kind == "cost_share":
            return f"mean cost at most {_percent(self.value)} of {ref}"
        if self.kind == "budget_per_query":
            return f"mean cost at most ${self.value:.6g} per query"
        if self.kind == "strong_share":
            to = reference if reference else "the reference"
            return f"at most {_percent(self.value)} of calls to {to}"
        confidence = DEFAULT_CONFIDENCE if self.confidence is None else self.confidence
        over = "in the long run" if self.horizon is None else f"over {self.horizon} queries"
        return (
            f"mean quality {over} at least {_percent(self.value)} of {ref}, "
            f"with {_percent(confidence)} confidence"
        )

    def to_dict(self) -> dict[str, str | float | None]:
        """A JSON-able form, read back by :meth:`from_dict`."""
        return {
            "kind": self.kind,
            "value": self.value,
            "confidence": self.confidence,
            "horizon": self.horizon,
        }

    @classmethod
    def from_dict(cls, data: object) -> Target:
        """The target written by :meth:`to_dict` (:class:`ConfigError` if malformed); one saved
        without a ``horizon`` (before horizons existed) keeps its meaning: the long run."""
        if not isinstance(data, dict) or "kind" not in data or "value" not in data:
            raise ConfigError(f"target {data!r}; expected a mapping with 'kind' and 'value'")
        return parse_target(
            data["kind"], data["value"], data.get("confidence"), horizon=data.get("horizon")
        )


def parse_target(
    kind: str, value: object, confidence: object = None, *, horizon: object = DEFAULT_HORIZON
) -> Target:
    """A checked :class:`Target` from user input (numbers or their text).

    ``horizon`` (``min_quality_share`` only): the number of future queries whose mean quality
    the guarantee is about; None, ``inf`` or ``"inf"`` for the expected quality (the long run).

    >>> parse_target("budget_per_query", "0.002")
    Target(kind='budget_per_query', value=0.002, confidence=None, horizon=None)
    >>> parse_target("min_quality_share", 0.9, horizon="2000").horizon
    2000
    >>> parse_target("strong_share", 2)
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: strong_share=2; expected a share of calls to the reference in (0, 1]
    """
    if kind not in TARGET_KINDS:
        raise ConfigError(f"target kind {kind!r}; expected one of {list(TARGET_KINDS)}")
    number = _number(f"{kind}={value!r}", value, _EXPECTED[kind])
    ok = number > 0 if kind == "budget_per_query" else 0 < number <= 1
    if not ok:
        raise ConfigError(f"{kind}={value!r}; expected {_EXPECTED[kind]}")
    conf: float | None = None
    over: int | None = None
    if kind == "min_quality_share":
        conf = DEFAULT_CONFIDENCE if confidence is None else check_confidence(confidence)
        over = _horizon(horizon)
    elif confidence is not None:
        raise ConfigError(
            f"confidence={confidence!r} given with {kind}; a confidence goes with "
            "min_quality_share only"
        )
    elif horizon is not None and horizon != DEFAULT_HORIZON:
        raise ConfigError(
            f"horizon={horizon!r} given with {kind}; a horizon goes with min_quality_share only"
        )
    target = object.__new__(Target)  # checked here: skip __post_init__'s second check
    object.__setattr__(target, "kind", kind)
    object.__setattr__(target, "value", number)
    object.__setattr__(target, "confidence", conf)
    object.__setattr__(target, "horizon", over)
    return target


def _horizon(horizon: object) -> int | None:
    """A horizon checked: a whole number of queries ≥ 1, or None for the long run."""
    expected = "a whole number of queries >= 1, or 'inf' for the long run"
    if horizon is None:
        return None
    if isinstance(horizon, str) and horizon.strip().lower() in ("inf", "infinity"):
        return None
    number = _number(f"horizon={horizon!r}", horizon, expected, finite=False)
    if number == math.inf:
        return None
    if not (number >= 1 and number == int(number)):
        raise ConfigError(f"horizon={horizon!r}; expected {expected}")
    return int(number)


def check_confidence(confidence: object) -> float:
    """``confidence`` as a float; :class:`~mixllm.errors.ConfigError`, naming it, unless it is
    a probability strictly between 0 and 1.

    >>> check_confidence(1.0)
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: confidence=1.0; expected a probability in (0, 1), e.g. 0.9
    """
    expected = "a probability in (0, 1), e.g. 0.9"
    conf = _number(f"confidence={confidence!r}", confidence, expected)
    if not 0 < conf < 1:
        raise ConfigError(f"confidence={confidence!r}; expected {expected}")
    return conf


def _number(label: str, value: object, expected: str, *, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{label}; expected {expected}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{label}; expected {expected}") from None
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ConfigError(f"{label}; expected {expected}")
    return number


def _percent(share: float) -> str:
    return f"{100 * share:.4g}%"
