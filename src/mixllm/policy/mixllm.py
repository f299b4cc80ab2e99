"""The MixLLM router's predictor (Wang et al., NAACL 2025): tag-enhanced query features, a
quality predictor and an output-length predictor per LLM, cost from tokens × prices, and a
LinUCB uncertainty per LLM. The shared :func:`~mixllm.policy.choose` turns its prediction into
a decision with the trade-off, bonus and latency terms of §3.3.

Each part is its own object in :mod:`mixllm.predict` / :mod:`mixllm.embed`, so one LLM can be
added or removed without refitting the others, and each is saved as parameters plus arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.embed.tagged import DomainProjection
from mixllm.errors import ConfigError
from mixllm.policy.state import Arrays, BasePredictor, JSONValue, cost_arrays, restore_cost
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.length import LengthModel, cost_from_tokens
from mixllm.predict.quality import QualityModel
from mixllm.predict.threads import one_blas_thread
from mixllm.predict.uncertainty import UncertaintyModel
from mixllm.types import Prediction, QueryBatch

__all__ = ["MixLLMPredictor"]

FloatArray = NDArray[np.float64]
_PARTS = ("projection", "quality", "length", "uncertainty")


class MixLLMPredictor(BasePredictor):
    """Quality, cost and uncertainty per LLM, as in MixLLM (§3.1–3.3).

    Parameters
    ----------
    quality:
        Kind of per-LLM quality predictor (:class:`~mixllm.predict.QualityModel`). The default
        ``"logistic"`` (C by cross-validation) is what ``"auto"`` picks on RouterBench by
        cross-validated Brier score among random forest (the paper's), logistic, gradient
        boosting and kNN, at 0.013 ms per query against 0.26 ms for the forest and ~100x less
        fitting time; ``"auto"`` makes that choice on your data.
    length:
        Kind of per-LLM output-length regressor (:class:`~mixllm.predict.LengthModel`); the
        default ``"ridge"`` is 0.02 ms per query (``"auto"`` picks kNN on RouterBench: 12 vs 16
        tokens MAE, at 0.14 ms).
    tagged:
        Use the tag-enhanced features (:class:`~mixllm.embed.DomainProjection`, domains from
        task labels when every query has one and there are at least two, else KMeans
        clusters); ``False`` for the ablation.
    ridge:
        The ``I`` weight of each LLM's LinUCB matrix A = ridge·I + Σ e eᵀ.
    seed:
        Seeds every random choice of the parts.
    """

    name = "mixllm"
    kind: ClassVar[str] = "mixllm"
    _param_names: ClassVar[tuple[str, ...]] = ("quality", "length", "tagged", "ridge", "seed")

    def __init__(
        self,
        quality: str = "logistic",
        length: str = "ridge",
        *,
        tagged: bool = True,
        ridge: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.quality = quality
        self.length = length
        self.tagged = tagged
        self.ridge = ridge
        self.seed = seed

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> MixLLMPredictor:
        """Fit every part on ``train`` and its row-aligned query embeddings."""
        if not isinstance(self.tagged, bool):
            raise ConfigError(f"tagged={self.tagged!r}; expected True or False")
        x = self._check_train(train, queries)
        with one_blas_thread("scipy.linalg"):
            self.projection_: DomainProjection | None = None
            if self.tagged:
                # Task labels are the domains when there are at least two; else KMeans clusters.
                labelled = train.has_tasks and len(train.task_names) >= 2
                domains = [str(t) for t in train.tasks] if labelled else None
                self.projection_ = DomainProjection(seed=self.seed)
                self.projection_.fit(x.astype(np.float32), domains)
            f = self._features(x)
            self.quality_ = QualityModel(self.quality, seed=self.seed).fit(f, train.quality)
            self.length_ = LengthModel(self.length, seed=self.seed).fit(
                f, train.prompt_tokens, train.output_tokens
            )
            self.uncertainty_ = UncertaintyModel(self.ridge).fit(f, np.isfinite(train.quality))
        self.cost_fallback_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        self._set_prices(train)
        self.llms_ = train.llms
        return self

    def _set_prices(self, train: Dataset) -> None:
        """Prices per LLM, and which LLMs can be costed from predicted tokens."""
        llms = [train.llm(m) for m in train.llms]
        self.price_in_ = np.array([m.price_in_per_mtok for m in llms], dtype=np.float64)
        self.price_out_ = np.array([m.price_out_per_mtok for m in llms], dtype=np.float64)
        has_tokens = np.isfinite(train.output_tokens).any(axis=0)
        priced = (self.price_in_ > 0) | (self.price_out_ > 0)
        self.from_tokens_ = has_tokens & priced & np.isfinite(train.prompt_tokens).any()

    def _features(self, x: FloatArray) -> FloatArray:
        if self.projection_ is None:
            return x
        return _project(self.projection_, x.astype(np.float32)).astype(np.float64)

    def _input_dim(self) -> int | None:
        return int(self.quality_.dim_) if self.projection_ is None else len(self.projection_.mean_)

    # -- predicting ----------------------------------------------------------------------------
    def predict(self, queries: QueryBatch, *, uncertainty: bool = True) -> Prediction:
        """Predicted quality, cost (USD) and uncertainty per query and LLM.

        ``uncertainty=False`` leaves :attr:`~mixllm.types.Prediction.uncertainty` out
        (``None``); a :class:`~mixllm.Router` whose ``alpha`` is 0 asks for that, since its
        scores do not use the bonus.
        """
        f = self._features(self._check_queries(queries))
        ptok = np.asarray(queries.prompt_tokens, dtype=np.float64)
        if self.from_tokens_.any():
            tokens = self.length_.predict(f, ptok)
            priced = cost_from_tokens(ptok, tokens, self.price_in_, self.price_out_)
            use = self.from_tokens_[None, :] & np.isfinite(priced)
            # The fallback only where some cell needs it (it costs as much as the rest).
            cost = priced if use.all() else np.where(use, priced, self.cost_fallback_.predict(ptok))
        else:
            cost = self.cost_fallback_.predict(ptok)
        return Prediction(
            llms=self.llms_,
            quality=self.quality_.predict(f),  # in [0, 1]
            cost_usd=np.maximum(cost, 0.0),
            uncertainty=self.uncertainty_.bonus(f) if uncertainty else None,
        )

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, object], Arrays]:
        parts: dict[str, Any] = {
            "quality": self.quality_,
            "length": self.length_,
            "uncertainty": self.uncertainty_,
        }
        if self.projection_ is not None:
            parts["projection"] = self.projection_
        params: dict[str, object] = {}
        arrays: Arrays = {
            "price_in": self.price_in_,
            "price_out": self.price_out_,
            "from_tokens": self.from_tokens_,
            **cost_arrays(self.cost_fallback_),
        }
        for key, part in parts.items():
            p, a = part.get_state()
            params[key] = p
            arrays.update({f"{key}.{k}": v for k, v in a.items()})
        return params, arrays

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        def part(key: str) -> tuple[Any, dict[str, Any]]:
            prefix = key + "."
            return params[key], {
                k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)
            }

        self.projection_ = DomainProjection.from_state(*part("projection")) if self.tagged else None
        self.quality_ = QualityModel.from_state(*part("quality"))
        self.length_ = LengthModel.from_state(*part("length"))
        self.uncertainty_ = UncertaintyModel.from_state(*part("uncertainty"))
        self.cost_fallback_ = restore_cost(arrays)
        self.price_in_ = np.asarray(arrays["price_in"], dtype=np.float64)
        self.price_out_ = np.asarray(arrays["price_out"], dtype=np.float64)
        self.from_tokens_ = np.asarray(arrays["from_tokens"], dtype=bool)


def _project(projection: DomainProjection, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """``projection.transform(x)``, the same arithmetic in a third of the numpy calls (a
    quarter of one decision's predict time went to the calls); tests check both agree bit for
    bit. Input it would reject goes to ``transform`` for its error."""
    if x.ndim != 2 or x.shape[1] != len(projection.mean_) or not np.isfinite(x).all():
        return projection.transform(x)
    z: NDArray[np.float32] = _unit_rows((x - projection.mean_) @ projection.W_)
    if projection.input_weight > 0:
        head = np.float32(projection.input_weight) * _unit_rows(x)
        z = np.concatenate([head, z], axis=1).astype(np.float32, copy=False)
    return _unit_rows(z)


def _unit_rows(m: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows over their length (at least 1e-12), the length as ``numpy.linalg.norm`` computes it
    (as :func:`mixllm.embed.tagged` does)."""
    norm = np.sqrt(np.add.reduce(m * m, axis=1, keepdims=True))
    return cast(NDArray[np.float32], m / np.maximum(norm, np.float32(1e-12)))
