"""Matrix-factorisation router in the style of RouteLLM's ``mf`` router.

RouteLLM scores LLM m on query x as s(m, x) = v_mᵀ(W x) (an LLM embedding against a projection
of the query embedding) and trains on pairwise preferences, P(strong beats weak) =
σ(s(strong, x) − s(weak, x)). Here every recorded outcome is its own example instead:
P(good answer | m, x) = σ(v_mᵀ(W x) + b_m), trained with the soft-label log loss on the observed
cells, L2 on W and V, full batch with L-BFGS from a seeded start. Absolute probabilities (not
just a preference) are what ``quality − λ × cost`` needs, and the per-LLM bias b_m lets it
work for any number of LLMs ≥ 1, not only a strong/weak pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy.state import Arrays, BasePredictor, JSONValue, cost_arrays, restore_cost
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import (
    column_means,
    masked_log_loss,
    sigmoid,
    standardize,
    standardize_fit,
)
from mixllm.predict.threads import one_blas_thread
from mixllm.types import Prediction, QueryBatch

__all__ = ["MatrixFactorizationPredictor"]

FloatArray = NDArray[np.float64]


def _unpack(theta: FloatArray, d: int, dim: int, k: int) -> tuple[FloatArray, ...]:
    w = theta[: dim * d].reshape(dim, d)
    v = theta[dim * d : dim * d + k * dim].reshape(k, dim)
    return w, v, theta[dim * d + k * dim :]


def _objective(
    theta: FloatArray, x: FloatArray, y: FloatArray, dim: int, alpha: float
) -> tuple[float, FloatArray]:
    """Mean masked log loss + alpha/2 (‖W‖² + ‖V‖²), and its gradient."""
    w, v, b = _unpack(theta, x.shape[1], dim, y.shape[1])
    proj = x @ w.T  # (n, dim)
    loss, g = masked_log_loss(proj @ v.T + b, y)
    g_w = (g @ v).T @ x + alpha * w
    g_v = g.T @ proj + alpha * v
    reg = 0.5 * alpha * float((w**2).sum() + (v**2).sum())
    return loss + reg, np.concatenate([g_w.ravel(), g_v.ravel(), g.sum(0)])


class MatrixFactorizationPredictor(BasePredictor):
    """σ(v_mᵀ(W x) + b_m): LLM embeddings against a learned projection of the query embedding.

    Parameters
    ----------
    dim:
        Width of the LLM embeddings and of the query projection.
    alpha:
        L2 strength on W and V (relative to the mean log loss per observed outcome).
    max_iter:
        L-BFGS iterations (a fixed budget, so training time is bounded).
    seed:
        Seed of the random start (the factorisation is not convex).

    An LLM with no observed training outcome is predicted at the mean over all LLMs. Cost comes
    from :class:`~mixllm.predict.cost.MeanLengthCostModel`.
    """

    name = "mf"
    kind: ClassVar[str] = "mf"
    _param_names = ("dim", "alpha", "max_iter", "seed")

    def __init__(
        self, dim: int = 32, *, alpha: float = 1e-2, max_iter: int = 200, seed: int = 0
    ) -> None:
        self.dim = dim
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed

    def _check_params(self) -> None:
        if self.dim < 1 or self.max_iter < 1:
            raise ConfigError(
                f"dim={self.dim!r}, max_iter={self.max_iter!r}; expected positive integers"
            )
        if self.alpha < 0:
            raise ConfigError(f"alpha={self.alpha!r}; expected a number >= 0")

    @one_blas_thread("scipy.optimize")
    def fit(self, train: Dataset, queries: QueryBatch) -> MatrixFactorizationPredictor:
        """Fit W, V and b by L-BFGS on the observed outcomes, and the cost model."""
        self._check_params()
        raw = self._check_train(train, queries)
        self.mean_, self.scale_ = standardize_fit(raw)
        x = standardize(raw, self.mean_, self.scale_)
        y = np.asarray(train.quality, dtype=np.float64)
        overall = float(column_means(y.reshape(-1, 1), 0.0)[0])
        theta = self._optimize(x, y, column_means(y, overall))
        self.w_, self.v_, self.b_ = (
            a.copy() for a in _unpack(theta, x.shape[1], self.dim, y.shape[1])
        )
        self.constant_ = np.where(np.isfinite(y).any(axis=0), np.nan, overall)
        self.cost_model_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        self.llms_ = train.llms
        return self

    def _optimize(self, x: FloatArray, y: FloatArray, prior: FloatArray) -> FloatArray:
        """L-BFGS from a seeded random start (biases at the logit of each LLM's mean quality)."""
        from scipy.optimize import minimize  # type: ignore[import-untyped]

        rng = np.random.default_rng(self.seed)
        d, k = x.shape[1], y.shape[1]
        p = np.clip(prior, 1e-3, 1 - 1e-3)
        start = np.concatenate(
            [
                rng.normal(0, 1 / np.sqrt(d), self.dim * d),
                rng.normal(0, 0.1, k * self.dim),
                np.log(p / (1 - p)),
            ]
        )
        result = minimize(
            _objective,
            start,
            args=(x, y, self.dim, self.alpha),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        self.n_iter_ = int(result.nit)
        theta: FloatArray = result.x
        return theta

    def _input_dim(self) -> int:
        return len(self.mean_)

    def predict(self, queries: QueryBatch) -> Prediction:
        """P(good answer) per LLM; cost from prompt tokens and mean output length."""
        x = standardize(self._check_queries(queries), self.mean_, self.scale_)
        quality = sigmoid((x @ self.w_.T) @ self.v_.T + self.b_)
        quality = np.where(np.isnan(self.constant_), quality, self.constant_)
        return self._prediction(quality, self.cost_model_.predict(queries.prompt_tokens))

    def _state(self) -> tuple[dict[str, object], Arrays]:
        arrays: Arrays = {"mean": self.mean_, "scale": self.scale_, "constant": self.constant_}
        arrays |= {"w": self.w_, "v": self.v_, "b": self.b_}
        return {"n_iter_": self.n_iter_}, arrays | cost_arrays(self.cost_model_)

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        for attr in ("mean", "scale", "constant", "w", "v", "b"):
            setattr(self, attr + "_", np.asarray(arrays[attr], dtype=np.float64))
        n_iter = params.get("n_iter_", 0)
        self.n_iter_ = n_iter if isinstance(n_iter, int) else 0
        self.cost_model_ = restore_cost(arrays)
