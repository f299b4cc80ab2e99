"""Per-LLM cost baseline shared by the learned routers: list prices × (prompt, mean output) tokens.

MixLLM (§3.2) predicts the output length per query; this baseline uses each LLM's mean output
length on the training split instead, so a query's predicted cost varies only with its prompt.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import DataError, NotFittedError
from mixllm.predict.features import column_means
from mixllm.types import LLM

__all__ = ["MeanLengthCostModel"]

FloatArray = NDArray[np.float64]


class MeanLengthCostModel:
    """Cost per (query, LLM) = prompt tokens × input price + mean output tokens × output price.

    Prices are the dataset's :class:`~mixllm.types.LLM` records (USD per million tokens). An LLM
    without prices, or without the token counts the formula needs, falls back to its mean
    recorded ``cost_usd`` on the training split (0 when that is unknown too). A query whose
    prompt token count is NaN uses the training mean.

    >>> from mixllm.data.dataset import Outcome
    >>> from mixllm.types import LLM
    >>> ds = Dataset.from_outcomes(
    ...     [Outcome("q1", "hi", "a", 1.0, 0.5, prompt_tokens=10, output_tokens=20),
    ...      Outcome("q1", "hi", "b", 1.0, 0.25)],
    ...     prices={"a": LLM("a", price_in_per_mtok=1e5, price_out_per_mtok=2e5)})
    >>> m = MeanLengthCostModel().fit(ds)
    >>> m.predict(np.array([20.0])).tolist()
    [[6.0, 0.25]]
    """

    def fit(self, train: Dataset, prompt_tokens: FloatArray | None = None) -> MeanLengthCostModel:
        """Learn prices, mean output tokens and mean cost per LLM from ``train``.

        ``prompt_tokens`` (row-aligned with ``train``) overrides ``train.prompt_tokens``.
        """
        ptok = train.prompt_tokens if prompt_tokens is None else np.asarray(prompt_tokens, float)
        if ptok.shape != (len(train),):
            raise DataError(f"prompt_tokens has shape {ptok.shape}, expected ({len(train)},)")
        records = [train.llm(m) for m in train.llms]
        self.price_in_ = np.array([r.price_in_per_mtok for r in records], dtype=np.float64)
        self.price_out_ = np.array([r.price_out_per_mtok for r in records], dtype=np.float64)
        self.mean_output_tokens_ = column_means(train.output_tokens)
        self.mean_prompt_tokens_ = float(column_means(ptok[:, None])[0])
        has_price = (self.price_in_ > 0) | (self.price_out_ > 0)
        out_ok = (self.price_out_ == 0) | np.isfinite(self.mean_output_tokens_)
        in_ok = (self.price_in_ == 0) | np.isfinite(self.mean_prompt_tokens_)
        self.use_prices_ = has_price & out_ok & in_ok
        mean_cost = column_means(train.cost_usd)
        at_mean = self._formula(np.array([self.mean_prompt_tokens_]))[0]
        fallback = np.where(
            np.isfinite(mean_cost), mean_cost, np.where(self.use_prices_, at_mean, 0)
        )
        self.fallback_cost_usd_ = np.nan_to_num(fallback, nan=0.0)
        return self

    def _formula(self, prompt_tokens: FloatArray) -> FloatArray:
        out = np.nan_to_num(self.mean_output_tokens_, nan=0.0)
        # nan_to_num costs more than the formula; skip it when there is nothing to replace.
        finite = np.isfinite(prompt_tokens).all()
        ptok = prompt_tokens if finite else np.nan_to_num(prompt_tokens, nan=0.0)
        cost: FloatArray = (ptok[:, None] * self.price_in_ + out * self.price_out_) / 1e6
        return cost

    def predict(self, prompt_tokens: FloatArray) -> FloatArray:
        """Predicted cost in USD, shape (len(prompt_tokens), n_llms)."""
        if not hasattr(self, "use_prices_"):
            raise NotFittedError("MeanLengthCostModel is not fitted yet; call fit(train) first")
        ptok = np.asarray(prompt_tokens, dtype=np.float64).reshape(-1)
        ptok = np.where(np.isfinite(ptok), ptok, self.mean_prompt_tokens_)
        cost = np.where(self.use_prices_, self._formula(ptok), self.fallback_cost_usd_)
        return np.maximum(cost, 0.0)

    def add_llm(self, llm: LLM) -> None:
        """A new LLM with no recorded answers: its prices and the other LLMs' mean output length
        (an LLM added without prices is taken as free: a self-hosted model)."""
        if not hasattr(self, "use_prices_"):
            raise NotFittedError("MeanLengthCostModel is not fitted yet; call fit(train) first")
        known = np.isfinite(self.mean_output_tokens_)
        tokens = float(self.mean_output_tokens_[known].mean()) if known.any() else np.nan
        self.price_in_ = np.append(self.price_in_, llm.price_in_per_mtok)
        self.price_out_ = np.append(self.price_out_, llm.price_out_per_mtok)
        self.mean_output_tokens_ = np.append(self.mean_output_tokens_, tokens)
        priced = llm.price_in_per_mtok > 0 or llm.price_out_per_mtok > 0
        usable = priced and (llm.price_out_per_mtok == 0 or np.isfinite(tokens))
        self.use_prices_ = np.append(self.use_prices_, usable)
        at_mean = float(self._formula(np.array([self.mean_prompt_tokens_]))[0, -1])
        fallback = at_mean if usable else 0.0
        self.fallback_cost_usd_ = np.append(self.fallback_cost_usd_, np.nan_to_num(fallback))

    def remove_llm(self, j: int) -> None:
        """Forget LLM column ``j``."""
        for attr in ("price_in_", "price_out_", "mean_output_tokens_", "use_prices_"):
            setattr(self, attr, np.delete(getattr(self, attr), j))
        self.fallback_cost_usd_ = np.delete(self.fallback_cost_usd_, j)

    def get_arrays(self) -> dict[str, NDArray[np.generic]]:
        """The learned arrays (for saving without pickle)."""
        return {
            "price_in": self.price_in_,
            "price_out": self.price_out_,
            "mean_output_tokens": self.mean_output_tokens_,
            "mean_prompt_tokens": np.array(self.mean_prompt_tokens_),
            "use_prices": self.use_prices_,
            "fallback_cost_usd": self.fallback_cost_usd_,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[np.generic]]) -> MeanLengthCostModel:
        """A fitted model restored from :meth:`get_arrays`."""
        model = cls()
        model.price_in_ = np.asarray(arrays["price_in"], dtype=np.float64)
        model.price_out_ = np.asarray(arrays["price_out"], dtype=np.float64)
        model.mean_output_tokens_ = np.asarray(arrays["mean_output_tokens"], dtype=np.float64)
        model.mean_prompt_tokens_ = float(arrays["mean_prompt_tokens"])
        model.use_prices_ = np.asarray(arrays["use_prices"], dtype=bool)
        model.fallback_cost_usd_ = np.asarray(arrays["fallback_cost_usd"], dtype=np.float64)
        return model
