"""LLMs that join a fitted MixLLM router without data: what is expected of them, and how they
get tried.

An LLM added without outcomes starts from a **price-tier prior**: the training LLMs' mean
quality regressed on log price (:func:`tier_prior`). Its predicted quality at a query is the
best fitted LLM's predicted quality there plus its **level** (:class:`Newcomers`): an offset
over all domains and one per domain, a small Gaussian model whose prior spreads and answer
noise are measured on the training LLMs (:func:`level_spread`), updated by each graded answer
of the newcomer.

A prior is a guess, and a router that never tries the newcomer never learns whether the guess
was low. With the router's bonus weight α = 0 (the default) no uncertainty is used at all, so a
newcomer priced like the middle of the pool would never be chosen. The **newcomer bonus** aims
exploration at what is actually unknown: ``explore_new`` (:data:`EXPLORE_NEW` by default) × the
standard deviation of the newcomer's level in the query's domain, in units of the answers'
noise (as LinUCB's width is), added to its score even when α = 0. It shrinks like one over the
square root of the newcomer's graded answers in that domain, so a newcomer is tried afresh on
each task it has not answered, a few unlucky grades move its level by what they show and no
more, and once it has been learned the clients are sent to it by its predictions. It exists only
for LLMs added without data, so a router to which no such LLM was added routes exactly as
before. With α >= ``explore_new`` it adds nothing: the router's own α × width then explores the
newcomer, whose LinUCB width in the feature space starts twice the others'
(:data:`COLD_START_PRIOR_WEIGHT`) and is also what shadow traffic picks by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError
from mixllm.predict.features import column_means
from mixllm.types import LLM, Prediction

__all__ = [
    "COLD_START_PRIOR_WEIGHT",
    "EXPLORE_NEW",
    "LEVEL_DEFAULT",
    "LEVEL_FLOOR",
    "MAX_DOMAINS",
    "Newcomers",
    "check_weight",
    "level_spread",
    "tier_prior",
    "with_candidates",
]

FloatArray = NDArray[np.float64]

COLD_START_PRIOR_WEIGHT = 0.25
"""Weight of an LLM's price-tier prior, added with no data, relative to the prior of an LLM
with fitted predictors (A = weight·ridge·I: a bonus 1/sqrt(weight) = 2 times wider)."""

EXPLORE_NEW = 1.0
"""Default weight of the newcomer bonus (``MixLLMPredictor(explore_new=...)``): the weight on
the standard deviation of the level of an LLM added without data (in units of the answers'
noise) added to its score, whatever the router's α; measured in docs/results.md (cold start)."""


def check_weight(value: object, name: str = "explore_new") -> float:
    """``value`` as a finite weight >= 0, or :class:`~mixllm.errors.ConfigError` naming it
    ``name`` (``explore_new``, or a router call's ``explore_scale``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and np.isfinite(float(value)) and float(value) >= 0):  # type: ignore[arg-type]
        raise ConfigError(f"{name}={value!r}; expected a finite number >= 0")
    return float(value)  # type: ignore[arg-type]


def tier_prior(
    mean_quality: FloatArray, price_in: FloatArray, price_out: FloatArray, llm: LLM
) -> float:
    """Expected quality of an unseen LLM from its price: the known LLMs' mean quality
    regressed on log price, kept within their range (0.5 when no LLM's quality is known).

    >>> q, p = np.array([0.5, 0.9]), np.array([0.1, 10.0])
    >>> round(tier_prior(q, p, p, LLM("mid", 1.0, 1.0)), 3), tier_prior(q, p, p, LLM("top", 99, 99))
    (0.7, 0.9)
    """
    known = np.isfinite(mean_quality)
    if not known.any():
        return 0.5
    ys = mean_quality[known]
    xs = np.log10(1e-3 + price_in + price_out)[known]
    x = np.log10(1e-3 + llm.price_in_per_mtok + llm.price_out_per_mtok)
    if len(ys) >= 2 and np.ptp(xs) > 0:
        slope, intercept = np.polyfit(xs, ys, 1)
        return float(np.clip(intercept + slope * x, ys.min(), ys.max()))
    return float(ys.mean())


def with_candidates(
    pred: Prediction, bonus: FloatArray | None, candidates: Sequence[str] | None
) -> tuple[Prediction, FloatArray | None]:
    """``pred`` and its newcomer ``bonus`` restricted to the columns of ``candidates`` (both
    unchanged when ``candidates`` is ``None``)."""
    if candidates is None:
        return pred, bonus
    chosen = pred.select(candidates)
    if bonus is None:
        return chosen, None
    return chosen, bonus[:, [pred.llms.index(m) for m in chosen.llms]]


LEVEL_FLOOR = np.array([0.01, 0.0025, 0.0025])
"""Least variances of :func:`level_spread` (noise, overall, domain): standard deviations of
0.1, 0.05 and 0.05 in quality."""

LEVEL_DEFAULT = np.array([0.2, 0.015, 0.01])
"""The variances a router saved before the level model gets (those of binary grades and of
RouterBench's LLMs, rounded)."""

MAX_DOMAINS = 8
"""Domains a router without task labels splits its training queries into (KMeans), so that a
newcomer is learned where it was tried."""


class Newcomers:
    """Which LLMs were added without data, and what their answers have taught about them.

    A newcomer's quality at a query is the **baseline** there (the best fitted LLM's predicted
    quality, which follows how hard the query is for the LLMs it competes with) plus the
    newcomer's **level**, an offset δ over all domains plus one η_d per domain: a Gaussian model
    with a prior δ ~ N(δ₀, overall), η_d ~ N(0, domain), δ₀ the price tier's guess minus the
    best fitted LLM's mean quality, and each graded answer an observation of δ + η_d with the
    training answers' noise (:func:`level_spread`). A few
    parameters, so a handful of answers per domain moves the level by what they show and no
    more, and its standard deviation shrinks like one over the square root of the answers there.
    The domains are the training queries' tasks (or KMeans clusters of their features without
    tasks), kept as unit centres; a query belongs to the nearest.

    >>> f = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    >>> q, price = np.array([[0.9, 0.2], [0.1, 0.8], [1.0, 0.3]]), np.ones(2)
    >>> n = Newcomers.fit(f, ["a", "b", "a"], quality=q, price_in=price, price_out=price)
    >>> n.add(True, expected=0.7, means=np.array([0.6, 0.5]))  # a third LLM, without data
    >>> mean, sd = n.levels(f)
    >>> mean[:, 2].round(2).tolist(), sd[:, 0].tolist()  # LLM 0 is no newcomer
    ([0.1, 0.1, 0.1], [0.0, 0.0, 0.0])
    >>> for _ in range(20):  # 20 answers on domain "a", each 0.5 above the baseline (0.4)
    ...     n.observe(2, f[0], quality=0.9, offline=np.array([0.4, 0.3, 0.0]))
    >>> later, narrower = n.levels(f)
    >>> bool(later[0, 2] > later[1, 2] > 0.1), bool(narrower[0, 2] < narrower[1, 2] <= sd[1, 2])
    (True, True)
    """

    def __init__(
        self,
        centres: FloatArray,
        flags: NDArray[np.bool_],
        counts: FloatArray,
        sums: FloatArray,
        prior: FloatArray,
        spread: FloatArray,
    ) -> None:
        self.centres_ = centres
        self.flags_ = flags
        self.counts_ = counts
        self.sums_ = sums
        self.prior_ = prior
        self.spread_ = spread
        self.pending_ = np.zeros_like(counts)  # routed, not graded yet: not saved

    @classmethod
    def fit(
        cls,
        features: FloatArray,
        tasks: Sequence[str] | None,
        *,
        quality: FloatArray,
        price_in: FloatArray,
        price_out: FloatArray,
        seed: int = 0,
    ) -> Newcomers:
        """Domain centres from the training ``features`` (rows of queries) and their ``tasks``
        (``None``: KMeans, at most :data:`MAX_DOMAINS` clusters), and the level model's scales
        from the training ``quality`` (rows × LLMs) and the LLMs' prices; no newcomer yet."""
        if tasks is not None and len(set(tasks)) >= 2:
            labels = np.asarray([str(t) for t in tasks])
            centres = np.stack([features[labels == t].mean(axis=0) for t in np.unique(labels)])
        else:
            centres = _clusters(features, seed)
        norms = np.linalg.norm(centres, axis=1, keepdims=True)
        centres = centres / np.where(norms > 0, norms, 1.0)
        n_llms, n_dom = quality.shape[1], len(centres)
        spread = level_spread(quality, _nearest(features, centres), n_dom, price_in, price_out)
        flags, zeros = np.zeros(n_llms, dtype=bool), np.zeros((n_llms, n_dom))
        return cls(centres, flags, zeros, zeros.copy(), np.zeros(n_llms), spread)

    def domains(self, features: FloatArray) -> NDArray[np.intp]:
        """The nearest centre of each row (domain 0 for every row without centres)."""
        if self.centres_.shape[1] != features.shape[1]:  # saved before domains were kept
            return np.zeros(len(features), dtype=np.intp)
        return _nearest(features, self.centres_)

    def add(self, new: bool, expected: float = 0.0, means: FloatArray | None = None) -> None:
        """One more LLM, a newcomer when ``new`` (added without data), whose level starts at its
        ``expected`` quality minus the best of the other LLMs' mean qualities ``means`` (those
        that are not newcomers; ``expected`` itself without them)."""
        self.flags_ = np.append(self.flags_, bool(new))
        zeros = np.zeros((1, self.counts_.shape[1]))
        self.counts_ = np.vstack([self.counts_, zeros])
        self.sums_ = np.vstack([self.sums_, zeros])
        self.pending_ = np.vstack([self.pending_, zeros])
        best = 0.0 if means is None else _best(means, self.flags_[: len(means)])
        self.prior_ = np.append(self.prior_, expected - best if new else 0.0)

    def remove(self, j: int) -> None:
        """Forget LLM ``j``."""
        for attr in ("flags_", "counts_", "sums_", "prior_", "pending_"):
            setattr(self, attr, np.delete(getattr(self, attr), j, axis=0))

    def baseline(self, offline: FloatArray) -> FloatArray:
        """The baseline per row of ``offline`` predicted quality (rows × LLMs): the best of
        the LLMs that are not newcomers."""
        known = ~self.flags_
        return np.asarray(offline[:, known].max(axis=1) if known.any() else offline.max(axis=1))

    def observe(
        self, j: int, features: FloatArray, quality: float, offline: FloatArray, weight: float = 1.0
    ) -> None:
        """A graded answer of ``quality`` by LLM ``j`` to the query with ``features`` (one row)
        and ``offline`` predicted quality (one row × LLMs), of weight ``weight``: for a
        newcomer, an observation of its level, the quality minus the baseline there."""
        if self.flags_[j]:
            residual = quality - float(self.baseline(offline[None, :])[0])
            d = self.domains(features[None, :])[0]
            self.counts_[j, d] += weight
            self.sums_[j, d] += weight * residual
            self.pending_[j, d] = max(self.pending_[j, d] - 1.0, 0.0)

    def routed(self, features: FloatArray, columns: Sequence[int]) -> None:
        """Queries (rows of ``features``) sent to the LLMs ``columns`` (one each): a newcomer's
        count as *pending* answers. The level's standard deviation, hence the bonus, narrows
        with them as if graded (its variance does not depend on the grades), so the queries in
        flight before the first grades come back are not all sent to an unknown newcomer; its
        mean waits for the grades. An answer that is never graded stays pending."""
        cols = np.asarray(columns, dtype=np.intp)
        new = self.flags_[cols]
        if new.any():
            np.add.at(self.pending_, (cols[new], self.domains(features[new])), 1.0)

    def levels(self, features: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and standard deviation of each newcomer's level at each row of
        ``features`` (0 for the other LLMs): two arrays of shape (n, L)."""
        mean, sd = np.zeros((2, len(features), len(self.flags_)))
        cols = np.flatnonzero(self.flags_)
        if not len(cols):
            return mean, sd
        dom = self.domains(features)
        for j in cols:
            m, v = self._posterior(int(j))
            mean[:, j], sd[:, j] = m[dom], np.sqrt(v[dom])
        return mean, sd

    def _posterior(self, j: int) -> tuple[FloatArray, FloatArray]:
        """Per domain, the mean and variance of newcomer ``j``'s δ + η_d."""
        noise, overall, domain = (float(v) for v in self.spread_)
        s = self.sums_[j] / noise
        h = np.concatenate([[self.prior_[j] / overall + s.sum()], s])
        theta = _covariance(self.counts_[j] / noise, overall, domain) @ h
        cov = _covariance((self.counts_[j] + self.pending_[j]) / noise, overall, domain)
        var = cov[0, 0] + np.diag(cov)[1:] + 2.0 * cov[0, 1:]
        return theta[0] + theta[1:], np.maximum(var, 0.0)

    def apply(self, offline: FloatArray, quality: FloatArray, features: FloatArray) -> FloatArray:
        """``quality`` (rows × LLMs) with each newcomer's column replaced by the baseline (from
        the ``offline`` predictions) plus its level, within [0, 1]."""
        cols = np.flatnonzero(self.flags_)
        if not len(cols):
            return quality
        mean, _ = self.levels(features)
        out = quality.copy()
        out[:, cols] = np.clip(self.baseline(offline)[:, None] + mean[:, cols], 0.0, 1.0)
        return out

    def bonus(self, features: FloatArray, weight: float) -> FloatArray:
        """``weight`` × each newcomer's level standard deviation in units of the answers' noise,
        per row of ``features``, 0 for the LLMs that are not newcomers: shape (n, L)."""
        _, sd = self.levels(features)
        return np.asarray(weight * sd / np.sqrt(self.spread_[0]))

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """The state to save (with :meth:`from_arrays`)."""
        return {
            "newcomer": self.flags_,
            "newcomer_centres": self.centres_,
            "newcomer_counts": self.counts_,
            "newcomer_sums": self.sums_,
            "newcomer_prior": self.prior_,
            "newcomer_spread": self.spread_,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[np.generic]], n_llms: int) -> Newcomers:
        """The state saved by :meth:`arrays`. A router saved before the level model has
        :data:`LEVEL_DEFAULT` scales, and its newcomers restart their levels from their price
        tier's prior (read from its per-LLM ``mean_quality``); one saved before the newcomer
        bonus has no newcomer."""
        flags = np.asarray(arrays.get("newcomer", np.zeros(n_llms, dtype=bool)), dtype=bool)
        centres = np.asarray(arrays.get("newcomer_centres", np.zeros((1, 0))), dtype=np.float64)
        zeros = np.zeros((n_llms, len(centres)))
        if "newcomer_sums" in arrays:
            counts = np.asarray(arrays["newcomer_counts"], dtype=np.float64)
            sums = np.asarray(arrays["newcomer_sums"], dtype=np.float64)
            prior = np.asarray(arrays["newcomer_prior"], dtype=np.float64)
            spread = np.asarray(arrays["newcomer_spread"], dtype=np.float64)
            return cls(centres, flags, counts, sums, prior, spread)
        mean_q = np.asarray(arrays.get("mean_quality", np.zeros(n_llms)), dtype=np.float64)
        prior = np.where(flags, np.nan_to_num(mean_q - _best(mean_q, flags)), 0.0)
        return cls(centres, flags, zeros, zeros.copy(), prior, LEVEL_DEFAULT.copy())


def _nearest(features: FloatArray, centres: FloatArray) -> NDArray[np.intp]:
    """The index of the nearest unit centre (largest dot product) of each row of ``features``."""
    return np.asarray(np.argmax(features @ centres.T, axis=1), dtype=np.intp)


def _best(means: FloatArray, newcomers: NDArray[np.bool_]) -> float:
    """The best of the mean qualities ``means`` of the LLMs that are not ``newcomers`` (0
    without any)."""
    known = means[~newcomers & np.isfinite(means)]
    return float(known.max()) if len(known) else 0.0


def _covariance(n: FloatArray, overall: float, domain: float) -> FloatArray:
    """Posterior covariance of (δ, η_1..η_D) after ``n`` answers per domain (in units of
    1/noise), the prior variances ``overall`` (δ) and ``domain`` (each η)."""
    k = len(n)
    precision = np.diag(np.concatenate([[1.0 / overall], np.full(k, 1.0 / domain)]))
    precision[0, 0] += n.sum()
    precision[0, 1:] += n
    precision[1:, 0] += n
    precision[1:, 1:] += np.diag(n)
    return np.asarray(np.linalg.inv(precision), dtype=np.float64)


def _clusters(features: FloatArray, seed: int) -> FloatArray:
    """At most :data:`MAX_DOMAINS` KMeans centres of (a sample of) ``features``."""
    from sklearn.cluster import KMeans

    k = int(min(MAX_DOMAINS, max(1, len(features) // 50)))
    if k < 2:
        return np.asarray(features.mean(axis=0, keepdims=True), dtype=np.float64)
    rng = np.random.default_rng(seed)
    rows = features[rng.permutation(len(features))[:2000]]
    return np.asarray(
        KMeans(k, n_init=1, random_state=seed).fit(rows).cluster_centers_, dtype=np.float64
    )


def level_spread(
    quality: FloatArray,
    domains: NDArray[np.intp],
    n_domains: int,
    price_in: FloatArray,
    price_out: FloatArray,
) -> FloatArray:
    """The scales of a newcomer's level model, measured on the training LLMs (``quality``:
    rows × LLMs; ``domains``: each row's): ``[noise, overall, domain]`` variances.

    *noise*: of one answer's quality around its LLM's mean on its domain; *overall*: of an
    LLM's mean quality around what its price tier predicts from the other LLMs (each left out
    in turn); *domain*: of an LLM's lead over the best LLM of a domain around its lead over all
    domains, for the most specialised LLM (a newcomer may be as specialised as that one). Each
    has a floor (:data:`LEVEL_FLOOR`), so that two LLMs or one domain still give a prior."""
    q = np.asarray(quality, dtype=np.float64)
    n_llms = q.shape[1]
    means = np.full((n_llms, n_domains), np.nan)
    sizes = np.array([np.count_nonzero(domains == d) for d in range(n_domains)], np.float64)
    for d in np.flatnonzero(sizes):
        means[:, d] = column_means(q[domains == d])
    seen = np.isfinite(q)
    noise = float(np.square(np.where(seen, q - means.T[domains], 0.0)).sum() / max(seen.sum(), 1))
    lead = means - np.nanmax(means, axis=0, keepdims=True)
    w = np.where(np.isfinite(lead), sizes[None, :], 0.0)
    total = np.maximum(w.sum(axis=1), 1e-12)
    lead = np.nan_to_num(lead)
    overall_lead = (lead * w).sum(axis=1) / total
    domain = float(np.max((w * (lead - overall_lead[:, None]) ** 2).sum(axis=1) / total))
    mean_q = column_means(q)
    errors = []
    for j in range(n_llms):
        rest = np.arange(n_llms) != j
        if np.isfinite(mean_q[j]) and np.isfinite(mean_q[rest]).sum() >= 2:
            llm = LLM(str(j), float(price_in[j]), float(price_out[j]))
            errors.append(
                tier_prior(mean_q[rest], price_in[rest], price_out[rest], llm) - mean_q[j]
            )
    overall = float(np.mean(np.square(errors))) if errors else float(LEVEL_FLOOR[1])
    return np.asarray(np.maximum([noise, overall, domain], LEVEL_FLOOR), dtype=np.float64)
