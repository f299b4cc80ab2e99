"""The MixLLM router's predictor (Wang et al., NAACL 2025): tag-enhanced query features, a
quality predictor and an output-length predictor per LLM, cost from tokens × prices, and a
LinUCB uncertainty per LLM. The shared :func:`~mixllm.policy.choose` turns its prediction into
a decision with the trade-off, bonus and latency terms of §3.3.

Each part is its own object in :mod:`mixllm.predict` / :mod:`mixllm.embed`, so one LLM can be
added or removed without refitting the others, and each is saved as parameters plus arrays.
Beyond the paper, with task labels the quality predictions are blended with each task's
training means (``task_prior``; :class:`~mixllm.predict.task_blend.TaskBlend`).

**Learning online** (§3.4). Per LLM, one :class:`~mixllm.predict.OnlineRidge` on the features
(plus a constant) holds LinUCB's A_l⁻¹, whose width is the uncertainty bonus, and a ridge
regression of the *residuals* of the offline predictors: observed quality minus predicted
quality, observed cost minus predicted cost. The training rows are in A_l with residual 0, so a
correction grows where the LLM meets queries unlike its training data (a new task, a drift) and
stays near 0 where the offline predictors already know. It is the same Bayesian linear model
that the bonus assumes, updated in O(d²) per feedback, and old feedback can be discounted.
Binary feedback (thumbs up/down) is a noisier label of the same quality: it enters as quality
1 or 0 with weight ``binary_weight``. An LLM added without data starts from a prior set by its
price tier (the training LLMs' mean quality against log price), learns its level over the
best fitted LLM per domain from its graded answers, and is explored even when the router's α
is 0 (:mod:`mixllm.policy.newcomers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy._features import one_query as _one
from mixllm.policy._features import price_arrays
from mixllm.policy._features import project as _project
from mixllm.policy._features import with_bias as _with_bias
from mixllm.policy._mixllm_state import restore_state, save_state
from mixllm.policy._tags import check_tags, fit_projection
from mixllm.policy.newcomers import (
    COLD_START_PRIOR_WEIGHT,
    EXPLORE_NEW,
    Newcomers,
    check_weight,
    tier_prior,
)
from mixllm.policy.state import (
    Arrays,
    BasePredictor,
    JSONValue,
)
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import column_means
from mixllm.predict.length import LengthModel, cost_from_tokens
from mixllm.predict.online import OnlineRidge
from mixllm.predict.quality import QualityModel
from mixllm.predict.task_blend import fit_blend
from mixllm.predict.threads import one_blas_thread
from mixllm.types import LLM, Prediction, QueryBatch

__all__ = ["COLD_START_PRIOR_WEIGHT", "MixLLMPredictor"]

FloatArray = NDArray[np.float64]
_PARTS = ("projection", "quality", "length", "uncertainty")

TASK_PRIOR_SHRINK = 200.0
"""Pseudo-count of each task's prior (``task_prior``): used alone, a task with 200 training
queries leans half on the overall best LLMs (RouterDC's HumanEval has ~130)."""

STATISTICS = ("training", "feedback", "split")
"""What the LinUCB statistics hold: see :class:`MixLLMPredictor`'s ``statistics``."""


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
    tags, tagged:
        Domains of the tag-enhanced features (:class:`~mixllm.embed.DomainProjection`):
        ``"task"`` (task labels if every query has one and there are ≥ 2, else KMeans),
        ``"domain"`` (the training split's ``Dataset.domains``, else the task), ``"kmeans"`` or
        ``"kmeans:K"`` (KMeans clusters: K, or the count by silhouette), ``None`` (no head, the
        ablation). ``tagged=False`` is ``tags=None`` (the older switch; saved routers load).
    ridge:
        The ``I`` weight of each LLM's LinUCB matrix A = ridge·I + Σ e eᵀ (also the prior of
        the online corrections).
    discount:
        γ in (0, 1]: each feedback first discounts the LLM's earlier observations by γ (1: no
        forgetting; 0.999 re-learns a drifting LLM over a few thousand of its queries).
    binary_weight:
        Weight of a thumbs up/down as a quality label of 1/0 (a measured quality weighs 1).
    statistics:
        What A_l holds besides ``ridge``·I. ``"training"``: the paper's LinUCB, the LLM's
        training rows (with residual 0) and every feedback, for both the bonus and the online
        corrections; corrections then stay small near the training data, and an unseen task
        is learned slowly. ``"feedback"``: feedback only, for both; corrections are learned
        fast, but the bonus no longer knows where the offline predictors are reliable, so the
        router explores everywhere. ``"split"``: the bonus from training rows and feedback,
        the corrections from feedback only (docs/results.md, streams).
    explore_new:
        Weight of the newcomer bonus: an LLM added without data (:meth:`add_llm`) scores
        ``explore_new`` × the standard deviation of its level in the query's domain (in units
        of the answers' noise; :class:`~mixllm.policy.newcomers.Newcomers`) on top of its
        predicted quality, so it is tried on each task until its answers there have shown its
        quality. 0 turns it off (α alone explores); other LLMs are unaffected.
    task_prior:
        Blend each task's training means per LLM into the quality predictions, per task with
        the weight that picks best out of fold (:class:`~mixllm.predict.task_blend.TaskBlend`;
        each prior shrunk by :data:`TASK_PRIOR_SHRINK` pseudo-observations; the task read from
        the query by a classifier on the features). Used when the training split has task
        labels of ≥ 2 tasks. On RouterDC's six tasks it adds 1.2 points of mean quality at
        λ = 0, on RouterBench's three nothing measurable (docs/results.md, many domains);
        ``False`` is the paper's predictor.
    seed:
        Seeds every random choice of the parts.
    """

    name = "mixllm"
    kind: ClassVar[str] = "mixllm"
    _param_names: ClassVar[tuple[str, ...]] = (
        "quality", "length", "tags", "tagged", "ridge", "discount", "binary_weight", "statistics",
        "explore_new", "task_prior", "seed",
    )  # fmt: skip

    def __init__(
        self,
        quality: str = "logistic",
        length: str = "ridge",
        *,
        tags: str | None = "task",
        tagged: bool = True,
        ridge: float = 1.0,
        discount: float = 1.0,
        binary_weight: float = 0.5,
        statistics: str = "training",
        explore_new: float = EXPLORE_NEW,
        task_prior: bool = True,
        seed: int = 0,
    ) -> None:
        self.quality = quality
        self.length = length
        self.tags = tags
        self.tagged = tagged
        self.ridge = ridge
        self.discount = discount
        self.binary_weight = binary_weight
        self.statistics = statistics
        self.explore_new = explore_new
        self.task_prior = task_prior
        self.seed = seed

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> MixLLMPredictor:
        """Fit every part on ``train`` and its row-aligned query embeddings."""
        tags = check_tags(self.tags, self.tagged)
        if not (isinstance(self.binary_weight, int | float) and self.binary_weight > 0):
            raise ConfigError(f"binary_weight={self.binary_weight!r}; expected a number > 0")
        if self.statistics not in STATISTICS:
            raise ConfigError(f"statistics={self.statistics!r}; expected one of {STATISTICS}")
        check_weight(self.explore_new)
        x = self._check_train(train, queries)
        with one_blas_thread("scipy.linalg"):
            self.projection_ = fit_projection(tags, train, x, self.seed)
            f = self._features(x)
            self.quality_ = QualityModel(self.quality, seed=self.seed).fit(f, train.quality)
            self.length_ = LengthModel(self.length, seed=self.seed).fit(
                f, train.prompt_tokens, train.output_tokens
            )
            self.blend_ = None  # a task prior needs ≥ 2 labelled tasks
            if self.task_prior and train.has_tasks and len(train.task_names) >= 2:
                labels, q = [str(t) for t in train.tasks], np.asarray(train.quality, np.float64)
                self.blend_ = fit_blend(self.quality_, f, q, labels, shrink=TASK_PRIOR_SHRINK)
            seen = np.isfinite(train.quality)
            fa = _with_bias(f)
            self.online_ = OnlineRidge(self.ridge, n_targets=2, discount=self.discount)
            self.online_.fit(fa, seen & (self.statistics == "training"), np.zeros((*seen.shape, 2)))
            self.novelty_: OnlineRidge | None = None
            if self.statistics == "split":
                self.novelty_ = OnlineRidge(self.ridge, n_targets=0, discount=self.discount)
                self.novelty_.fit(fa, seen, np.zeros((*seen.shape, 0)))
        self.corrected_ = False
        self.mean_quality_ = column_means(train.quality)
        tasks = [str(t) for t in train.tasks] if train.has_tasks else None
        self.cost_fallback_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        self.price_in_, self.price_out_, self.from_tokens_ = price_arrays(train)
        self.newcomers_ = Newcomers.fit(
            f, tasks, quality=train.quality, price_in=self.price_in_, price_out=self.price_out_,
            seed=self.seed,
        )  # fmt: skip
        self.llms_ = train.llms
        return self

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
        quality, cost, tokens = self._offline(
            f, np.asarray(queries.prompt_tokens, dtype=np.float64)
        )
        fa = _with_bias(f) if self.corrected_ or uncertainty else f
        offline = quality
        if self.corrected_:  # offline predictions are left bit for bit until feedback arrives
            corr = self.online_.mean(fa)
            quality = np.clip(quality + corr[:, :, 0], 0.0, 1.0)
            cost = cost + corr[:, :, 1]
        quality = self.newcomers_.apply(offline, quality, f)
        return Prediction(
            llms=self.llms_,
            quality=quality,  # in [0, 1]
            cost_usd=np.maximum(cost, 0.0),
            uncertainty=(self.novelty_ or self.online_).bonus(fa) if uncertainty else None,
            output_tokens=tokens,
        )

    def newcomer_bonus(self, queries: QueryBatch, *, alpha: float = 0.0) -> FloatArray | None:
        """What the scores add for LLMs added without data (:meth:`Newcomers.bonus
        <mixllm.policy.newcomers.Newcomers.bonus>` with weight ``explore_new`` − ``alpha``),
        shape (n, L); ``None`` when it adds nothing (no such LLM, or ``alpha`` >=
        ``explore_new``: the router's own α·width bonus covers them)."""
        weight = check_weight(self.explore_new) - alpha
        if not (self.newcomers_.flags_.any() and weight > 0):  # most routers have no newcomer
            return None
        return self.newcomers_.bonus(self._features(self._check_queries(queries)), weight)

    def routed(self, queries: QueryBatch, llms: list[str]) -> None:
        """``queries`` sent to ``llms`` (one each): pending answers (:meth:`Newcomers.routed`)."""
        cols = [self.llms_.index(m) for m in llms]
        self.newcomers_.routed(self._features(self._check_queries(queries)), cols)

    def _offline(
        self, f: FloatArray, ptok: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Quality, cost and output tokens from the offline predictors alone."""
        tokens = self.length_.predict(f, ptok)
        if self.from_tokens_.any():
            priced = cost_from_tokens(ptok, tokens, self.price_in_, self.price_out_)
            use = self.from_tokens_[None, :] & np.isfinite(priced)
            # The fallback only where some cell needs it (it costs as much as the rest).
            cost = priced if use.all() else np.where(use, priced, self.cost_fallback_.predict(ptok))
        else:
            cost = self.cost_fallback_.predict(ptok)
        quality = self.quality_.predict(f)
        if self.blend_ is not None:
            quality = np.clip(self.blend_.apply(quality, self.blend_.posterior(f)), 0.0, 1.0)
        return quality, cost, tokens

    # -- learning online -----------------------------------------------------------------------
    def learn(
        self,
        embedding: NDArray[Any],
        llm: str,
        *,
        prompt_tokens: float = float("nan"),
        quality: float | None = None,
        cost_usd: float | None = None,
        reward: bool | None = None,
    ) -> None:
        """Feedback on one answer of ``llm`` to the query embedded as ``embedding``: its measured
        quality and/or cost, or a thumbs up/down (``reward``, used when quality is unknown)."""
        j = self._index(llm)
        f = self._features(self._check_queries(_one(embedding, prompt_tokens)))
        weight = 1.0
        if quality is None and reward is not None:
            quality, weight = float(bool(reward)), float(self.binary_weight)
        if quality is None and cost_usd is None:
            return
        base_q, base_c, _ = self._offline(f, np.array([prompt_tokens], dtype=np.float64))
        fa = _with_bias(f)
        now = self.online_.mean(fa)[0, j]
        target = np.array(
            [
                now[0] if quality is None else quality - base_q[0, j],
                now[1]
                if cost_usd is None or not np.isfinite(base_c[0, j])
                else cost_usd - base_c[0, j],
            ]
        )
        self.online_.update(j, fa[0], target, weight=weight)
        if quality is not None:
            self.newcomers_.observe(j, f[0], quality, base_q[0], weight)
        if self.novelty_ is not None:
            self.novelty_.update(j, fa[0], np.zeros(0), weight=weight)
        self.corrected_ = True

    def add_llm(
        self, llm: LLM, seed: Dataset | None = None, queries: QueryBatch | None = None
    ) -> None:
        """Add ``llm`` without refitting the others: from seed outcomes (``seed``, one column
        for it, with its row-aligned ``queries``) or, without them, from a price-tier prior
        (its LinUCB width held with :data:`COLD_START_PRIOR_WEIGHT`: twice the others'),
        explored with the newcomer bonus (``explore_new``)."""
        self._check_fitted()
        if llm.name in self.llms_:
            raise ConfigError(f"LLM {llm.name!r} is already in the pool")
        d = self.online_.dim_ - 1
        new = seed is None or queries is None or not len(seed)
        if seed is not None and queries is not None and not new:
            col = seed.llm_index(llm.name)
            f = self._features(self._check_queries(queries))
            q = np.asarray(seed.quality[:, col], dtype=np.float64)
            self.quality_.add_llm(f, q)
            if self.blend_ is not None:
                self.blend_.add_llm(f, q, self.quality_.predict(f)[:, -1])
            self.length_.add_llm(f, queries.prompt_tokens, seed.output_tokens[:, col])
            j = self.online_.add_llm()
            if self.statistics == "training":
                for row in _with_bias(f)[np.isfinite(q)]:
                    self.online_.update(j, row, np.zeros(2))
            if self.novelty_ is not None:
                k = self.novelty_.add_llm()
                for row in _with_bias(f)[np.isfinite(q)]:
                    self.novelty_.update(k, row, np.zeros(0))
            mean_q = float(np.nanmean(q)) if np.isfinite(q).any() else np.nan
        else:
            self.quality_.add_llm(np.zeros((0, d)), np.zeros(0))
            if self.blend_ is not None:
                self.blend_.add_llm()
            self.length_.add_llm(np.zeros((0, d)), np.zeros(0), np.zeros(0))
            mean_q = tier_prior(self.mean_quality_, self.price_in_, self.price_out_, llm)
            # A price tier says less than fitted predictors: a weaker prior, a wider width.
            self.online_.add_llm(prior_weight=COLD_START_PRIOR_WEIGHT)
            if self.novelty_ is not None:
                self.novelty_.add_llm(prior_weight=COLD_START_PRIOR_WEIGHT)
        self.cost_fallback_.add_llm(llm)
        self.newcomers_.add(new, mean_q, self.mean_quality_)
        self.mean_quality_ = np.append(self.mean_quality_, mean_q)
        self.price_in_ = np.append(self.price_in_, llm.price_in_per_mtok)
        self.price_out_ = np.append(self.price_out_, llm.price_out_per_mtok)
        priced = llm.price_in_per_mtok > 0 or llm.price_out_per_mtok > 0
        self.from_tokens_ = np.append(self.from_tokens_, priced and bool(self.from_tokens_.any()))
        self.llms_ = (*self.llms_, llm.name)

    def remove_llm(self, name: str) -> None:
        """Drop ``name``; the other LLMs keep everything they learned."""
        j = self._index(name)
        if len(self.llms_) == 1:
            raise ConfigError(f"cannot remove {name!r}: it is the only LLM left")
        self.quality_.remove_llm(j)
        if self.blend_ is not None:
            self.blend_.remove_llm(j)
        self.length_.remove_llm(j)
        self.online_.remove_llm(j)
        if self.novelty_ is not None:
            self.novelty_.remove_llm(j)
        self.cost_fallback_.remove_llm(j)
        self.newcomers_.remove(j)
        for attr in ("mean_quality_", "price_in_", "price_out_", "from_tokens_"):
            setattr(self, attr, np.delete(getattr(self, attr), j))
        self.llms_ = tuple(m for m in self.llms_ if m != name)

    def _index(self, llm: str) -> int:
        self._check_fitted()
        if llm not in self.llms_:
            raise UnknownLLMError(f"unknown LLM {llm!r}; known: {sorted(self.llms_)}")
        return self.llms_.index(llm)

    # -- state ---------------------------------------------------------------------------------
    @classmethod
    def from_state(
        cls, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]
    ) -> MixLLMPredictor:
        """The predictor saved by :meth:`get_state`; one saved before ``explore_new`` or
        ``tags`` existed gets today's default (its ``tagged`` still says whether it has a head)."""
        old: dict[str, JSONValue] = {
            "explore_new": EXPLORE_NEW,
            "tags": "task",
            "task_prior": False,
        }
        return super().from_state({**old, **params}, arrays)

    def _state(self) -> tuple[dict[str, object], Arrays]:
        return save_state(self)

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        restore_state(self, params, arrays)
