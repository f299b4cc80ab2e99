"""What every built-in predictor shares: fitted checks, input checks, and saving its state as
JSON-able parameters plus plain arrays (no pickle), restored by ``from_state``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeAlias, TypeVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import DataError, NotFittedError, PersistError
from mixllm.policy.base import Predictor
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.types import Prediction, QueryBatch

__all__ = [
    "Arrays",
    "BasePredictor",
    "JSONValue",
    "Params",
    "SavablePredictor",
    "cost_arrays",
    "part_state",
    "parts_state",
    "restore_cost",
]

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
Params = dict[str, JSONValue]
Arrays = dict[str, NDArray[Any]]
P = TypeVar("P", bound="BasePredictor")


class SavablePredictor(Predictor, Protocol):
    """A predictor whose fitted state is JSON-able parameters plus named arrays.

    The class restores it with ``from_state(params, arrays)``; see
    :func:`mixllm.policy.predictor_from_state`.
    """

    def get_state(self) -> tuple[Params, Arrays]: ...


def _to_json(value: object) -> JSONValue:
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return _to_json(value.item())
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"parameter value {value!r} is not JSON-able")


def _from_json(value: JSONValue) -> object:
    return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


class BasePredictor:
    """Shared machinery; subclasses implement ``fit``, ``predict`` and the ``_state`` hooks.

    ``_param_names`` lists the constructor parameters saved with the state; ``kind`` is the
    registry family (``single`` for ``single:<llm>``).
    """

    name: str = "base"
    kind: ClassVar[str] = "base"
    _param_names: ClassVar[tuple[str, ...]] = ()
    llms_: tuple[str, ...]

    def fit(self, train: Dataset, queries: QueryBatch) -> BasePredictor:
        """Learn from ``train`` and its row-aligned ``queries``; returns ``self``."""
        raise NotImplementedError

    def predict(self, queries: QueryBatch) -> Prediction:
        """Predicted quality and cost per query and LLM (columns in ``llms_`` order)."""
        raise NotImplementedError

    # -- checks --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "llms_"):
            raise NotFittedError(
                f"{type(self).__name__} ({self.name!r}) is not fitted yet; call fit(train, queries)"
            )

    @staticmethod
    def _check_train(train: Dataset, queries: QueryBatch) -> NDArray[np.float64]:
        """Validate row alignment; returns the training embeddings as float64."""
        if len(queries) != len(train):
            raise DataError(
                f"{len(queries)} training queries for {len(train)} dataset rows; "
                "expected them row-aligned"
            )
        if len(train) == 0:
            raise DataError(f"{train.name}: no training queries")
        return _embeddings(queries)

    def _input_dim(self) -> int | None:
        """Embedding width the fitted model expects (``None``: any; override)."""
        return None

    def _check_queries(self, queries: QueryBatch) -> NDArray[np.float64]:
        """Check fitted, then the batch and its width; returns float64 embeddings."""
        self._check_fitted()
        x = _embeddings(queries)
        dim = self._input_dim()
        if dim is not None and x.shape[1] != dim:
            raise DataError(
                f"query embeddings have dimension {x.shape[1]}; {self.name!r} was fitted on {dim}"
            )
        return x

    def _prediction(self, quality: NDArray[np.float64], cost: NDArray[np.float64]) -> Prediction:
        return Prediction(
            llms=self.llms_,
            quality=np.clip(np.asarray(quality, dtype=np.float64), 0.0, 1.0),
            cost_usd=np.maximum(np.asarray(cost, dtype=np.float64), 0.0),
        )

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[Params, Arrays]:
        """JSON-able parameters (constructor arguments, LLM names, learned scalars) and arrays."""
        self._check_fitted()
        params: Params = {p: _to_json(getattr(self, p)) for p in self._param_names}
        params["llms"] = list(self.llms_)
        fitted, arrays = self._state()
        params.update({k: _to_json(v) for k, v in fitted.items()})
        return params, arrays

    @classmethod
    def from_state(cls: type[P], params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> P:
        """A fitted predictor equal to the one whose :meth:`get_state` gave these."""
        try:
            obj = cls(**{p: _from_json(params[p]) for p in cls._param_names})
            llms = params["llms"]
            if not isinstance(llms, list):
                raise PersistError(f"state of {cls.kind!r}: 'llms' is {llms!r}, expected a list")
            obj.llms_ = tuple(str(m) for m in llms)
            obj._restore(params, {k: np.asarray(v) for k, v in arrays.items()})
        except KeyError as exc:
            raise PersistError(f"state of {cls.kind!r} lacks {exc.args[0]!r}") from None
        return obj

    def _state(self) -> tuple[dict[str, object], Arrays]:
        """Learned scalars and arrays beyond ``llms_`` (override)."""
        return {}, {}

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        """Set learned attributes from :meth:`_state`'s output (override)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._param_names)
        return f"{type(self).__name__}({args})"


def _embeddings(queries: QueryBatch) -> NDArray[np.float64]:
    x = np.asarray(queries.embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(queries):
        raise DataError(
            f"query embeddings have shape {x.shape}; "
            f"expected ({len(queries)}, dim), one row per query"
        )
    return x


_COST = "costmodel_"


def cost_arrays(model: MeanLengthCostModel) -> Arrays:
    """A cost model's arrays, with names prefixed so they sit beside a predictor's own."""
    return {_COST + k: v for k, v in model.get_arrays().items()}


def restore_cost(arrays: Mapping[str, Any]) -> MeanLengthCostModel:
    """The cost model saved by :func:`cost_arrays`."""
    return MeanLengthCostModel.from_arrays(
        {k[len(_COST) :]: v for k, v in arrays.items() if k.startswith(_COST)}
    )


def parts_state(parts: Mapping[str, Any]) -> tuple[dict[str, object], Arrays]:
    """The states of fitted ``parts`` (each with ``get_state()``) under their keys: parameters
    by key, arrays prefixed ``key.`` (read back with :func:`part_state`)."""
    params: dict[str, object] = {}
    arrays: Arrays = {}
    for key, part in parts.items():
        p, a = part.get_state()
        params[key] = p
        arrays.update({f"{key}.{k}": v for k, v in a.items()})
    return params, arrays


def part_state(
    params: Mapping[str, Any], arrays: Mapping[str, Any], key: str
) -> tuple[Any, dict[str, Any]]:
    """The parameters and arrays that :func:`parts_state` saved for ``key``."""
    if key not in params:
        raise PersistError(f"saved state has no part {key!r}; parts: {sorted(params)}")
    prefix = key + "."
    return params[key], {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
