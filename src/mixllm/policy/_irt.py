"""The item-response model behind :mod:`mixllm.policy.llm_bandit`: fitting it, fitting one new
LLM's identity with the prompt side frozen, and choosing probe prompts.

P(LLM k answers x well) = σ(φ(x)·θ_k − d(x)), with φ(x) = [x W, 1] (the prompt's
discrimination and a constant) and d(x) = x·v (its difficulty); ``x`` carries a constant too.

>>> import numpy as np
>>> x = np.hstack([np.eye(4)[[0, 1, 2, 3] * 10], np.ones((40, 1))])
>>> y = np.where(np.arange(40)[:, None] % 2 == np.arange(2)[None, :], 1.0, 0.0)
>>> w, v, identity, precision = fit_irt(x, y, dim=2, l2=1e-3, max_iter=300, lr=0.1, seed=0)
>>> p = sigmoid(np.hstack([x @ w, np.ones((40, 1))]) @ identity.T - (x @ v)[:, None])
>>> bool((np.round(p) == y).all())
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["fit_identity", "fit_irt", "probe_rows", "sigmoid"]

FloatArray = NDArray[np.float64]


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function, computed without overflow."""
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
    return out


def fit_irt(
    x: FloatArray, y: FloatArray, *, dim: int, l2: float, max_iter: int, lr: float, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """MAP fit by full-batch Adam of the mean logistic loss on the finite cells of ``y``
    (n, K; values in [0, 1]) plus ``l2`` × the squared weights; returns W (D, dim), v (D,),
    the identities (K, dim + 1) and their Laplace precisions (K, dim + 1, dim + 1)."""
    n, d = x.shape
    k = y.shape[1]
    seen = np.isfinite(y)
    target = np.nan_to_num(y)
    scale = 1.0 / max(int(seen.sum()), 1)
    rng = np.random.default_rng(seed)
    params = [
        rng.normal(0.0, 0.1, (d, dim)),  # W
        np.zeros(d),  # v
        rng.normal(0.0, 0.1, (k, dim + 1)),  # identities
    ]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    b1, b2 = 0.9, 0.999
    for t in range(1, max_iter + 1):
        w, v, ident = params
        z = x @ w
        phi = np.hstack([z, np.ones((n, 1))])
        g = np.where(seen, sigmoid(phi @ ident.T - (x @ v)[:, None]) - target, 0.0) * scale
        grads = [
            x.T @ (g @ ident[:, :dim]) + 2 * l2 * w,
            -x.T @ g.sum(axis=1) + 2 * l2 * v,
            g.T @ phi + 2 * l2 * ident,
        ]
        for p, grad, (m, s) in zip(params, grads, moments, strict=True):
            m *= b1
            m += (1 - b1) * grad
            s *= b2
            s += (1 - b2) * grad**2
            p -= lr * (m / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + 1e-8)
    w, v, ident = params
    phi = np.hstack([x @ w, np.ones((n, 1))])
    p = sigmoid(phi @ ident.T - (x @ v)[:, None])
    weight = np.where(seen, p * (1 - p), 0.0)
    precision = np.eye(dim + 1)[None] + np.einsum("nk,nd,ne->kde", weight, phi, phi)
    return w, v, ident, precision


def fit_identity(
    phi: FloatArray,
    y: FloatArray,
    offset: FloatArray,
    mean: FloatArray,
    precision: FloatArray,
    *,
    steps: int = 25,
) -> tuple[FloatArray, FloatArray]:
    """MAP identity of one LLM from its outcomes ``y`` on prompts with features ``phi`` and
    difficulties ``offset``, under the Gaussian prior (``mean``, ``precision``): Newton steps;
    returns the identity and its Laplace precision.

    >>> import numpy as np
    >>> phi = np.array([[1.0, 1.0]] * 40)
    >>> ident, h = fit_identity(phi, np.array([1.0] * 36 + [0.0] * 4), np.zeros(40),
    ...                         np.zeros(2), np.eye(2))
    >>> 0.8 < float(1 / (1 + np.exp(-phi[0] @ ident))) < 0.9  # 0.9 seen, pulled to the prior
    True
    """
    theta = np.array(mean, dtype=np.float64)
    hessian = np.array(precision, dtype=np.float64)
    for _ in range(steps):
        p = sigmoid(phi @ theta - offset)
        grad = phi.T @ (p - y) + precision @ (theta - mean)
        hessian = precision + (phi * (p * (1 - p))[:, None]).T @ phi
        step = np.linalg.solve(hessian, grad)
        theta -= step
        if float(np.abs(step).max(initial=0.0)) < 1e-8:
            break
    return theta, hessian


def probe_rows(
    phi: FloatArray, offset: FloatArray, identity: FloatArray, precision: FloatArray, n: int
) -> list[int]:
    """``n`` rows chosen greedily to maximise the log-determinant of the information a new
    LLM's answers would give about its identity (D-optimal design from ``precision``), each row
    weighted by p(1 − p) averaged over the known ``identity`` rows."""
    p = sigmoid(phi @ identity.T - offset[:, None])
    weight = (p * (1 - p)).mean(axis=1)
    cov = np.linalg.inv(precision)
    chosen: list[int] = []
    free = np.ones(len(phi), dtype=bool)
    for _ in range(min(n, len(phi))):
        gain = weight * np.einsum("nd,de,ne->n", phi, cov, phi)
        i = int(np.argmax(np.where(free, gain, -np.inf)))
        chosen.append(i)
        free[i] = False
        u = cov @ phi[i]
        cov -= weight[i] * np.outer(u, u) / (1.0 + weight[i] * phi[i] @ u)
    return chosen
