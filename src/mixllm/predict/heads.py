"""Fitted one-LLM predictors ("heads") as plain arrays, and :class:`HeadSet`, one head per LLM.

A head maps features to one number per row: a quality probability, or log output tokens. Four
forms cover every model kind: a constant, a linear model (logistic or identity link), a tree
ensemble (random forest or gradient boosting) and k nearest neighbours. :class:`HeadSet`
predicts all LLMs at once, batching heads of one form (one matrix product for the linear heads,
one tree walk for the ensembles, one neighbour search per shared training set), and saves them
as JSON-able parameters plus arrays, storing an array shared by several heads once.
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
    "Arrays",
    "ConstantHead",
    "ForestHead",
    "Head",
    "HeadSet",
    "JSONValue",
    "KNNHead",
    "LinearHead",
    "Params",
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

        def run(x: FloatArray) -> FloatArray:
            z = x[:, : len(w)] @ w + b
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
    """Mean target of the ``k`` training rows most cosine-similar to the query.

    ``embeddings`` are unit rows (float32); only the first ``embeddings.shape[1]`` features of
    a query are compared (so extra features such as prompt length can follow the embedding).
    """

    embeddings: NDArray[np.float32]
    targets: FloatArray
    k: int
    form: ClassVar[str] = "knn"

    @classmethod
    def batch(cls, heads: Sequence[Head]) -> GroupPredict:
        hs = [h for h in heads if isinstance(h, KNNHead)]
        groups: dict[str, list[int]] = {}
        for i, h in enumerate(hs):  # heads trained on the same rows share one search
            groups.setdefault(_digest(h.embeddings), []).append(i)
        banks = {key: hs[idx[0]].embeddings.astype(np.float64) for key, idx in groups.items()}

        def run(x: FloatArray) -> FloatArray:
            out = np.zeros((len(x), len(hs)))
            for key, idx in groups.items():
                bank = banks[key]
                k_max = max(hs[i].k for i in idx)
                nb = nearest(unit_rows(x[:, : bank.shape[1]]), bank, k_max)
                for i in idx:
                    out[:, i] = hs[i].targets[nb[:, : hs[i].k]].mean(axis=1)
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
        if not isinstance(k, int) or emb.ndim != 2 or not 1 <= k <= len(emb) == len(targets):
            raise PersistError(f"knn head: k={k!r} for {emb.shape} embeddings, {targets.shape}")
        return cls(emb, targets, k)


FORMS: dict[str, type[Head]] = {h.form: h for h in (ConstantHead, LinearHead, ForestHead, KNNHead)}


class HeadSet:
    """One head per LLM (a list: LLMs are added and removed without touching the others).

    :meth:`predict` batches heads of the same form; the batched functions are built on first
    use after a change.
    """

    def __init__(self, heads: Sequence[Head] = ()) -> None:
        self.heads = list(heads)
        self._compiled: list[tuple[list[int], GroupPredict]] | None = None

    def __len__(self) -> int:
        return len(self.heads)

    def append(self, head: Head) -> None:
        self.heads.append(head)
        self._compiled = None

    def pop(self, j: int) -> Head:
        self._compiled = None
        return self.heads.pop(j)

    def predict(self, x: FloatArray) -> FloatArray:
        """Shape (n, len(self)): column j is head j's prediction."""
        if self._compiled is None:
            forms: dict[type[Head], list[int]] = {}
            for j, h in enumerate(self.heads):
                forms.setdefault(type(h), []).append(j)
            self._compiled = [
                (idx, form.batch([self.heads[j] for j in idx])) for form, idx in forms.items()
            ]
        out = np.zeros((len(x), len(self.heads)))
        for idx, run in self._compiled:
            out[:, idx] = run(x)
        return out

    def get_state(self) -> tuple[list[JSONValue], Arrays]:
        """Per-head parameters and arrays named ``h<j>.<name>``; an array equal to one already
        stored is saved once and referenced as ``{"same_as": key}`` in its head's ``shared``."""
        params: list[JSONValue] = []
        arrays: Arrays = {}
        seen: dict[str, str] = {}
        for j, head in enumerate(self.heads):
            p, arrs = head.get_state()
            shared: dict[str, JSONValue] = {}
            for name, a in arrs.items():
                key, digest = f"h{j}.{name}", _digest(a)
                if digest in seen:
                    shared[name] = seen[digest]
                else:
                    seen[digest] = key
                    arrays[key] = a
            params.append({**p, "shared": shared})
        return params, arrays

    @classmethod
    def from_state(cls, params: Sequence[JSONValue], arrays: Mapping[str, Any]) -> HeadSet:
        """The heads saved by :meth:`get_state`; unknown forms raise ``PersistError``."""
        heads: list[Head] = []
        for j, p in enumerate(params):
            if not isinstance(p, dict) or p.get("form") not in FORMS:
                form = p.get("form") if isinstance(p, dict) else p
                raise PersistError(f"head {j}: unknown form {form!r}; known: {sorted(FORMS)}")
            shared = p.get("shared", {})
            if not isinstance(shared, dict):
                raise PersistError(f"head {j}: 'shared' is {shared!r}, expected a mapping")
            prefix = f"h{j}."
            own = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            try:
                own.update({name: arrays[str(key)] for name, key in shared.items()})
                heads.append(FORMS[str(p["form"])].from_state(p, own))
            except (KeyError, ValueError, TypeError) as exc:
                raise PersistError(f"head {j} ({p['form']}): bad state: {exc!r}") from None
        return cls(heads)


def _digest(a: NDArray[Any]) -> str:
    arr = np.ascontiguousarray(a)
    h = hashlib.sha256(arr.tobytes())
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    return h.hexdigest()


def _number(params: Mapping[str, JSONValue], name: str) -> float:
    value = params[name]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PersistError(f"saved {name}={value!r}; expected a number")
    return float(value)
