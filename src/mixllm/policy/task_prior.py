"""Per-query quality shrunk towards the task's best LLM: a task prior that predictions must beat.

Where queries come from a few tasks and the LLMs are close (RouterDC's seven 7–8B models), a
per-query quality model often ranks the LLMs worse than "the task's best LLM on the training
split". :class:`TaskPriorPredictor` predicts, for a query of task ``d``,

``q̂(x, l) = μ_d[l] + w_d · (f(x)[l] − m_d[l])``

where ``μ_d`` is the task's mean training quality per LLM (the task-label router), ``f`` a
per-LLM quality model on the embedding, ``m_d`` the task's mean of ``f``'s out-of-fold
predictions, and ``w_d`` the weight, chosen per task from ``weights`` by the quality of the LLMs
that the out-of-fold blend would have picked on the task's training queries (``w = 0``: the
task-label router; ``w = 1``: ``f`` corrected for its per-task bias). A query's task is
predicted from its embedding (a multinomial logistic classifier on the training tasks; the
prediction is the posterior-weighted blend), or given (:meth:`TaskPriorPredictor.predict_tasks`).
Training splits without task labels use KMeans clusters of the embeddings as tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError, PersistError
from mixllm.policy.state import (
    Arrays,
    BasePredictor,
    JSONValue,
    cost_arrays,
    part_state,
    parts_state,
    restore_cost,
)
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.quality import QualityModel
from mixllm.predict.task_blend import BLEND_WEIGHTS, TaskBlend, fit_blend
from mixllm.predict.threads import one_blas_thread
from mixllm.types import Prediction, QueryBatch

__all__ = ["TaskPriorPredictor"]

FloatArray = NDArray[np.float64]


class TaskPriorPredictor(BasePredictor):
    """Per-task blend of the task prior and a per-query quality model (module docstring).

    Parameters
    ----------
    quality:
        Kind of the per-LLM quality model ``f`` (:class:`~mixllm.predict.QualityModel`).
    weights:
        Candidate blend weights ``w_d``; ties go to the smaller weight (closer to the prior).
    cv:
        Folds of the out-of-fold predictions that choose the weights.
    n_clusters:
        Number of KMeans tasks when the training split has no task labels.
    soft:
        Blend the tasks by the classifier's posterior (``True``) or use its most likely task.
    shrink:
        Pseudo-count κ of each task's prior (:class:`~mixllm.predict.task_blend.TaskBlend`):
        used alone (``w_d = 0``), ``μ_d = (Σ_task q + κ · overall mean) / (n_d + κ)``, so small
        tasks lean on the overall best LLM (0: the task's own means).
    seed:
        Seeds folds, KMeans and the quality model.

    Attributes
    ----------
    blend_:
        The fitted :class:`~mixllm.predict.task_blend.TaskBlend` (its ``prior_``, ``offset_``
        are ``μ_d`` and ``m_d``); ``tasks_`` (training labels, or ``cluster<i>``), ``weight_``
        (``w_d`` per task) and ``oof_gain_`` (per task, quality of the chosen blend minus the
        prior's, ``w = 0``, on the out-of-fold picks of its training queries) are read from it.
    """

    name = "task-prior"
    kind: ClassVar[str] = "task-prior"
    _param_names: ClassVar[tuple[str, ...]] = (
        "quality", "weights", "cv", "n_clusters", "soft", "shrink", "seed",
    )  # fmt: skip

    def __init__(
        self,
        quality: str = "logistic",
        *,
        weights: Sequence[float] = BLEND_WEIGHTS,
        cv: int = 5,
        n_clusters: int = 8,
        soft: bool = True,
        shrink: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.quality = quality
        self.weights = tuple(float(w) for w in weights)
        self.cv = cv
        self.n_clusters = n_clusters
        self.soft = soft
        self.shrink = shrink
        self.seed = seed

    def _check_params(self) -> None:
        TaskBlend(self.weights, shrink=self.shrink)  # checks the weights and shrink
        if not (isinstance(self.cv, int) and self.cv >= 2):
            raise ConfigError(f"cv={self.cv!r}; expected an integer >= 2")
        if not (isinstance(self.n_clusters, int) and self.n_clusters >= 2):
            raise ConfigError(f"n_clusters={self.n_clusters!r}; expected an integer >= 2")

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> TaskPriorPredictor:
        """Fit the task classifier, the quality model, and per task the prior and weight."""
        self._check_params()
        x = self._check_train(train, queries)
        q = np.asarray(train.quality, dtype=np.float64)
        labels = self._labels(train, x)
        with one_blas_thread("scipy.linalg"):
            self.blend_ = fit_blend(
                self.quality, x, q, labels, weights=self.weights, prefer=0.0, shrink=self.shrink,
                soft=self.soft, cv=self.cv, seed=self.seed,
            )  # fmt: skip
            self.quality_ = QualityModel(self.quality, seed=self.seed).fit(x, q)
        self.cost_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        self.llms_ = train.llms
        return self

    def _labels(self, train: Dataset, x: FloatArray) -> list[str]:
        if train.has_tasks and len(train.task_names) >= 2:
            return [str(t) for t in train.tasks]
        from sklearn.cluster import KMeans

        k = min(self.n_clusters, len(x))
        found = KMeans(k, n_init=3, random_state=self.seed).fit_predict(x)
        return [f"cluster{v}" for v in found.tolist()]

    @property
    def tasks_(self) -> tuple[str, ...]:
        """The tasks (training labels, or ``cluster<i>``)."""
        return self.blend_.tasks_

    @property
    def weight_(self) -> FloatArray:
        """``w_d`` per task."""
        return self.blend_.task_weight_

    @property
    def oof_gain_(self) -> FloatArray:
        """Per task, the out-of-fold quality of the chosen blend minus the prior's."""
        return self.blend_.gain_

    # -- predicting ----------------------------------------------------------------------------
    def _input_dim(self) -> int:
        return int(self.blend_.coef_.shape[1])

    def task_posterior(self, queries: QueryBatch) -> FloatArray:
        """P(task | query) from the embedding, shape (n, n_tasks) in ``tasks_`` order."""
        return self.blend_.posterior(self._check_queries(queries))

    def predict(self, queries: QueryBatch) -> Prediction:
        """The blend under each query's predicted task."""
        return self.predict_tasks(queries, [None] * len(queries))

    def predict_tasks(self, queries: QueryBatch, tasks: Sequence[str | None]) -> Prediction:
        """The blend under each query's ``tasks`` entry: a known task is used as is; ``None``,
        ``""`` or an unknown label → the predicted task."""
        if len(tasks) != len(queries):
            raise DataError(f"{len(tasks)} tasks for {len(queries)} queries; expected one each")
        x = self._check_queries(queries)
        post = self.blend_.posterior(x)
        index = {t: d for d, t in enumerate(self.tasks_)}
        for i, t in enumerate(tasks):
            if t is not None and str(t) in index:
                post[i] = 0.0
                post[i, index[str(t)]] = 1.0
        quality = self.blend_.apply(self.quality_.predict(x), post)
        return self._prediction(quality, self.cost_.predict(queries.prompt_tokens))

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, object], Arrays]:
        bp, ba = self.blend_.get_state()
        params, arrays = parts_state({"quality": self.quality_})
        arrays.update({**ba, **cost_arrays(self.cost_)})
        return {"tasks": bp.pop("tasks"), "quality_model": params["quality"], "blend": bp}, arrays

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        blend = params.get("blend", {"weights": list(self.weights), "shrink": self.shrink})
        if not isinstance(blend, dict):
            raise PersistError(f"state of 'task-prior': 'blend' is {blend!r}, expected an object")
        ba = {"gain": arrays.get("oof_gain"), **arrays}  # saved before the blend was a part
        self.blend_ = TaskBlend.from_state({**blend, "tasks": params["tasks"]}, ba)
        _, qa = part_state(params, arrays, "quality")
        self.quality_ = QualityModel.from_state(params["quality_model"], qa)  # type: ignore[arg-type]
        self.cost_ = restore_cost(arrays)
