"""Cosine nearest neighbours, deterministic whatever the batch: unit rows and top-k by similarity.

Similarities are rounded before ranking and ties go to the lower training index, so a query gets
the same neighbours alone or in a batch (where BLAS may round the last bit differently).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["nearest", "top_k", "unit_rows"]

FloatArray = NDArray[np.float64]
_DECIMALS = 9
_CHUNK = 256  # query rows per similarity block: bounds memory at _CHUNK × n_train


def unit_rows(x: NDArray[np.floating]) -> FloatArray:
    """Rows scaled to unit L2 norm (zero rows stay zero).

    >>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    x64 = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x64, axis=1, keepdims=True)
    out: FloatArray = x64 / np.where(norm > 0, norm, 1.0)
    return out


def top_k(sims: FloatArray, k: int) -> NDArray[np.int64]:
    """Per row, the ``k`` columns with the highest value, best first, ties to the lower column.

    >>> top_k(np.array([[0.1, 0.9, 0.9, 0.5]]), 3).tolist()
    [[1, 2, 3]]
    """
    s = np.round(sims, _DECIMALS)
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1 : k]
    above, equal = s > kth, s == kth
    need = k - above.sum(axis=1, keepdims=True)
    chosen = above | (equal & (np.cumsum(equal, axis=1) <= need))
    top = np.nonzero(chosen)[1].reshape(len(s), k)  # ascending column per row
    order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
    out: NDArray[np.int64] = np.take_along_axis(top, order, axis=1).astype(np.int64)
    return out


def nearest(queries: FloatArray, train: FloatArray, k: int) -> NDArray[np.int64]:
    """Indices of the ``k`` rows of ``train`` with the highest dot product with each query row
    (cosine similarity for unit rows), most similar first; shape (len(queries), k)."""
    blocks = [np.zeros((0, k), dtype=np.int64)]
    for start in range(0, len(queries), _CHUNK):
        # train @ block.T, not block @ train.T: OpenBLAS is ~30x slower on the transposed view
        # for a single query (4 ms against 0.13 ms for 2,000 x 384 here).
        blocks.append(top_k((train @ queries[start : start + _CHUNK].T).T, k))
    return np.concatenate(blocks)
