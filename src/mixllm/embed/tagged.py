"""Tag-enhanced embedding (MixLLM §3.1) as a linear head on fixed query embeddings.

MixLLM tags every query with InsTag, groups the tags into domains and fine-tunes BERT so that
queries of one domain gather around the domain's centre while the centres move apart.
:class:`DomainProjection` trains that objective on a linear map of the embeddings instead of the
encoder (numpy only, seconds on a CPU); :func:`mixllm.embed.finetune_encoder` trains the whole
encoder. Domains are task labels where present, else KMeans clusters (no tagger offline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import threadpoolctl  # type: ignore[import-untyped]
from numpy.typing import NDArray

from mixllm.embed._domains import assign_domains, domain_loss, pca_start, unit_rows
from mixllm.errors import ConfigError, DataError, NotFittedError, PersistError

__all__ = ["DomainProjection"]

logger = logging.getLogger(__name__)

F32 = NDArray[np.float32]
_PARAMS = (
    "dim_out", "n_clusters", "margin", "push_weight", "input_weight",
    "epochs", "batch_size", "lr", "weight_decay", "seed",
)  # fmt: skip


class DomainProjection:
    """Tag-enhanced embedding (MixLLM §3.1): a linear map trained to separate query domains.

    ``transform(x) = normalize([input_weight * x, normalize(W^T (x - mean_))])``. ``W``
    (``d × dim_out``, started at the top principal directions of the centred inputs) is trained
    with Adam on :func:`domain_loss`, plus ``weight_decay * |W - W_start|²`` if asked, which
    holds it near the start. ``input_weight=0`` outputs the paper's head alone.

    The default keeps the input beside the projection (``input_weight=1``): on RouterBench and
    RouteLLM-MMLU the head alone raised the task silhouette (0.82 → 0.99 on RouterBench) but
    lowered the per-LLM quality AUC of a kNN router by ~0.006, since pulling every query to its
    domain centre erases the differences within a domain that routing needs; with the input kept,
    AUC matched or beat the raw input (``benchmarks/tagged_projection.py``).

    Parameters
    ----------
    dim_out:
        Width of the projection.
    n_clusters:
        Number of KMeans domains when labels are missing; ``None`` tries 8, 12, 16, 24 and 32
        and keeps the best cosine silhouette on a 2,000-row sample.
    margin, push_weight:
        ``m`` and ``μ`` of the push term: centres are pushed apart while their cosine is above
        ``margin``.
    input_weight:
        Weight of the (unit) input beside the (unit) projection; ``0`` drops the input.
    epochs, batch_size, lr, weight_decay:
        Adam over shuffled mini-batches; each batch computes the centres of its own rows.
    seed:
        Seeds KMeans, the batch order and the start: one seed gives one result.

    Attributes
    ----------
    domains_:
        Domain names (sorted labels, or ``cluster<i>``).
    W_, mean_:
        The learned projection and the training mean it is applied after.
    loss_history_:
        The paper's loss on all training rows at the start and after each epoch.
    dim_:
        Output width: ``dim_out``, plus ``d`` when ``input_weight > 0``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((60, 8)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> p = DomainProjection(dim_out=4, epochs=5).fit(x, ["a", "b", "c"] * 20)
    >>> p.transform(x).shape, p.dim_, p.domains_
    ((60, 12), 12, ('a', 'b', 'c'))
    >>> bool(p.loss_history_[-1] < p.loss_history_[0])
    True
    """

    def __init__(
        self,
        dim_out: int = 128,
        *,
        n_clusters: int | None = None,
        margin: float = 0.0,
        push_weight: float = 1.0,
        input_weight: float = 1.0,
        epochs: int = 10,
        batch_size: int = 1024,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.dim_out = dim_out
        self.n_clusters = n_clusters
        self.margin = margin
        self.push_weight = push_weight
        self.input_weight = input_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in _PARAMS)
        return f"DomainProjection({args})"

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X: F32, domains: Sequence[str | None] | None = None) -> DomainProjection:
        """Learn the projection from unit rows ``X`` (float32, ``(n, d)``) and their domains.

        ``domains`` holds one label per row (e.g. the task); if it is ``None`` or any row has
        none, the domains are KMeans clusters of ``X`` instead. BLAS and OpenMP run on one
        thread here (faster for these small products on a busy CPU, and reproducible).

        Raises
        ------
        ConfigError
            A parameter out of range, or more clusters than rows.
        DataError
            ``X`` not a finite 2-d array, labels not one per row, or fewer than 2 domains.
        """
        self._check_params()
        x = _as_matrix(X, "X")
        if len(x) < 2:
            raise DataError(f"X has {len(x)} row(s); expected at least 2 to learn domains")
        started = time.perf_counter()
        with threadpoolctl.threadpool_limits(limits=1):
            names, ids = assign_domains(x, domains, n_clusters=self.n_clusters, seed=self.seed)
            if len(np.unique(ids)) < 2:
                raise DataError(f"X falls into {len(np.unique(ids))} domain; expected at least 2")
            self.domains_ = names
            self.mean_ = x.mean(axis=0).astype(np.float32)
            self._train(x - self.mean_, ids, pca_start(x, self.dim_out, self.seed))
        logger.debug(
            "DomainProjection fit %s rows in %.2f s", len(x), time.perf_counter() - started
        )
        return self

    def _train(self, xc: F32, ids: NDArray[np.int64], start: F32) -> None:
        rng = np.random.default_rng(self.seed)
        w, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
        beta1, beta2, eps = np.float32(0.9), np.float32(0.999), 1e-8
        batch = min(self.batch_size, len(xc))
        step = 0
        history = [self._full_loss(xc, ids, w)]
        for _ in range(self.epochs):
            order = rng.permutation(len(xc))
            for begin in range(0, len(xc), batch):
                rows = order[begin : begin + batch]
                if len(rows) < 2:
                    continue
                xb = xc[rows]
                _, _, du = domain_loss(
                    xb @ w, ids[rows], margin=self.margin, push_weight=self.push_weight
                )
                grad = xb.T @ du + np.float32(2.0 * self.weight_decay) * (w - start)
                step += 1
                m *= beta1
                m += (1 - beta1) * grad
                v *= beta2
                v += (1 - beta2) * grad * grad
                m_hat = m / np.float32(1 - beta1**step)
                v_hat = v / np.float32(1 - beta2**step)
                w -= np.float32(self.lr) * m_hat / (np.sqrt(v_hat) + np.float32(eps))
            history.append(self._full_loss(xc, ids, w))
        self.W_ = w
        self.loss_history_ = history

    def _full_loss(self, xc: F32, ids: NDArray[np.int64], w: F32) -> float:
        pull, push, _ = domain_loss(xc @ w, ids, margin=self.margin, push_weight=self.push_weight)
        return pull + push

    def fit_transform(self, X: F32, domains: Sequence[str | None] | None = None) -> F32:
        """``fit(X, domains)`` then ``transform(X)``."""
        return self.fit(X, domains).transform(X)

    # -- using ---------------------------------------------------------------------------------
    @property
    def dim_(self) -> int:
        """Output width: ``dim_out``, plus the input width when ``input_weight > 0``."""
        self._check_fitted()
        return self.dim_out + (len(self.mean_) if self.input_weight > 0 else 0)

    def transform(self, X: F32) -> F32:
        """Map rows of ``X`` to L2-normalised float32 rows of width :attr:`dim_`."""
        self._check_fitted()
        x = _as_matrix(X, "X")
        if x.shape[1] != len(self.mean_):
            raise DataError(
                f"X has {x.shape[1]} columns; this projection was fitted on {len(self.mean_)}"
            )
        # No thread limit here: threadpoolctl costs milliseconds per call, more than this product.
        z, _ = unit_rows((x - self.mean_) @ self.W_)
        if self.input_weight > 0:
            z = np.concatenate([np.float32(self.input_weight) * unit_rows(x)[0], z], axis=1)
        out, _ = unit_rows(z)
        return out.astype(np.float32)

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """JSON-able parameters and arrays from which :meth:`from_state` rebuilds this head."""
        self._check_fitted()
        params: dict[str, Any] = {p: _plain(getattr(self, p)) for p in _PARAMS}
        params["domains"] = list(self.domains_)
        params["loss_history"] = [float(v) for v in self.loss_history_]
        return params, {"W": self.W_.copy(), "mean": self.mean_.copy()}

    @classmethod
    def from_state(
        cls, params: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]
    ) -> DomainProjection:
        """The fitted head whose :meth:`get_state` returned ``params`` and ``arrays``."""
        missing = [k for k in (*_PARAMS, "domains", "loss_history") if k not in params]
        missing += [k for k in ("W", "mean") if k not in arrays]
        if missing:
            raise PersistError(f"DomainProjection state lacks {missing}")
        obj = cls(**{p: params[p] for p in _PARAMS})
        obj._check_params()
        obj.W_ = np.asarray(arrays["W"], dtype=np.float32).copy()
        obj.mean_ = np.asarray(arrays["mean"], dtype=np.float32).copy()
        if obj.W_.shape != (len(obj.mean_), obj.dim_out):
            raise PersistError(
                f"DomainProjection state: W has shape {obj.W_.shape}, expected "
                f"{(len(obj.mean_), obj.dim_out)}"
            )
        obj.domains_ = tuple(str(d) for d in params["domains"])
        obj.loss_history_ = [float(v) for v in params["loss_history"]]
        return obj

    # -- checks --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "W_"):
            raise NotFittedError("DomainProjection is not fitted yet; call fit(X, domains)")

    def _check_params(self) -> None:
        ints = {"dim_out": 1, "epochs": 0, "batch_size": 2}
        if self.n_clusters is not None:
            ints["n_clusters"] = 2
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ConfigError(f"{name}={value!r}; expected an integer >= {low}")
        for name in ("push_weight", "input_weight", "lr", "weight_decay"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value!r}; expected a finite number >= 0")
        if not -1.0 <= self.margin < 1.0:
            raise ConfigError(f"margin={self.margin!r}; expected a cosine in [-1, 1)")


def _plain(value: object) -> object:
    """A parameter as a JSON-able Python scalar (numpy scalars become int or float)."""
    return value.item() if isinstance(value, np.generic) else value


def _as_matrix(X: F32, what: str) -> F32:
    x = np.asarray(X, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError(f"{what} has shape {x.shape}; expected (n_rows, dim)")
    if not np.isfinite(x).all():
        raise DataError(f"{what} holds NaN or infinite values")
    return x
