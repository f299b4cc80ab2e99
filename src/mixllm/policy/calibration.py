"""From a :class:`~mixllm.policy.targets.Target` to the λ that meets it, by cross-fitting.

:func:`calibrate` splits the training queries into K folds and predicts each fold with a
fresh predictor fitted on the other folds, so every query gets an *out-of-fold* prediction
(one the predictor made without seeing that query's outcomes). It routes those predictions
on a grid of λ, from 0 (best predicted quality) to a λ that sends every query to its cheapest
predicted LLM, and records per λ what the routing would have realised: the mean recorded cost
and quality of the chosen LLMs, the share of calls to the reference, and the paired statistics
of the quality bound. :meth:`Calibration.lam_for` then picks, among the λ that meet the target,
the one with the best mean quality (ties: the cheaper).

A ``min_quality_share`` Q with confidence C and horizon m tests, λ by λ from 0 upwards, whether
the mean of d = quality routed − Q × quality of the reference over the next m queries is ≥ 0
with probability ≥ C, by :func:`horizon_lower_bound` at δ = 1 − C (the long run, m = None: the
expected d, by the empirical Bernstein lower bound of Maurer & Pontil, 2009), and stops at the
first λ it cannot certify (fixed sequence testing: the order is fixed before the outcomes are
seen, so choosing among the λ costs no extra δ). The λ chosen is the last one certified.
Both assume the queries, those calibrated on and those to come, are i.i.d. draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy.base import Predictor, choose_from_scores, lambda_grid, scores
from mixllm.policy.bounds import bernstein_lower_bound, horizon_lower_bound
from mixllm.policy.mixllm import MixLLMPredictor
from mixllm.policy.newcomers import with_candidates
from mixllm.policy.spend import SpendErrors, spend_errors
from mixllm.policy.targets import DEFAULT_CONFIDENCE, Target
from mixllm.types import Prediction, QueryBatch

__all__ = [
    "DEFAULT_FOLDS",
    "Calibration",
    "CalibrationPoint",
    "bernstein_lower_bound",
    "calibrate",
    "horizon_lower_bound",
    "pick_reference",
    "predict_for_choice",
]

FloatArray = NDArray[np.float64]

#: Folds of the cross-fitting (each query predicted by a model fitted on the other 4/5).
DEFAULT_FOLDS = 5
#: λ values of the calibration grid.
DEFAULT_N_LAMBDAS = 256
#: Per-λ arrays of a calibration, in :meth:`Calibration.to_dict` order.
_ARRAYS = (
    "lams", "cost_usd", "quality", "reference_share", "n_paired",
    "paired_quality", "paired_reference", "var_quality", "var_reference", "cov",
)  # fmt: skip


class CalibrationPoint(NamedTuple):
    """What routing at ``lam`` realised out of fold: mean cost (USD), mean quality and the share
    of calls to the reference."""

    lam: float
    cost_usd: float
    quality: float
    reference_share: float


@dataclass(frozen=True, eq=False)
class Calibration:
    """Per λ of a grid, what routing the out-of-fold predictions realised (see the module).

    ``reference`` is the LLM targets are relative to, with its mean cost and quality on the
    training data; ``quality_range`` the smallest and largest quality recorded (the range the
    bound needs). Arrays are per λ, ``lams`` ascending. ``spend``: how recorded costs relate to
    the out-of-fold predicted ones, per LLM (``None`` in calibrations saved before it was kept),
    for budgets that hold on what is spent (:mod:`mixllm.policy.spend`).
    """

    reference: str
    reference_cost_usd: float
    reference_quality: float
    folds: int
    n_queries: int
    quality_range: tuple[float, float]
    arrays: Mapping[str, FloatArray] = field(repr=False)
    spend: SpendErrors | None = field(default=None, repr=False)

    @property
    def lams(self) -> FloatArray:
        """The λ grid, ascending (0 first)."""
        return self.arrays["lams"]

    def point(self, i: int) -> CalibrationPoint:
        """What routing at the grid's ``i``-th λ realised."""
        a = self.arrays
        return CalibrationPoint(
            float(a["lams"][i]),
            float(a["cost_usd"][i]),
            float(a["quality"][i]),
            float(a["reference_share"][i]),
        )

    def point_for(self, target: Target) -> CalibrationPoint:
        """The grid point chosen for ``target`` (:class:`ConfigError` when none meets it)."""
        return self.point(self._index_for(target))

    def lam_for(self, target: Target) -> float:
        """The λ that meets ``target``; :class:`ConfigError`, naming the best achievable, when
        no λ of the grid does."""
        return self.point_for(target).lam

    def quality_lower_bounds(
        self, share: float, confidence: float, horizon: int | None = None
    ) -> FloatArray:
        """Per λ, the lower bound (at ``confidence``) of quality − share × the reference's: its
        mean over ``horizon`` future queries (None: its expectation), from the queries where both
        are recorded."""
        a, (lo, hi) = self.arrays, self.quality_range
        mean = a["paired_quality"] - share * a["paired_reference"]
        var = a["var_quality"] - 2 * share * a["cov"] + share**2 * a["var_reference"]
        delta = 1 - confidence
        if horizon is None:
            span = (1 + share) * (hi - lo)
            return bernstein_lower_bound(mean, var, a["n_paired"], span, delta)
        bounds = (lo - share * hi, hi - share * lo)
        return horizon_lower_bound(mean, var, a["n_paired"], bounds, delta, horizon)

    def best_quality_share(self, confidence: float, horizon: int | None = None) -> float:
        """The largest share of the reference's quality some λ certifies at ``confidence`` over
        ``horizon`` queries (None: the long run), to three decimals; 0 if none."""
        shares = np.arange(1000, 0, -1) / 1000
        passes = [self.quality_lower_bounds(float(s), confidence, horizon)[0] >= 0 for s in shares]
        return float(shares[passes.index(True)]) if any(passes) else 0.0

    def _index_for(self, target: Target) -> int:
        if not isinstance(target, Target):
            raise ConfigError(
                f"target={target!r}; expected a Target (mixllm.policy.targets.parse_target)"
            )
        a = self.arrays
        if target.kind == "min_quality_share":
            return self._quality_index(target)
        if target.kind == "strong_share":
            ok = a["reference_share"] <= target.value + 1e-12
            if not ok.any():
                raise ConfigError(
                    f"{target.describe(self.reference)} cannot be met: at least "
                    f"{a['reference_share'].min():.1%} of calls go to {self.reference} at any λ"
                )
        else:
            limit = target.value * (self.reference_cost_usd if target.kind == "cost_share" else 1.0)
            ok = a["cost_usd"] <= limit * (1 + 1e-9)
            if not ok.any():
                cheapest = float(a["cost_usd"].min())
                best = (
                    f"{cheapest / self.reference_cost_usd:.1%} of {self.reference}'s"
                    if target.kind == "cost_share"
                    else f"${cheapest:.6g} per query"
                )
                raise ConfigError(
                    f"{target.describe(self.reference)} cannot be met: the cheapest routing "
                    f"costs {best} (mean cost out of fold)"
                )
        quality = np.where(ok, a["quality"], -np.inf)
        tied = quality >= quality.max() - 1e-12
        return int(np.argmin(np.where(tied, a["cost_usd"], np.inf)))

    def _quality_index(self, target: Target) -> int:
        confidence = DEFAULT_CONFIDENCE if target.confidence is None else target.confidence
        certified = self.quality_lower_bounds(target.value, confidence, target.horizon) >= 0
        if not certified[0]:
            best = self.best_quality_share(confidence, target.horizon)
            raise ConfigError(
                f"{target.describe(self.reference)} cannot be met on this data: the best "
                f"certified is min_quality_share={best:g} at that confidence and horizon "
                f"({self.n_queries} queries calibrated on; out-of-fold mean "
                f"quality {self.arrays['quality'][0]:.4g} vs {self.reference}'s "
                f"{self.reference_quality:.4g})"
            )
        # fixed sequence: the last λ before the first one the bound cannot certify
        failed = np.flatnonzero(~certified)
        return int(failed[0] - 1) if failed.size else len(certified) - 1

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, read back by :meth:`from_dict`."""
        return {
            "reference": self.reference,
            "reference_cost_usd": self.reference_cost_usd,
            "reference_quality": self.reference_quality,
            "folds": self.folds,
            "n_queries": self.n_queries,
            "quality_range": list(self.quality_range),
            **{k: [float(x) for x in self.arrays[k]] for k in _ARRAYS},
            **({"spend": self.spend.to_dict()} if self.spend is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The calibration written by :meth:`to_dict` (``KeyError``/``ValueError`` if malformed)."""
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in _ARRAYS}
        if len({a.shape for a in arrays.values()}) != 1 or arrays["lams"].ndim != 1:
            raise ValueError("calibration arrays differ in length")
        lo, hi = data["quality_range"]
        return cls(
            reference=str(data["reference"]),
            reference_cost_usd=float(data["reference_cost_usd"]),
            reference_quality=float(data["reference_quality"]),
            folds=int(data["folds"]),
            n_queries=int(data["n_queries"]),
            quality_range=(float(lo), float(hi)),
            arrays=arrays,
            spend=SpendErrors.from_dict(data["spend"]) if "spend" in data else None,
        )


def pick_reference(dataset: Dataset, reference: str | None = None) -> str:
    """``reference`` if it names an LLM of ``dataset``, else the LLM with the best mean
    quality (ties: the cheaper by mean cost)."""
    if reference is not None:
        if reference not in dataset.llms:
            raise UnknownLLMError(
                f"reference={reference!r} is not an LLM of {dataset.name}; known: "
                f"{list(dataset.llms)}"
            )
        return reference
    with np.errstate(invalid="ignore"):
        quality = np.nan_to_num(np.nanmean(dataset.quality, axis=0), nan=-np.inf)
        cost = np.nan_to_num(np.nanmean(dataset.cost_usd, axis=0), nan=np.inf)
    best = np.flatnonzero(quality >= quality.max() - 1e-12)
    return dataset.llms[int(best[np.argmin(cost[best])])]


def predict_for_choice(
    predictor: Predictor,
    queries: QueryBatch,
    *,
    alpha: float = 0.0,
    candidates: Sequence[str] | None = None,
) -> tuple[Prediction, FloatArray | None]:
    """The prediction a router chooses from (``candidates`` only) and MixLLM's bonus for LLMs
    added without data; without the uncertainty when α = 0 (MixLLM's LinUCB bonus is its
    costliest part)."""
    if not isinstance(predictor, MixLLMPredictor):
        return with_candidates(predictor.predict(queries), None, candidates)
    pred = predictor.predict(queries, uncertainty=alpha != 0)
    return with_candidates(pred, predictor.newcomer_bonus(queries, alpha=alpha), candidates)


def note_routed(predictor: Predictor, queries: QueryBatch, llms: list[str]) -> None:
    """Tell MixLLM's predictor which LLM each of ``queries`` was sent to (its newcomers'
    pending answers); other predictors do not need it."""
    if isinstance(predictor, MixLLMPredictor):
        predictor.routed(queries, llms)


def calibrate(
    make_predictor: Callable[[], Predictor],
    dataset: Dataset,
    queries: QueryBatch,
    *,
    reference: str | None = None,
    folds: int = DEFAULT_FOLDS,
    n_lambdas: int = DEFAULT_N_LAMBDAS,
    alpha: float = 0.0,
    seed: int = 0,
) -> Calibration:
    """Cross-fit ``make_predictor()`` on ``dataset`` (``queries`` row-aligned with it) in
    ``folds`` folds and record the out-of-fold routing on a grid of ``n_lambdas`` λ."""
    ref = pick_reference(dataset, reference)
    n = len(dataset)
    if not (isinstance(folds, int) and 2 <= folds <= n):
        raise ConfigError(f"folds={folds!r}; expected an integer from 2 to {n} (the queries)")
    fold = np.random.default_rng(seed).permutation(n) % folds
    parts: list[tuple[NDArray[np.int64], Prediction]] = []
    for k in range(folds):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        fitted = make_predictor().fit(dataset.subset(train), _take(queries, train))
        pred, _ = predict_for_choice(fitted, _take(queries, test), alpha=alpha)
        parts.append((test, pred.select(dataset.llms)))
    order = np.concatenate([idx for idx, _ in parts])
    pred = _stack([p for _, p in parts], np.argsort(order))
    lams = lambda_grid(pred, n_lambdas)
    chosen = np.stack([choose_from_scores(pred, scores(pred, lam, alpha=alpha)) for lam in lams])
    calibration = _summarise(dataset, ref, chosen, lams, folds)
    spend = spend_errors(pred.cost_usd, dataset.cost_usd, dataset.llms, chosen=chosen, lams=lams)
    return replace(calibration, spend=spend)


def _summarise(
    dataset: Dataset, ref: str, chosen: NDArray[np.int64], lams: FloatArray, folds: int
) -> Calibration:
    """Per λ (rows of ``chosen``: the column chosen per query), the realised figures."""
    j = dataset.llm_index(ref)
    rows = np.arange(len(dataset))[None, :]
    q, c = dataset.quality[rows, chosen], dataset.cost_usd[rows, chosen]
    q_ref = np.broadcast_to(dataset.quality[:, j], q.shape)
    paired = ~np.isnan(q) & ~np.isnan(q_ref)
    n_paired = paired.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mq = np.where(paired, q, 0.0).sum(axis=1) / n_paired
        mr = np.where(paired, q_ref, 0.0).sum(axis=1) / n_paired
        dq, dr = np.where(paired, q - mq[:, None], 0.0), np.where(paired, q_ref - mr[:, None], 0.0)
        ddof = np.maximum(n_paired - 1, 1)
        arrays = {
            "lams": np.asarray(lams, dtype=np.float64),
            "cost_usd": np.nanmean(c, axis=1),
            "quality": np.nanmean(q, axis=1),
            "reference_share": (chosen == j).mean(axis=1),
            "n_paired": n_paired,
            "paired_quality": mq,
            "paired_reference": mr,
            "var_quality": (dq**2).sum(axis=1) / ddof,
            "var_reference": (dr**2).sum(axis=1) / ddof,
            "cov": (dq * dr).sum(axis=1) / ddof,
        }
    observed = dataset.quality[~np.isnan(dataset.quality)]
    return Calibration(
        reference=ref,
        reference_cost_usd=float(np.nanmean(dataset.cost_usd[:, j])),
        reference_quality=float(np.nanmean(dataset.quality[:, j])),
        folds=folds,
        n_queries=len(dataset),
        quality_range=(float(observed.min()), float(observed.max())) if observed.size else (0, 1),
        arrays={k: np.nan_to_num(v, nan=0.0) for k, v in arrays.items()},
    )


def _take(queries: QueryBatch, index: NDArray[np.int64]) -> QueryBatch:
    return QueryBatch(
        ids=tuple(queries.ids[i] for i in index),
        prompts=tuple(queries.prompts[i] for i in index),
        embeddings=queries.embeddings[index],
        prompt_tokens=queries.prompt_tokens[index],
    )


def _stack(preds: Sequence[Prediction], index: NDArray[np.int64]) -> Prediction:
    """The folds' predictions as one, rows reordered by ``index``."""

    def cat(arrays: Sequence[FloatArray | None]) -> FloatArray | None:
        if any(a is None for a in arrays):
            return None
        return np.concatenate([a for a in arrays if a is not None])[index]

    quality = cat([p.quality for p in preds])
    cost = cat([p.cost_usd for p in preds])
    assert quality is not None and cost is not None
    return Prediction(
        preds[0].llms,
        quality,
        cost,
        uncertainty=cat([p.uncertainty for p in preds]),
        output_tokens=cat([p.output_tokens for p in preds]),
    )
