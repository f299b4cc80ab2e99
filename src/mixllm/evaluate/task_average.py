"""Task-averaged quality: the mean over tasks of each task's mean quality, so that every task
counts the same however many queries it has (RouterDC reports its accuracy this way).

A report shows it, at λ = 0, when every test query has a task label and there are at least two
tasks, beside the per-query mean. Its intervals use the report's bootstrap resamples of test
queries: within a resample each task's mean is over that task's drawn queries (a task that no
query of the resample falls in is left out of that resample's average).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset

__all__ = ["TaskAverage"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class TaskAverage:
    """The tasks of a test split and the single LLM with the best task-averaged quality on it.

    ``member[i, t]`` is 1 when test query ``i`` belongs to ``tasks[t]``; ``best_quality`` is
    ``best``'s quality per test query (missing as 0).

    >>> from mixllm.data.dataset import Outcome
    >>> ds = Dataset.from_outcomes([
    ...     Outcome("q1", "2+2?", "a", 1.0, 0.1, task="math"),
    ...     Outcome("q1", "2+2?", "b", 0.0, 0.1, task="math"),
    ...     Outcome("q2", "3+3?", "a", 1.0, 0.1, task="math"),
    ...     Outcome("q2", "3+3?", "b", 0.0, 0.1, task="math"),
    ...     Outcome("q3", "Hi!", "a", 0.0, 0.1, task="chat"),
    ...     Outcome("q3", "Hi!", "b", 1.0, 0.1, task="chat"),
    ... ])
    >>> avg = TaskAverage.of(ds)
    >>> avg.tasks, avg.best, avg.mean(np.array([1.0, 1.0, 0.0]))
    (('chat', 'math'), 'a', 0.5)
    """

    tasks: tuple[str, ...]
    member: FloatArray
    best: str
    best_quality: FloatArray

    @classmethod
    def of(cls, test: Dataset) -> TaskAverage | None:
        """The task average of ``test``; ``None`` unless every query has a task and there are
        at least two tasks."""
        if not test.has_tasks or len(test.task_names) < 2:
            return None
        tasks = test.task_names
        labels = test.tasks.astype(str)
        member = np.stack([labels == t for t in tasks], axis=1).astype(np.float64)
        quality = np.nan_to_num(test.quality, nan=0.0)
        per_llm = (quality.T @ member / member.sum(axis=0)).mean(axis=1)  # (L,)
        j = int(np.argmax(per_llm))  # ties: the first LLM
        return cls(tasks, member, test.llms[j], quality[:, j])

    def mean(self, values: FloatArray) -> float:
        """The task-averaged mean of per-query ``values`` (missing as 0)."""
        v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        return float((v @ self.member / self.member.sum(axis=0)).mean())

    def resampled(self, counts: FloatArray, values: FloatArray) -> list[float | None]:
        """The task-averaged mean of ``values`` in each resample (``counts``: (B, n) draws per
        test query, as from :func:`~mixllm.evaluate.bootstrap.resample_counts`)."""
        v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        drawn = counts @ self.member  # (B, T) queries drawn per task
        total = counts @ (v[:, None] * self.member)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_task = np.where(drawn > 0, total / drawn, np.nan)
        seen = np.isfinite(per_task)
        sums = np.where(seen, per_task, 0.0).sum(axis=1)
        n_seen = seen.sum(axis=1)
        return [float(s / k) if k else None for s, k in zip(sums, n_seen.tolist())]
