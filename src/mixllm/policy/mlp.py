"""Multi-layer perceptron router (RouterBench's MLP): one hidden ReLU layer shared by all LLMs,
one sigmoid output per LLM, trained in numpy with Adam on the masked soft-label log loss, so a
missing outcome simply does not count and graded quality needs no thresholding."""

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

__all__ = ["MLPPredictor"]

FloatArray = NDArray[np.float64]
Weights = list[FloatArray]  # [W1 (d, h), b1 (h,), W2 (h, L), b2 (L,)]
_TOL = 1e-4


def _forward(x: FloatArray, w: Weights) -> tuple[FloatArray, FloatArray]:
    """Hidden activations and output logits."""
    hidden = np.maximum(x @ w[0] + w[1], 0.0)
    return hidden, hidden @ w[2] + w[3]


def _loss_grad(x: FloatArray, y: FloatArray, w: Weights, alpha: float) -> tuple[float, Weights]:
    hidden, logits = _forward(x, w)
    loss, g_out = masked_log_loss(logits, y)
    decay = alpha / len(x)
    g_hidden = (g_out @ w[2].T) * (hidden > 0)
    grads = [x.T @ g_hidden + decay * w[0], g_hidden.sum(0), hidden.T @ g_out + decay * w[2]]
    grads.append(g_out.sum(0))
    return loss + 0.5 * decay * float((w[0] ** 2).sum() + (w[2] ** 2).sum()), grads


def _init(d: int, h: int, prior: FloatArray, rng: np.random.Generator) -> Weights:
    """Glorot-uniform weights; output biases start at the logit of each LLM's mean quality."""
    lim1, lim2 = np.sqrt(6.0 / (d + h)), np.sqrt(6.0 / (h + len(prior)))
    p = np.clip(prior, 1e-3, 1 - 1e-3)
    return [
        rng.uniform(-lim1, lim1, (d, h)),
        np.zeros(h),
        rng.uniform(-lim2, lim2, (h, len(prior))),
        np.log(p / (1 - p)),
    ]


class _Adam:
    def __init__(self, w: Weights, lr: float) -> None:
        self.lr, self.t = lr, 0
        self.m = [np.zeros_like(a) for a in w]
        self.v = [np.zeros_like(a) for a in w]

    def step(self, w: Weights, grads: Weights) -> None:
        self.t += 1
        scale = self.lr * np.sqrt(1 - 0.999**self.t) / (1 - 0.9**self.t)
        for a, g, m, v in zip(w, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            a -= scale * m / (np.sqrt(v) + 1e-8)


class MLPPredictor(BasePredictor):
    """A one-hidden-layer network from the standardised query embedding to P(good answer) per LLM.

    Parameters
    ----------
    hidden:
        Width of the ReLU layer (RouterBench and scikit-learn's default: 128 / 100).
    alpha, learning_rate, batch_size:
        L2 strength (scaled by 1 / batch size, as scikit-learn), Adam step, minibatch rows.
    max_epochs, patience, validation_fraction:
        Early stopping: ``validation_fraction`` of the training queries (when that is at least
        5 rows) is held out; training stops after ``patience`` epochs without a better held-out
        loss and keeps the best weights. Without a hold-out the training loss is watched.
    seed:
        Initialisation, shuffling and hold-out seed.

    An LLM with no observed training outcome is predicted at the mean over all LLMs. Cost comes
    from :class:`~mixllm.predict.cost.MeanLengthCostModel`.
    """

    name = "mlp"
    kind: ClassVar[str] = "mlp"
    _param_names = (
        "hidden",
        "alpha",
        "learning_rate",
        "batch_size",
        "max_epochs",
        "patience",
        "validation_fraction",
        "seed",
    )

    def __init__(
        self,
        hidden: int = 128,
        *,
        alpha: float = 1e-4,
        learning_rate: float = 1e-3,
        batch_size: int = 200,
        max_epochs: int = 200,
        patience: int = 10,
        validation_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed

    def _check_params(self) -> None:
        sizes = {"hidden": self.hidden, "batch_size": self.batch_size}
        sizes |= {"max_epochs": self.max_epochs, "patience": self.patience}
        for key, value in sizes.items():
            if value < 1:
                raise ConfigError(f"{key}={value!r}; expected a positive integer")
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                f"validation_fraction={self.validation_fraction!r}; expected 0 <= value < 1"
            )

    @one_blas_thread()
    def fit(self, train: Dataset, queries: QueryBatch) -> MLPPredictor:
        """Train the network with early stopping, and the cost model."""
        self._check_params()
        raw = self._check_train(train, queries)
        self.mean_, self.scale_ = standardize_fit(raw)
        x = standardize(raw, self.mean_, self.scale_)
        y = np.asarray(train.quality, dtype=np.float64)
        overall = float(column_means(y.reshape(-1, 1), 0.0)[0])
        rng = np.random.default_rng(self.seed)
        prior = column_means(y, overall)
        self.weights_ = self._train(x, y, _init(x.shape[1], self.hidden, prior, rng), rng)
        self.constant_ = np.where(np.isfinite(y).any(axis=0), np.nan, overall)
        self.cost_model_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        self.llms_ = train.llms
        return self

    def _train(self, x: FloatArray, y: FloatArray, w: Weights, rng: np.random.Generator) -> Weights:
        n_val = int(len(x) * self.validation_fraction)
        order = rng.permutation(len(x))
        val, tr = (order[:n_val], order[n_val:]) if n_val >= 5 else (order[:0], order)
        adam, best, best_w, stale = _Adam(w, self.learning_rate), np.inf, [a.copy() for a in w], 0
        self.n_epochs_ = 0
        for _ in range(self.max_epochs):
            self.n_epochs_ += 1
            tr = rng.permutation(tr)
            for start in range(0, len(tr), self.batch_size):
                rows = tr[start : start + self.batch_size]
                adam.step(w, _loss_grad(x[rows], y[rows], w, self.alpha)[1])
            watch = val if len(val) else tr
            score = masked_log_loss(_forward(x[watch], w)[1], y[watch])[0]
            if score < best - _TOL:
                best, best_w, stale = score, [a.copy() for a in w], 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        return best_w

    def _input_dim(self) -> int:
        return len(self.mean_)

    def predict(self, queries: QueryBatch) -> Prediction:
        """P(good answer) per LLM; cost from prompt tokens and mean output length."""
        x = standardize(self._check_queries(queries), self.mean_, self.scale_)
        quality = sigmoid(_forward(x, self.weights_)[1])
        quality = np.where(np.isnan(self.constant_), quality, self.constant_)
        return self._prediction(quality, self.cost_model_.predict(queries.prompt_tokens))

    def _state(self) -> tuple[dict[str, object], Arrays]:
        arrays: Arrays = {"mean": self.mean_, "scale": self.scale_, "constant": self.constant_}
        arrays |= {f"w{i}": a for i, a in enumerate(self.weights_)}
        return {"n_epochs_": self.n_epochs_}, arrays | cost_arrays(self.cost_model_)

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        for attr in ("mean", "scale", "constant"):
            setattr(self, attr + "_", np.asarray(arrays[attr], dtype=np.float64))
        self.weights_ = [np.asarray(arrays[f"w{i}"], dtype=np.float64) for i in range(4)]
        epochs = params.get("n_epochs_", 0)
        self.n_epochs_ = epochs if isinstance(epochs, int) else 0
        self.cost_model_ = restore_cost(arrays)
