"""A task prior that per-query quality predictions must beat (many-domain data).

Where queries come from a few tasks and the LLMs are close (RouterDC's seven 7–8B models), a
per-query quality model often ranks the LLMs worse than "the task's best LLM on the training
split". :class:`TaskBlend` predicts, for a query of task ``d`` and LLM ``l``,

``q̂(x, l) = μ_d[l] + w_d · (f(x)[l] − m_d[l])``

where ``μ_d`` is the task's mean training quality per LLM (the task-label router), ``f`` a
per-LLM quality model, ``m_d`` the task's mean of ``f``'s out-of-fold predictions, and ``w_d``
the weight chosen per task from ``weights`` by the quality of the LLMs that the out-of-fold
blend would have picked on the task's training queries (``w = 0``: the task-label router;
``w = 1``: ``f`` corrected for its per-task bias); ties go to the weight closest to
``prefer`` (1 by default: the per-query model is kept unless the prior picks better).
``μ_d`` is shrunk by ``shrink`` pseudo-observations towards ``(1 − w)`` × the overall means
``+ w`` × ``m_d`` (``w`` capped at 1): used alone (``w = 0``), a small task's prior leans on
the overall best LLM rather than on a few noisy means; blended (``w = 1``), its correction of
the model's bias on the task, ``μ_d − m_d``, shrinks towards none. A query's task is not known
when routing: a multinomial logistic classifier on the training tasks gives its posterior, and
the prediction is the posterior-weighted blend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, PersistError
from mixllm.predict.features import column_means
from mixllm.predict.quality import QualityModel

__all__ = ["BLEND_WEIGHTS", "TaskBlend", "fit_blend", "out_of_fold"]

FloatArray = NDArray[np.float64]
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Candidate weights ``w_d`` of the per-query model in each task's blend."""


def out_of_fold(
    fit_predict: Callable[[FloatArray, FloatArray, FloatArray], FloatArray],
    x: FloatArray,
    quality: FloatArray,
    cv: int,
    seed: int,
) -> FloatArray:
    """Predictions of ``fit_predict(x_fit, quality_fit, x_val)`` for each row from the fold
    that left it out (``cv`` seeded folds), shape of ``quality``."""
    out = np.zeros(quality.shape, dtype=np.float64)
    folds = np.random.default_rng(seed).permutation(len(x)) % cv
    for k in range(cv):
        fit, val = folds != k, folds == k
        out[val] = fit_predict(x[fit], quality[fit], x[val])
    return out


def fit_blend(
    kind: str | QualityModel,
    x: FloatArray,
    quality: FloatArray,
    labels: Sequence[str],
    *,
    weights: Sequence[float] = BLEND_WEIGHTS,
    prefer: float = 1.0,
    shrink: float = 0.0,
    soft: bool = True,
    cv: int = 5,
    seed: int = 0,
) -> TaskBlend:
    """A :class:`TaskBlend` of a quality model on ``x``, from its out-of-fold predictions in
    ``cv`` seeded folds (none needed when every weight is 0). ``kind``: a
    :class:`~mixllm.predict.QualityModel` kind, tuned in each fold; or a model fitted on all of
    ``x``, whose kind and per-LLM hyper-parameter each fold reuses (no tuning in the folds)."""
    blend = TaskBlend(weights, prefer=prefer, shrink=shrink, soft=soft)
    oof = np.zeros_like(quality)
    if max(blend.weights) > 0:
        for cols, model in _fold_models(kind, quality.shape[1], seed):

            def fit_predict(xf: FloatArray, qf: FloatArray, xv: FloatArray) -> FloatArray:
                return model().fit(xf, qf).predict(xv)  # noqa: B023 (called in this loop)

            oof[:, cols] = out_of_fold(fit_predict, x, quality[:, cols], cv, seed)
    return blend.fit(x, labels, quality, oof)


def _fold_models(
    kind: str | QualityModel, n_llms: int, seed: int
) -> list[tuple[list[int], Callable[[], QualityModel]]]:
    """The LLM columns that share a fold model, and how to make it: one tuned model of ``kind``
    for all; or, from a fitted model, one per (kind, hyper-parameter) it chose."""
    if isinstance(kind, str):
        return [(list(range(n_llms)), lambda: QualityModel(kind, seed=seed))]
    groups: dict[tuple[str, float], list[int]] = {}
    for j, (used, value) in enumerate(zip(kind.kinds_, kind.values_, strict=True)):
        key = (kind.kind_, float("nan")) if used == "constant" else (used, float(value))
        groups.setdefault(key, []).append(j)

    def make(used: str, value: float) -> Callable[[], QualityModel]:
        if not np.isfinite(value):  # too few outcomes when fitted: tune as usual
            return lambda: QualityModel(used, seed=seed)
        return lambda: QualityModel(used, seed=seed, grids={used: (value,)})

    return [(cols, make(*key)) for key, cols in groups.items()]


def _picked(quality: FloatArray, scores: FloatArray) -> float:
    """Mean recorded quality of the argmax LLMs (a missing outcome counts as its row's mean; a
    row without any outcome does not count)."""
    got = quality[np.arange(len(quality)), np.argmax(scores, axis=1)]
    seen = np.isfinite(quality)
    counts = seen.sum(axis=1)
    row_mean = np.where(seen, quality, 0.0).sum(axis=1) / np.maximum(counts, 1)
    filled = np.where(np.isfinite(got), got, np.where(counts > 0, row_mean, np.nan))
    known = np.isfinite(filled)
    return float(filled[known].mean()) if known.any() else 0.0


def _softmax(z: FloatArray) -> FloatArray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


class TaskBlend:
    """Per task, the training means per LLM blended with a per-query model (module docstring).

    Parameters
    ----------
    weights:
        Candidate weights ``w_d``.
    prefer:
        The weight that ties go to (the candidate closest to it).
    shrink:
        Pseudo-count κ of each task's prior: ``μ_d = (Σ_task q + κ · t_d) / (n_d + κ)``, with
        ``t_d = (1 − w) · overall mean + w · m_d`` (``w`` capped at 1).
    soft:
        Blend the tasks by the classifier's posterior (``True``) or use its most likely task.

    Attributes
    ----------
    tasks_:
        The training tasks.
    prior_, offset_, weight_:
        ``μ_d``, ``m_d`` and ``w_d`` per task and LLM, shape (n_tasks, L); an LLM added
        without outcomes has ``μ_d = m_d = 0`` and ``w_d = 1`` (the per-query model's
        prediction as is).
    task_weight_:
        Per task, the chosen weight.
    gain_:
        Per task, the out-of-fold quality of the chosen prediction minus the prior's alone.
    """

    def __init__(
        self,
        weights: Sequence[float] = BLEND_WEIGHTS,
        *,
        prefer: float = 1.0,
        shrink: float = 0.0,
        soft: bool = True,
    ) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.prefer = float(prefer)
        self.shrink = shrink
        self.soft = soft
        if not self.weights or any(not (np.isfinite(w) and w >= 0) for w in self.weights):
            raise ConfigError(f"weights={weights!r}; expected numbers >= 0")
        if not (isinstance(shrink, int | float) and 0 <= shrink < float("inf")):
            raise ConfigError(f"shrink={shrink!r}; expected a number >= 0")

    def fit(
        self, x: FloatArray, labels: Sequence[str], quality: FloatArray, oof: FloatArray
    ) -> TaskBlend:
        """Fit the task classifier on ``x`` (rows of queries) and ``labels``, and per task the
        prior and weight from the recorded ``quality`` (NaN: missing) and the per-query
        model's out-of-fold predictions ``oof`` (both shape (n, L))."""
        self.tasks_ = tuple(sorted(set(labels)))
        ids = np.array([self.tasks_.index(t) for t in labels])
        self._fit_classifier(x, ids)
        overall, weights = column_means(quality, 0.0), sorted(self.weights)
        n_llms = quality.shape[1]
        shape = (len(self.tasks_), n_llms)
        self.prior_, self.offset_ = np.zeros(shape), np.zeros(shape)
        self.weight_ = np.ones(shape)
        self.task_weight_ = np.ones(len(self.tasks_))
        self.gain_ = np.zeros(len(self.tasks_))
        for d in range(len(self.tasks_)):
            q, f = quality[ids == d], oof[ids == d]
            seen = np.isfinite(q)
            total, count = np.where(seen, q, 0.0).sum(axis=0), seen.sum(axis=0)
            m = f.mean(axis=0)
            mus = [self._shrunk(total, count, overall, m, w) for w in weights]
            alone = self._shrunk(total, count, overall, m, 0.0)
            scores = [_picked(q, mu + w * (f - m)) for mu, w in zip(mus, weights, strict=True)]
            best = max(
                range(len(weights)), key=lambda i: (scores[i], -abs(weights[i] - self.prefer))
            )
            self.prior_[d], self.offset_[d] = mus[best], m
            self.weight_[d] = self.task_weight_[d] = weights[best]
            self.gain_[d] = scores[best] - _picked(q, np.broadcast_to(alone, f.shape))
        return self

    def _shrunk(
        self, total: FloatArray, count: FloatArray, overall: FloatArray, m: FloatArray, w: float
    ) -> FloatArray:
        """A task's means (``total`` / ``count`` per LLM) shrunk towards the target of ``w``."""
        target = (1.0 - min(w, 1.0)) * overall + min(w, 1.0) * m
        kappa = self.shrink
        out: FloatArray = np.where(
            count + kappa > 0, (total + kappa * target) / np.maximum(count + kappa, 1e-12), target
        )
        return out

    def _fit_classifier(self, x: FloatArray, ids: NDArray[np.intp]) -> None:
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

    def posterior(self, x: FloatArray) -> FloatArray:
        """P(task | query) from ``x``, shape (n, n_tasks) in ``tasks_`` order (one-hot at the
        most likely task when not ``soft``)."""
        post = _softmax(x @ self.coef_.T + self.intercept_)
        if not self.soft:
            post = np.eye(len(self.tasks_))[post.argmax(axis=1)]
        return post

    def apply(self, f: FloatArray, post: FloatArray) -> FloatArray:
        """The blend of the per-query predictions ``f`` (n, L) under the task posterior
        ``post`` (n, n_tasks)."""
        out = np.zeros_like(f)
        for d in range(len(self.tasks_)):
            out += post[:, d : d + 1] * (self.prior_[d] + self.weight_[d] * (f - self.offset_[d]))
        return out

    def add_llm(
        self, x: FloatArray | None = None, quality: FloatArray | None = None,
        f: FloatArray | None = None,
    ) -> None:  # fmt: skip
        """One more LLM (a column). With its outcomes (``quality`` on the queries ``x``, and
        the per-query model's predictions ``f`` for it there), each blended task gets its
        prior from them, the task's posterior mass as weights; without them (or in a task
        where none of its queries fall) the per-query model's prediction is used as is."""
        prior, offset = np.zeros(len(self.tasks_)), np.zeros(len(self.tasks_))
        weight = np.ones(len(self.tasks_))
        if x is not None and quality is not None and f is not None and len(x):
            post, seen = self.posterior(x), np.isfinite(quality)
            overall = np.array([quality[seen].mean() if seen.any() else 0.0])
            for d in range(len(self.tasks_)):
                mass = post[:, d]
                n = float(mass[seen].sum())
                if n < 1.0:
                    continue
                total = np.array([(mass * np.where(seen, quality, 0.0)).sum()])
                offset[d] = float((mass * f).sum() / mass.sum())
                w = float(self.task_weight_[d])
                prior[d] = self._shrunk(total, np.array([n]), overall, offset[d : d + 1], w)[0]
                weight[d] = w
        self.prior_ = np.column_stack([self.prior_, prior])
        self.offset_ = np.column_stack([self.offset_, offset])
        self.weight_ = np.column_stack([self.weight_, weight])

    def remove_llm(self, j: int) -> None:
        """Forget LLM ``j`` (a column)."""
        for attr in ("prior_", "offset_", "weight_"):
            setattr(self, attr, np.delete(getattr(self, attr), j, axis=1))

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """JSON-able parameters and arrays (restored by :meth:`from_state`)."""
        params = {"tasks": list(self.tasks_), "weights": list(self.weights),
                  "prefer": self.prefer, "shrink": self.shrink, "soft": self.soft}  # fmt: skip
        arrays = {
            "prior": self.prior_, "offset": self.offset_, "weight": self.weight_,
            "task_weight": self.task_weight_, "gain": self.gain_,
            "coef": self.coef_, "intercept": self.intercept_,
        }  # fmt: skip
        return params, arrays

    @classmethod
    def from_state(cls, params: Mapping[str, Any], arrays: Mapping[str, Any]) -> TaskBlend:
        """The blend saved by :meth:`get_state`."""
        tasks = params.get("tasks")
        if not isinstance(tasks, list):
            raise PersistError(f"state of a task blend: 'tasks' is {tasks!r}, expected a list")
        out = cls(
            params.get("weights", BLEND_WEIGHTS),
            prefer=float(params.get("prefer", 0.0)),  # saved before the choice: the prior
            shrink=float(params.get("shrink", 0.0)),
            soft=bool(params.get("soft", True)),
        )
        out.tasks_ = tuple(str(t) for t in tasks)
        for attr in ("prior", "offset", "coef", "intercept", "gain"):
            setattr(out, f"{attr}_", np.asarray(arrays[attr], dtype=np.float64))
        weight = np.asarray(arrays["weight"], dtype=np.float64)
        out.weight_ = np.broadcast_to(weight.reshape(len(tasks), -1), out.prior_.shape).copy()
        out.task_weight_ = np.asarray(arrays.get("task_weight", out.weight_[:, 0]), np.float64)
        return out
