"""The task-label router: per task, the LLM with the best mean quality on the training split.

A strong baseline wherever queries come from a few tasks whose best LLM differs (RouterDC's six
tasks × seven open LLMs): it needs no per-query model, only the task. Told a query's task
(:meth:`TaskBestPredictor.predict_tasks`), it predicts that task's training means; a task it
never saw gets the overall means; a query without a task (and every query of :meth:`predict`,
since a :class:`~mixllm.types.QueryBatch` carries none) goes to its nearest task by cosine
similarity of its embedding to the tasks' mean embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import DataError
from mixllm.policy.state import Arrays, BasePredictor, JSONValue, cost_arrays, restore_cost
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import column_means
from mixllm.types import Prediction, QueryBatch

__all__ = ["TaskBestPredictor"]

FloatArray = NDArray[np.float64]


def _unit(x: FloatArray) -> FloatArray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    out: FloatArray = x / np.maximum(norm, 1e-12)
    return out


class TaskBestPredictor(BasePredictor):
    """Predicted quality of an LLM on a query = its mean training quality on the query's task.

    At λ = 0 the router then sends every query of a task to that task's best training LLM.
    Missing outcomes are ignored in the means; an LLM with no outcome on a task gets its
    overall training mean there. Costs come from
    :class:`~mixllm.predict.cost.MeanLengthCostModel`.

    Attributes
    ----------
    tasks_:
        The training tasks (sorted); empty when the training split has no task labels, and then
        every query gets the overall means.
    task_quality_:
        Mean training quality per task and LLM, shape (n_tasks, L).
    centroids_:
        Unit mean embedding per task, shape (n_tasks, d).
    overall_quality_:
        Mean training quality per LLM, for a task never seen
        (0 for an LLM with no outcome at all).

    Examples
    --------
    >>> from mixllm.data.dataset import Outcome
    >>> rows = [Outcome(f"{t}{i}", f"{t} {i}", m, float(m == best), 0.0, task=t)
    ...         for t, best in (("math", "a"), ("code", "b")) for i in range(3) for m in "ab"]
    >>> ds = Dataset.from_outcomes(rows)
    >>> x = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3, dtype=np.float32)
    >>> q = QueryBatch(tuple(ds.query_ids), tuple(ds.prompts), x, ds.prompt_tokens)
    >>> p = TaskBestPredictor().fit(ds, q)
    >>> p.predict_tasks(q, ["code", "math", "poetry", None, None, None]).quality[:, 0].tolist()
    [0.0, 1.0, 0.5, 0.0, 0.0, 0.0]
    >>> p.predict(q).quality.argmax(axis=1).tolist()  # nearest task by embedding
    [0, 0, 0, 1, 1, 1]
    """

    name = "task-best"
    kind: ClassVar[str] = "task-best"

    def fit(self, train: Dataset, queries: QueryBatch) -> TaskBestPredictor:
        """Learn each task's mean quality per LLM and each task's mean embedding."""
        x = self._check_train(train, queries)
        self.overall_quality_ = column_means(train.quality, 0.0)
        labels = np.array(["" if t is None else str(t) for t in train.tasks], dtype=object)
        self.tasks_ = tuple(sorted({str(t) for t in labels if t}))
        quality, centroids = [], []
        for task in self.tasks_:
            rows = labels == task
            means = column_means(train.quality[rows])
            quality.append(np.where(np.isfinite(means), means, self.overall_quality_))
            centroids.append(x[rows].mean(axis=0))
        self.task_quality_ = np.array(quality, dtype=np.float64).reshape(-1, len(train.llms))
        self.centroids_ = _unit(np.array(centroids, dtype=np.float64).reshape(-1, x.shape[1]))
        self.cost_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        self.llms_ = train.llms
        return self

    def _input_dim(self) -> int:
        return int(self.centroids_.shape[1])

    def nearest_tasks(self, queries: QueryBatch) -> list[str | None]:
        """The training task whose mean embedding is closest (cosine) to each query's;
        ``None`` for every query when the training split had no tasks."""
        x = self._check_queries(queries)
        if not self.tasks_:
            return [None] * len(queries)
        near = np.argmax(_unit(x) @ self.centroids_.T, axis=1)
        return [self.tasks_[k] for k in near.tolist()]

    def predict(self, queries: QueryBatch) -> Prediction:
        """Each query's nearest task's mean quality per LLM (no task is known here)."""
        return self.predict_tasks(queries, [None] * len(queries))

    def predict_tasks(self, queries: QueryBatch, tasks: Sequence[str | None]) -> Prediction:
        """Quality of each query's ``tasks`` entry: a training task → its means; another label
        → the overall means; ``None`` or ``""`` → the nearest training task's means."""
        self._check_queries(queries)
        if len(tasks) != len(queries):
            raise DataError(f"{len(tasks)} tasks for {len(queries)} queries; expected one each")
        labels: list[str | None] = [None if t is None or t == "" else str(t) for t in tasks]
        if any(t is None for t in labels):
            near = self.nearest_tasks(queries)
            labels = [n if t is None else t for t, n in zip(labels, near)]
        index = {t: k for k, t in enumerate(self.tasks_)}
        quality = np.array(
            [self.task_quality_[index[t]] if t in index else self.overall_quality_ for t in labels],
            dtype=np.float64,
        ).reshape(len(queries), len(self.llms_))
        return self._prediction(quality, self.cost_.predict(queries.prompt_tokens))

    def _state(self) -> tuple[dict[str, object], Arrays]:
        return {"tasks": list(self.tasks_)}, {
            "task_quality": self.task_quality_,
            "centroids": self.centroids_,
            "overall_quality": self.overall_quality_,
            **cost_arrays(self.cost_),
        }

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        tasks = params["tasks"]
        if not isinstance(tasks, list):
            raise DataError(f"state of 'task-best': 'tasks' is {tasks!r}, expected a list")
        self.tasks_ = tuple(str(t) for t in tasks)
        self.task_quality_ = np.asarray(arrays["task_quality"], dtype=np.float64)
        self.centroids_ = np.asarray(arrays["centroids"], dtype=np.float64)
        self.overall_quality_ = np.asarray(arrays["overall_quality"], dtype=np.float64)
        self.cost_ = restore_cost(arrays)
