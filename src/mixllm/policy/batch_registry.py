"""Batch policies by name (:mod:`mixllm.policy.batch`): ``make_batch_policy("optllm", seed=0)``.

They are imported when made, so listing the names costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

from mixllm.errors import ConfigError
from mixllm.policy.batch import BatchPolicy
from mixllm.policy.registry import PREDICTORS, check_predictor_name, constructor_kwargs

__all__ = ["BATCH_POLICIES", "check_router_name", "is_batch_policy", "make_batch_policy"]

#: Registered batch policies: name → ``module:Class`` under :mod:`mixllm.policy`.
_WHERE: dict[str, str] = {
    "optllm": "optllm:OptLLMPolicy",
    "cascade": "cascade:CascadePolicy",
    "cascade-vote": "cascade_vote:VoteCascadePolicy",
    "cascade-router": "cascade_router:CascadeRouterPolicy",
    "small-uncertainty": "uncertainty_small:SmallUncertaintyPolicy",
    "pickllm": "pickllm:PickLLMPolicy",
    "pickllm-la": "pickllm:PickLLMAutomatonPolicy",
    "pickllm-q": "pickllm:PickLLMQPolicy",
}

#: Their names, in the order reports list them.
BATCH_POLICIES: tuple[str, ...] = tuple(_WHERE)


def is_batch_policy(name: str) -> bool:
    """Whether ``name`` is a registered batch policy (and not a predictor).

    >>> is_batch_policy("knn"), is_batch_policy("cascade")
    (False, True)
    """
    return name in _WHERE


def check_router_name(name: str) -> None:
    """Raise :class:`~mixllm.errors.ConfigError` unless ``name`` is a predictor's registered
    name (:func:`~mixllm.policy.check_predictor_name`) or a batch policy's, naming both lists."""
    if is_batch_policy(name):
        return
    try:
        check_predictor_name(name)
    except ConfigError as err:
        if not str(err).startswith("unknown router"):
            raise
        known = [*PREDICTORS, "single:<llm>", *BATCH_POLICIES]
        raise ConfigError(f"unknown router {name!r}; known: {known}") from None


def make_batch_policy(name: str, *, seed: int = 0, **kwargs: Any) -> BatchPolicy:
    """A new, unfitted batch policy by registered name; ``seed`` goes to the ones that draw
    random numbers, other keyword arguments to the constructor.

    >>> make_batch_policy("nope")
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: unknown batch policy 'nope'; known: ['optllm', 'cascade', \
'cascade-vote', 'cascade-router', 'small-uncertainty', 'pickllm', 'pickllm-la', 'pickllm-q']
    """
    if name not in _WHERE:
        raise ConfigError(f"unknown batch policy {name!r}; known: {list(BATCH_POLICIES)}")
    module, _, cls_name = _WHERE[name].partition(":")
    cls = getattr(importlib.import_module(f"mixllm.policy.{module}"), cls_name)
    policy: BatchPolicy = cls(**constructor_kwargs(cls, f"batch policy {name!r}", seed, kwargs))
    return policy
