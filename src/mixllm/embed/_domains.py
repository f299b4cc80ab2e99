"""Private helpers of :mod:`mixllm.embed.tagged`: query domains, the start and the loss.

MixLLM (§3.1) tags each query with InsTag and groups tags into domains. No LLM tagger is
reachable offline, so a domain here is the dataset's task label where every query has one, and
otherwise a KMeans cluster of the embeddings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, DataError

__all__ = ["AUTO_CLUSTERS", "assign_domains", "domain_loss", "pca_start", "unit_rows"]

F32 = NDArray[np.float32]
logger = logging.getLogger(__name__)

AUTO_CLUSTERS = (8, 12, 16, 24, 32)
"""Cluster counts tried when ``n_clusters=None``; the best silhouette on a sample wins."""

_SILHOUETTE_SAMPLE = 2000  # rows used to choose the number of clusters
_N_INIT = 3  # KMeans restarts (fixed, so that a seed gives one result)


def assign_domains(
    x: NDArray[np.float32],
    domains: Sequence[str | None] | None,
    *,
    n_clusters: int | None,
    seed: int,
) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    """Domain names and one domain index per row (MixLLM §3.1, tags grouped into domains).

    Labels are used when every row has one; otherwise (``None`` or any row unlabelled) the
    domains are KMeans clusters of ``x`` named ``cluster<i>``.

    >>> x = np.eye(4, dtype=np.float32)
    >>> assign_domains(x, ["b", "a", "b", "a"], n_clusters=None, seed=0)
    (('a', 'b'), array([1, 0, 1, 0]))
    """
    n = len(x)
    if domains is not None:
        labels = list(domains)
        if len(labels) != n:
            raise DataError(f"{len(labels)} domain labels for {n} embedding rows; expected {n}")
        if all(label is not None for label in labels):
            names, ids = np.unique(
                np.array([str(v) for v in labels], dtype=object), return_inverse=True
            )
            if len(names) < 2:
                raise DataError(
                    f"domain labels name {len(names)} domain(s) {list(names)}; "
                    "expected at least 2 to pull apart"
                )
            return tuple(str(v) for v in names), ids.astype(np.int64)
        missing = sum(label is None for label in labels)
        logger.info("%d of %d rows have no domain label: using KMeans clusters", missing, n)
    k = n_clusters if n_clusters is not None else _choose_k(x, seed)
    if k > n:
        raise ConfigError(f"n_clusters={k!r} is more than the {n} rows to cluster")
    ids = _kmeans(x, k, seed)
    return tuple(f"cluster{i}" for i in range(k)), ids


def _kmeans(x: NDArray[np.float32], k: int, seed: int) -> NDArray[np.int64]:
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, n_init=_N_INIT, random_state=seed).fit(x).labels_
    return np.asarray(labels, dtype=np.int64)


def _choose_k(x: NDArray[np.float32], seed: int) -> int:
    """The count in :data:`AUTO_CLUSTERS` with the best cosine silhouette on a sample."""
    from sklearn.metrics import silhouette_score

    if len(x) < 3:
        raise DataError(f"{len(x)} rows are too few to cluster into domains; expected at least 3")
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.permutation(len(x))[:_SILHOUETTE_SAMPLE])]
    grid = [k for k in AUTO_CLUSTERS if k < len(sample)] or [2]
    best_k, best = grid[0], -np.inf
    for k in grid:
        labels = _kmeans(sample, k, seed)
        if len(np.unique(labels)) < 2:
            continue
        score = float(silhouette_score(sample, labels, metric="cosine"))
        if score > best:
            best_k, best = k, score
    return best_k


def pca_start(x: NDArray[np.float32], dim_out: int, seed: int) -> NDArray[np.float32]:
    """A ``(d, dim_out)`` start for the projection: the top principal directions of ``x``.

    Signs are fixed (largest entry of each column positive) so that the start does not depend on
    the LAPACK build. Columns beyond the rank of ``x`` are small seeded random directions.

    >>> w = pca_start(np.eye(3, dtype=np.float32), 2, seed=0)
    >>> w.shape, w.dtype.name
    ((3, 2), 'float32')
    """
    centred = x - x.mean(axis=0)
    scatter = (centred.T @ centred).astype(np.float64)
    values, vectors = np.linalg.eigh(scatter)  # ascending
    rank = int((values > values.max() * 1e-6).sum()) if values.max() > 0 else 0
    w = vectors[:, ::-1][:, : min(dim_out, rank)]
    rows = np.abs(w).argmax(axis=0)
    signs = np.sign(w[rows, np.arange(w.shape[1])])
    w = w * np.where(signs == 0, 1.0, signs)
    if w.shape[1] < dim_out:
        rng = np.random.default_rng(seed)
        extra = rng.standard_normal((x.shape[1], dim_out - w.shape[1])) / np.sqrt(x.shape[1])
        w = np.concatenate([w, 0.1 * extra], axis=1)
    out: NDArray[np.float32] = w.astype(np.float32)
    return out


def unit_rows(m: F32) -> tuple[F32, F32]:
    """Rows of ``m`` scaled to unit length, and their former lengths (at least 1e-12)."""
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    norm = np.maximum(norm, np.float32(1e-12))
    return m / norm, norm


def domain_loss(
    u: F32, ids: NDArray[np.int64], *, margin: float, push_weight: float
) -> tuple[float, float, F32]:
    """The MixLLM §3.1 loss of projected rows ``u`` and its gradient with respect to ``u``.

    ``L = mean_i (1 - cos(z_i, c_d(i))) + push_weight * mean_{a != b} max(0, cos(c_a, c_b) - m)``
    with ``z = u / |u|`` and ``c_d`` the normalised mean of ``z`` over domain ``d`` (domains
    absent from ``ids`` are left out). The gradient flows through the centres exactly; for the
    pull term it equals the one that treats the centres as constants (each ``c_d`` maximises
    ``sum z_i . c`` over unit vectors, so its own change contributes nothing to first order).
    Returns ``(pull, push, dL/du)``.

    >>> u = np.array([[1, 0], [1, 0.2], [0, 1]], dtype=np.float32)
    >>> pull, push, grad = domain_loss(u, np.array([0, 0, 1]), margin=0.0, push_weight=1.0)
    >>> round(pull, 4), round(push, 4), grad.shape
    (0.0032, 0.0985, (3, 2))
    """
    z, norm = unit_rows(u)
    present, local = np.unique(ids, return_inverse=True)
    k = len(present)
    counts = np.bincount(local, minlength=k).astype(np.float32)
    onehot = np.zeros((k, len(u)), dtype=np.float32)
    onehot[local, np.arange(len(u))] = 1.0
    means = (onehot @ z) / counts[:, None]
    centres, mean_norm = unit_rows(means)
    n = len(u)
    pull = float(1.0 - np.einsum("ij,ij->", z, centres[local]) / n)
    dz = -centres[local] / np.float32(n)
    push = 0.0
    if k > 1 and push_weight > 0:
        excess = centres @ centres.T - np.float32(margin)
        np.fill_diagonal(excess, 0.0)
        active = (excess > 0).astype(np.float32)
        pairs = k * (k - 1)
        push = float(push_weight * np.maximum(excess, 0.0).sum() / pairs)
        dc = np.float32(2.0 * push_weight / pairs) * (active @ centres)
        dm = (dc - (dc * centres).sum(axis=1, keepdims=True) * centres) / mean_norm
        dz += (dm / counts[:, None])[local]
    du = (dz - (dz * z).sum(axis=1, keepdims=True) * z) / norm
    return pull, push, du.astype(np.float32)
