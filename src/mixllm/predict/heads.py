"""Fitted one-LLM predictors ("heads") as plain arrays.

A head maps features to one number per row: a quality probability, or log output tokens. Four
forms cover every model kind: a constant, a linear model (logistic or identity link), a tree
ensemble (random forest or gradient boosting) and k nearest neighbours. Each form also predicts
a group of its heads at once (:meth:`Head.batch`: one matrix product for the linear heads, one
tree walk for the ensembles, one neighbour search per shared training set); see
:class:`~mixllm.predict.headset.HeadSet`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import PersistError
from mixllm.predict.features import sigmoid
from mixllm.predict.forest import TreeEnsemble
from mixllm.predict.neighbours import nearest, unit_rows

__all__ = [
    "FORMS",
    "Arrays",
    "ConstantHead",
    "ForestHead",
    "GroupPredict",
    "Head",
    "JSONValue",
    "KNNHead",
    "LinearHead",
    "Params",
    "array_digest",
]

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
Params = dict[str, JSONValue]
Arrays = dict[str, NDArray[Any]]
FloatArray = NDArray[np.float64]
GroupPredict = Callable[[FloatArray], FloatArray]


class Head:
    """One LLM's fitted predictor: ``predict(x) -> (n,)``; saved by ``get_state``."""

    form: ClassVar[str] = "head"

    def predict(self, x: FloatArray) -> FloatArray:
        """One value per row of ``x``."""
        return self.batch([self])(x)[:, 0]

    @classmethod
    def batch(cls, heads: Sequence[Head]) -> GroupPredict:
        """A function predicting ``heads`` (all of this form) at once: (n, len(heads))."""
        raise NotImplementedError

    def get_state(self) -> tuple[Params, Arrays]:
        """JSON-able parameters (with ``form``) and named arrays."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> Head:
        """The head saved by :meth:`get_state`."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class ConstantHead(Head):
    """The same value for every query (a prior, or a column with one observed value)."""

    value: float
    form: ClassVar[str] = "constant"

    @classmethod
    def batch(cls, heads: Sequence[Head]) -> GroupPredict:
        values = np.array([h.value for h in heads if isinstance(h, ConstantHead)])
        return lambda x: np.broadcast_to(values, (len(x), len(values))).copy()

    def get_state(self) -> tuple[Params, Arrays]:
        return {"form": self.form, "value": float(self.value)}, {}

    @classmethod
    def from_state(cls, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> Head:
        return cls(_number(params, "value"))


@dataclass(frozen=True, eq=False)
class LinearHead(Head):
    """``x @ coef + intercept``, through the logistic function when ``logistic``."""

    coef: FloatArray
    intercept: float
    logistic: bool
    form: ClassVar[str] = "linear"

    @classmethod
    def batch(cls, heads: Sequence[Head]) -> GroupPredict:
        hs = [h for h in heads if isinstance(h, LinearHead)]
        w = np.stack([h.coef for h in hs], axis=1)
        b = np.array([h.intercept for h in hs])
        logistic = np.array([h.logistic for h in hs])
        dim, every, some = len(w), bool(logistic.all()), bool(logistic.any())

        def run(x: FloatArray) -> FloatArray:
            z: FloatArray = (x if x.shape[1] == dim else x[:, :dim]) @ w + b
            if every:
                return sigmoid(z)
            if not some:
                return z
            out: FloatArray = np.where(logistic, sigmoid(z), z)
            return out

        return run

    def get_state(self) -> tuple[Params, Arrays]:
        params: Params = {"form": self.form, "intercept": float(self.intercept)}
        params["logistic"] = self.logistic
        return params, {"coef": self.coef}

    @classmethod
    def from_state(cls, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> Head:
        coef = np.asarray(arrays["coef"], dtype=np.float64)
        return cls(coef.reshape(-1), _number(params, "intercept"), bool(params["logistic"]))


@dataclass(frozen=True, eq=False)
class ForestHead(Head):
    """A tree ensemble's output, through the logistic function when ``logistic``."""

    trees: TreeEnsemble
    logistic: bool
    form: ClassVar[str] = "forest"

    @classmethod
    def batch(cls, heads: Sequence[Head]) -> GroupPredict:
        hs = [h for h in heads if isinstance(h, ForestHead)]
        logistic = np.array([h.logistic for h in hs])
        parts = []  # scikit-learn's forests compare float32 inputs, its boosting float64
        for f32 in (False, True):
            idx = [i for i, h in enumerate(hs) if h.trees.float32_inputs == f32]
            if idx:
                parts.append((idx, TreeEnsemble.concat([hs[i].trees for i in idx])))

        def run(x: FloatArray) -> FloatArray:
            z = np.zeros((len(x), len(hs)))
            for idx, trees in parts:
                z[:, idx] = trees.predict(x)
            out: FloatArray = np.where(logistic, sigmoid(z), z)
            return out

        return run

    def get_state(self) -> tuple[Params, Arrays]:
        params, arrays = self.trees.get_state()
        return {"form": self.form, "logistic": self.logistic, **params}, dict(arrays)

    @classmethod
    def from_state(cls, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> Head:
        return cls(TreeEnsemble.from_state(params, arrays), bool(params["logistic"]))


@dataclass(frozen=True, eq=False)
class KNNHead(Head):
    """Mean target of the ``k`` most cosine-similar training rows that have a target.

    ``embeddings`` are unit rows (float32); only the first ``embeddings.shape[1]`` features of
    a query are compared (so extra features such as prompt length can follow the embedding).
    ``targets`` is NaN where unknown: every LLM keeps the full training set, so heads fitted on
    the same queries share one array (stored once) and one neighbour search.
    """

    embeddings: NDArray[np.float32]
    targets: FloatArray
    k: int
    form: ClassVar[str] = "knn"

    @classmethod
    def batch(cls, heads: Sequence[Head]) -> GroupPredict:
        hs = [h for h in heads if isinstance(h, KNNHead)]
        groups: dict[str, list[int]] = {}
        for i, h in enumerate(hs):
            groups.setdefault(array_digest(h.embeddings), []).append(i)
        banks = {key: hs[idx[0]].embeddings.astype(np.float64) for key, idx in groups.items()}
        targets = {
            key: np.stack([hs[i].targets for i in idx], axis=1) for key, idx in groups.items()
        }
        ks = {key: np.array([hs[i].k for i in idx]) for key, idx in groups.items()}
        missing = {key: np.isnan(t).sum(axis=0) for key, t in targets.items()}

        def run(x: FloatArray) -> FloatArray:
            out = np.zeros((len(x), len(hs)))
            for key, idx in groups.items():
                bank, k = banks[key], ks[key]
                # The first k + (rows without a target) neighbours hold k rows with one.
                depth = min(len(bank), int((k + missing[key]).max()))
                nb = nearest(unit_rows(x[:, : bank.shape[1]]), bank, depth)
                t = targets[key][nb]  # (n, depth, heads)
                use = np.isfinite(t)
                use &= np.cumsum(use, axis=1) <= k
                out[:, idx] = np.where(use, t, 0.0).sum(axis=1) / k
            return out

        return run

    def get_state(self) -> tuple[Params, Arrays]:
        return {"form": self.form, "k": self.k}, {
            "embeddings": self.embeddings,
            "targets": self.targets,
        }

    @classmethod
    def from_state(cls, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> Head:
        emb = np.asarray(arrays["embeddings"], dtype=np.float32)
        targets = np.asarray(arrays["targets"], dtype=np.float64)
        k = params["k"]
        n_known = int(np.isfinite(targets).sum())
        if not isinstance(k, int) or emb.ndim != 2 or not 1 <= k <= n_known <= len(emb):
            raise PersistError(f"knn head: k={k!r} for {emb.shape} embeddings, {n_known} targets")
        if targets.shape != emb.shape[:1]:
            raise PersistError(f"knn head: {targets.shape} targets for {emb.shape} embeddings")
        return cls(emb, targets, k)


FORMS: dict[str, type[Head]] = {h.form: h for h in (ConstantHead, LinearHead, ForestHead, KNNHead)}


def array_digest(a: NDArray[Any]) -> str:
    """A hash of an array's dtype, shape and bytes (equal arrays, equal digests)."""
    arr = np.ascontiguousarray(a)
    h = hashlib.sha256(arr.tobytes())
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    return h.hexdigest()


def _number(params: Mapping[str, JSONValue], name: str) -> float:
    value = params[name]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PersistError(f"saved {name}={value!r}; expected a number")
    return float(value)
