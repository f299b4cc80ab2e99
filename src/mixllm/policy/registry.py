"""Predictors by name: ``make_predictor("knn", seed=0)`` and ``predictor_from_state`` for saved
ones. Names: those in :data:`PREDICTORS`, plus ``single:<llm name>``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from mixllm.errors import ConfigError
from mixllm.policy.bandits import EpsilonGreedyPredictor, LinUCBPredictor, ThompsonPredictor
from mixllm.policy.knn import KNNPredictor
from mixllm.policy.linear import LogisticPredictor
from mixllm.policy.llm_bandit import LLMBanditPredictor
from mixllm.policy.metallm import MetaLLMPredictor
from mixllm.policy.mf import MatrixFactorizationPredictor
from mixllm.policy.mixllm import MixLLMPredictor
from mixllm.policy.mlp import MLPPredictor
from mixllm.policy.simple import (
    CheapestPredictor,
    OraclePredictor,
    RandomPredictor,
    SinglePredictor,
)
from mixllm.policy.state import BasePredictor, JSONValue
from mixllm.policy.task_best import TaskBestPredictor
from mixllm.policy.task_prior import TaskPriorPredictor

__all__ = [
    "PREDICTORS",
    "check_predictor_name",
    "constructor_kwargs",
    "make_predictor",
    "predictor_from_state",
]

#: Registered names that need no argument (``single:<llm>`` is the one pattern besides them).
PREDICTORS: tuple[str, ...] = (
    "random", "cheapest", "oracle", "knn", "logistic", "mlp", "mf", "mixllm",
    "linucb", "thompson", "egreedy", "metallm", "llm-bandit", "task-best", "task-prior",
)  # fmt: skip


def _classes() -> dict[str, type[BasePredictor]]:
    return {
        cls.kind: cls
        for cls in (
            RandomPredictor,
            SinglePredictor,
            CheapestPredictor,
            OraclePredictor,
            KNNPredictor,
            LogisticPredictor,
            MLPPredictor,
            MatrixFactorizationPredictor,
            MixLLMPredictor,
            LinUCBPredictor,
            ThompsonPredictor,
            EpsilonGreedyPredictor,
            MetaLLMPredictor,
            LLMBanditPredictor,
            TaskBestPredictor,
            TaskPriorPredictor,
        )
    }


def _lookup(name: str, *, bare_single: bool = False) -> type[BasePredictor]:
    kind = "single" if name.startswith("single:") else name
    cls = _classes().get(kind)
    if cls is None or (name == "single" and not bare_single):
        known = [*PREDICTORS, "single:<llm>"]
        raise ConfigError(f"unknown router {name!r}; known: {known}")
    return cls


def check_predictor_name(name: str) -> None:
    """Raise :class:`~mixllm.errors.ConfigError` unless ``name`` is a registered router name.

    >>> check_predictor_name("single:claude-v1")
    >>> check_predictor_name("single:")
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: router 'single:' names no LLM; expected 'single:<llm name>'
    """
    _lookup(name)
    if name.startswith("single:") and not name.split(":", 1)[1]:
        raise ConfigError(f"router {name!r} names no LLM; expected 'single:<llm name>'")


def make_predictor(name: str, *, seed: int = 0, **kwargs: Any) -> BasePredictor:
    """A new, unfitted predictor by registered name.

    ``seed`` goes to the predictors that draw random numbers; other keyword arguments go to the
    constructor (e.g. ``k=10`` for ``knn``, ``outcomes=test_set`` for ``oracle``).

    >>> make_predictor("knn", k=5).k
    5
    >>> make_predictor("single:gpt-4").name
    'single:gpt-4'
    >>> make_predictor("knnn")
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: unknown router 'knnn'; known: ['random', 'cheapest', 'oracle', \
'knn', 'logistic', 'mlp', 'mf', 'mixllm', 'linucb', 'thompson', 'egreedy', 'metallm', \
'llm-bandit', 'task-best', 'task-prior', 'single:<llm>']
    """
    check_predictor_name(name)
    cls = _lookup(name)
    kwargs = constructor_kwargs(cls, f"router {name!r}", seed, kwargs)
    if cls is SinglePredictor:
        kwargs["llm"] = name.split(":", 1)[1]
    return cls(**kwargs)


def constructor_kwargs(
    cls: type[Any], what: str, seed: int, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """``kwargs`` plus ``seed`` where ``cls`` takes one; :class:`~mixllm.errors.ConfigError`
    naming ``what`` for an argument ``cls`` does not take."""
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"{what} got unknown arguments {unknown}; it accepts {sorted(accepted)}")
    return {**kwargs, "seed": seed} if "seed" in accepted else dict(kwargs)


def predictor_from_state(
    kind: str, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]
) -> BasePredictor:
    """Restore a fitted predictor from ``get_state()``'s output.

    ``kind`` is the predictor's ``kind`` or its ``name`` (``single:<llm>`` works too).
    """
    return _lookup(kind, bare_single=True).from_state(params, arrays)
