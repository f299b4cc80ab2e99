"""Deterministic train/test splits: seeded random by query, and by task (out of distribution)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError

__all__ = ["split_by_task", "split_random"]


def split_random(ds: Dataset, *, test_size: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split queries at random (seeded) into train and test; default 80/20.

    >>> from mixllm.data.dataset import Dataset, Outcome
    >>> ds = Dataset.from_outcomes([Outcome(f"q{i}", "p", "m", 1.0, 0.0) for i in range(10)])
    >>> train, test = split_random(ds, test_size=0.2, seed=0)
    >>> len(train), len(test)
    (8, 2)
    """
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size={test_size!r}; expected a fraction strictly between 0 and 1")
    n = len(ds)
    n_test = round(n * test_size)
    if n_test == 0 or n_test == n:
        raise DataError(f"{ds.name}: {n} queries cannot be split with test_size={test_size}")
    order = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    return ds.subset(train_idx), ds.subset(test_idx)


def split_by_task(ds: Dataset, test_tasks: Sequence[str]) -> tuple[Dataset, Dataset]:
    """Split by task label: queries of ``test_tasks`` form the test set (out of distribution)."""
    if not ds.has_tasks:
        raise DataError(f"{ds.name}: a task split needs a task label on every query")
    known = ds.task_names
    unknown = [t for t in test_tasks if t not in known]
    if unknown or not test_tasks:
        raise ConfigError(f"test tasks {list(test_tasks)!r}; known tasks: {list(known)}")
    is_test = np.isin(ds.tasks.astype(str), list(test_tasks))
    if is_test.all():
        raise ConfigError(f"test tasks {list(test_tasks)!r} leave no training queries")
    return ds.subset(np.flatnonzero(~is_test)), ds.subset(np.flatnonzero(is_test))
