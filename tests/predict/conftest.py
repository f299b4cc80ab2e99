"""Small seeded data for the predictors, where the truth is known."""

from __future__ import annotations

import numpy as np

from mixllm.predict.neighbours import unit_rows

#: Fast settings for the tree kinds in tests.
SMALL = {"n_trees": 20, "grids": {"rf": [5], "hgb": [20, 40], "knn": [5, 15], "logistic": [1, 10]}}


def embeddings(n: int, d: int = 6, *, seed: int = 0) -> np.ndarray:
    """Unit rows, like an embedder's."""
    return unit_rows(np.random.default_rng(seed).normal(size=(n, d)))


def linear_truth(x: np.ndarray) -> np.ndarray:
    """P(good) of a logistic model on the first coordinate."""
    return 1 / (1 + np.exp(-8 * x[:, 0]))


def make_quality(n: int = 240, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and quality for six LLMs exercising every case.

    0: 0/1 from a logistic truth; 1: 0/1 XOR of two coordinates (not linear);
    2: like 0 with 40 % missing; 3: always right (one class); 4: never observed;
    5: graded quality, the truth of 0 itself (soft labels).
    """
    rng = np.random.default_rng(seed + 1)
    x = embeddings(n, seed=seed)
    p = linear_truth(x)
    q = np.full((n, 6), np.nan)
    q[:, 0] = rng.random(n) < p
    q[:, 1] = (x[:, 1] * x[:, 2]) > 0
    q[:, 2] = np.where(rng.random(n) < 0.4, np.nan, rng.random(n) < p)
    q[:, 3] = 1.0
    q[:, 5] = p
    return x, q
