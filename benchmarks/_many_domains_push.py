"""Prototypes for ``benchmarks/many_domains.py --push``: routers that must beat the task prior.

Each entry makes a router (fit on the training split, predict quality for the test split). The
task prior blend lives in :mod:`mixllm.policy.task_prior`; the others are sketched here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _many_domains_core import F32, F64, Data, Router, batch
from mixllm.data import Dataset


def _prior(**kwargs: object) -> Callable[[Data, np.ndarray, int], Router]:
    told = bool(kwargs.pop("told", False))

    def make(data: Data, tr: np.ndarray, seed: int) -> Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            from mixllm.policy.task_prior import TaskPriorPredictor

            p = TaskPriorPredictor(seed=seed, **kwargs).fit(train, batch(train, xtr))  # type: ignore[arg-type]
            tasks = [str(t) for t in test.tasks] if told else [None] * len(test)
            return p.predict_tasks(batch(test, xte), tasks).quality

        return run

    return make


def _onehot(scale: float) -> Callable[[Data, np.ndarray, int], Router]:
    """Quality model on [embedding, scale × P(task | embedding)] (per-task intercepts)."""

    def make(data: Data, tr: np.ndarray, seed: int) -> Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            from sklearn.linear_model import LogisticRegression

            from mixllm.predict.quality import QualityModel

            tasks = np.array([str(t) for t in train.tasks])
            clf = LogisticRegression(C=10.0, max_iter=500).fit(xtr, tasks)
            names = list(clf.classes_)
            hot = np.eye(len(names))[[names.index(t) for t in tasks]]
            ftr = np.hstack([xtr, scale * hot])
            fte = np.hstack([xte, scale * clf.predict_proba(xte)])
            model = QualityModel("logistic", seed=seed).fit(ftr, train.quality)
            return model.predict(fte)

        return run

    return make


ROUTERS: dict[str, Callable[[Data, np.ndarray, int], Router]] = {
    "task prior blend": _prior(),
    "task prior blend, hard task": _prior(soft=False),
    "task prior blend, shrink 100": _prior(shrink=100.0),
    "per-task calibration (w = 1)": _prior(weights=(1.0,)),
    "quality on [x, task one-hot]": _onehot(1.0),
}
#: What ``--push`` runs over all seeds (the others were measured on seed 0 only).
DEFAULT = ("task prior blend", "task prior blend, hard task", "task prior blend, shrink 100")
