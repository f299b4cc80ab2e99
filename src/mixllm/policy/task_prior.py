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
from mixllm.policy.state import Arrays, BasePredictor, JSONValue, cost_arrays, restore_cost
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import column_means
from mixllm.predict.quality import QualityModel
from mixllm.predict.threads import one_blas_thread
from mixllm.types import Prediction, QueryBatch

__all__ = ["TaskPriorPredictor"]

FloatArray = NDArray[np.float64]
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def _softmax(z: FloatArray) -> FloatArray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


def _picked(quality: NDArray[Any], scores: FloatArray) -> float:
    """Mean recorded quality of the argmax LLMs (a missing outcome counts as the row's mean)."""
    q = np.asarray(quality, dtype=np.float64)
    got = q[np.arange(len(q)), np.argmax(scores, axis=1)]
    seen = np.isfinite(q)
    counts = seen.sum(axis=1)
    row_mean = np.where(seen, q, 0.0).sum(axis=1) / np.maximum(counts, 1)
    filled = np.where(np.isfinite(got), got, np.where(counts > 0, row_mean, np.nan))
    known = np.isfinite(filled)  # a row without any outcome says nothing
    return float(filled[known].mean()) if known.any() else 0.0


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
        Pseudo-count κ of the overall means in each task's prior:
        ``μ_d = (Σ_task q + κ · overall mean) / (n_d + κ)``; small tasks lean on the overall
        best LLM (0: the task's own means).
    seed:
        Seeds folds, KMeans and the quality model.

    Attributes
    ----------
    tasks_:
        The tasks (training labels, or ``cluster<i>``).
    prior_, offset_, weight_:
        ``μ_d`` and ``m_d`` (shape (n_tasks, L)) and ``w_d`` (n_tasks,).
    oof_gain_:
        Per task, quality of the chosen blend minus the prior's (``w = 0``) on the out-of-fold
        picks of its training queries.
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
        weights: Sequence[float] = WEIGHTS,
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
        if not self.weights or any(not (np.isfinite(w) and w >= 0) for w in self.weights):
            raise ConfigError(f"weights={self.weights!r}; expected numbers >= 0")
        if not (isinstance(self.cv, int) and self.cv >= 2):
            raise ConfigError(f"cv={self.cv!r}; expected an integer >= 2")
        if not (isinstance(self.n_clusters, int) and self.n_clusters >= 2):
            raise ConfigError(f"n_clusters={self.n_clusters!r}; expected an integer >= 2")
        if not (isinstance(self.shrink, int | float) and 0 <= self.shrink < float("inf")):
            raise ConfigError(f"shrink={self.shrink!r}; expected a number >= 0")

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> TaskPriorPredictor:
        """Fit the task classifier, the quality model, and per task the prior and weight."""
        self._check_params()
        x = self._check_train(train, queries)
        q = np.asarray(train.quality, dtype=np.float64)
        labels = self._labels(train, x)
        self.tasks_ = tuple(sorted(set(labels)))
        ids = np.array([self.tasks_.index(t) for t in labels])
        with one_blas_thread("scipy.linalg"):
            self._fit_classifier(x, ids)
            oof = np.zeros_like(q)
            folds = np.random.default_rng(self.seed).permutation(len(x)) % self.cv
            for k in range(self.cv if max(self.weights) > 0 else 0):  # w = 0 needs no folds
                fit, val = folds != k, folds == k
                model = QualityModel(self.quality, seed=self.seed).fit(x[fit], q[fit])
                oof[val] = model.predict(x[val])
            self.quality_ = QualityModel(self.quality, seed=self.seed).fit(x, q)
        overall, weights = column_means(q, 0.0), sorted(self.weights)
        prior, offset, weight, gain = [], [], [], []
        for d in range(len(self.tasks_)):
            rows = ids == d
            seen = np.isfinite(q[rows])
            total = np.where(seen, q[rows], 0.0).sum(axis=0) + self.shrink * overall
            count = seen.sum(axis=0) + self.shrink
            mu = np.where(count > 0, total / np.maximum(count, 1e-12), overall)
            m = oof[rows].mean(axis=0)
            scores = [_picked(q[rows], mu + w * (oof[rows] - m)) for w in weights]
            best = int(np.argmax(scores))  # the smallest weight on ties
            base = _picked(q[rows], np.broadcast_to(mu, oof[rows].shape))
            prior.append(mu)
            offset.append(m)
            weight.append(weights[best])
            gain.append(scores[best] - base)
        self.prior_ = np.array(prior, dtype=np.float64)
        self.offset_ = np.array(offset, dtype=np.float64)
        self.weight_ = np.array(weight, dtype=np.float64)
        self.oof_gain_ = np.array(gain, dtype=np.float64)
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

    def _fit_classifier(self, x: FloatArray, ids: NDArray[np.int64]) -> None:
        from sklearn.linear_model import LogisticRegression

        n_tasks = len(self.tasks_)
        self.coef_ = np.zeros((n_tasks, x.shape[1]))
        self.intercept_ = np.zeros(n_tasks)
        if n_tasks < 2:
            return
        clf = LogisticRegression(C=10.0, max_iter=500).fit(x, ids)
        if n_tasks == 2:  # sklearn keeps one row for two classes: logits (0, z)
            self.coef_[1], self.intercept_[1] = clf.coef_[0], clf.intercept_[0]
        else:
            self.coef_, self.intercept_ = clf.coef_.astype(np.float64), clf.intercept_

    # -- predicting ----------------------------------------------------------------------------
    def _input_dim(self) -> int:
        return int(self.coef_.shape[1])

    def task_posterior(self, queries: QueryBatch) -> FloatArray:
        """P(task | query) from the embedding, shape (n, n_tasks) in ``tasks_`` order."""
        x = self._check_queries(queries)
        return _softmax(x @ self.coef_.T + self.intercept_)

    def predict(self, queries: QueryBatch) -> Prediction:
        """The blend under each query's predicted task."""
        return self.predict_tasks(queries, [None] * len(queries))

    def predict_tasks(self, queries: QueryBatch, tasks: Sequence[str | None]) -> Prediction:
        """The blend under each query's ``tasks`` entry: a known task is used as is; ``None``,
        ``""`` or an unknown label → the predicted task."""
        if len(tasks) != len(queries):
            raise DataError(f"{len(tasks)} tasks for {len(queries)} queries; expected one each")
        x = self._check_queries(queries)
        post = self.task_posterior(queries)
        if not self.soft:
            post = np.eye(len(self.tasks_))[post.argmax(axis=1)]
        index = {t: d for d, t in enumerate(self.tasks_)}
        for i, t in enumerate(tasks):
            if t is not None and str(t) in index:
                post[i] = 0.0
                post[i, index[str(t)]] = 1.0
        f = self.quality_.predict(x)
        quality = np.zeros_like(f)
        for d in range(len(self.tasks_)):
            blend = self.prior_[d] + self.weight_[d] * (f - self.offset_[d])
            quality += post[:, d : d + 1] * blend
        return self._prediction(quality, self.cost_.predict(queries.prompt_tokens))

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, object], Arrays]:
        qp, qa = self.quality_.get_state()
        arrays: Arrays = {
            "prior": self.prior_, "offset": self.offset_, "weight": self.weight_,
            "oof_gain": self.oof_gain_, "coef": self.coef_, "intercept": self.intercept_,
            **{f"quality.{k}": v for k, v in qa.items()}, **cost_arrays(self.cost_),
        }  # fmt: skip
        return {"tasks": list(self.tasks_), "quality_model": qp}, arrays

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        tasks = params["tasks"]
        if not isinstance(tasks, list):
            raise PersistError(f"state of 'task-prior': 'tasks' is {tasks!r}, expected a list")
        self.tasks_ = tuple(str(t) for t in tasks)
        qa = {k[8:]: v for k, v in arrays.items() if k.startswith("quality.")}
        self.quality_ = QualityModel.from_state(params["quality_model"], qa)  # type: ignore[arg-type]
        for attr in ("prior", "offset", "weight", "oof_gain", "coef", "intercept"):
            setattr(self, f"{attr}_", np.asarray(arrays[attr], dtype=np.float64))
        self.cost_ = restore_cost(arrays)
