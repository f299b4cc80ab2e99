"""LLMs that join a fitted MixLLM router without data: where they start, and how they get tried.

An LLM added without outcomes starts from a **price-tier prior**: the training LLMs' mean
quality regressed on log price (:func:`tier_prior`), held with :data:`COLD_START_PRIOR_WEIGHT`
of a fitted LLM's prior weight, so its LinUCB width starts twice as wide as the others'.

A prior is a guess, and a router that never tries the newcomer never learns whether the guess
was low. With the router's bonus weight α = 0 (the default) the width is not used at all, so a
newcomer priced like the middle of the pool is never chosen. The **newcomer bonus** aims
exploration at what is actually unknown: the newcomer's own width, ``sqrt(eᵀA⁻¹e)`` of its
online statistics (the prior plus its feedback only), weighted by ``explore_new``
(:data:`EXPLORE_NEW` by default) and added to its score even when α = 0. It shrinks along the
queries the newcomer has answered, and, domain by domain, with the number of its answers graded
there (:class:`Newcomers`: halved after :data:`NEWCOMER_TRIES`), so that once it has been
learned the clients are sent to it by its predictions, not by the bonus. It exists only for
LLMs added without data, so a router to which no such LLM was added routes exactly as before.
With α >= ``explore_new`` it adds nothing: the newcomer's bonus is then α·width already, like
every other LLM's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError
from mixllm.policy._features import with_bias
from mixllm.types import LLM, Prediction

__all__ = [
    "COLD_START_PRIOR_WEIGHT",
    "EXPLORE_NEW",
    "MAX_DOMAINS",
    "NEWCOMER_TRIES",
    "Newcomers",
    "check_explore_new",
    "newcomer_bonus",
    "tier_prior",
    "with_candidates",
]

FloatArray = NDArray[np.float64]

COLD_START_PRIOR_WEIGHT = 0.25
"""Weight of an LLM's price-tier prior, added with no data, relative to the prior of an LLM
with fitted predictors (A = weight·ridge·I: a bonus 1/sqrt(weight) = 2 times wider)."""

EXPLORE_NEW = 0.3
"""Default weight of the newcomer bonus (``MixLLMPredictor(explore_new=...)``): the least
weight on the width of an LLM added without data, whatever the router's α."""


def check_explore_new(value: object) -> float:
    """``value`` as a weight >= 0, or :class:`~mixllm.errors.ConfigError`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and np.isfinite(float(value)) and float(value) >= 0):  # type: ignore[arg-type]
        raise ConfigError(f"explore_new={value!r}; expected a finite number >= 0")
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


def newcomer_bonus(
    a_inv: NDArray[np.float64], fa: FloatArray, newcomer: NDArray[np.bool_], weight: float
) -> FloatArray:
    """``weight``·sqrt(eᵀA_l⁻¹e) per row of ``fa`` (features with the constant) for the LLMs
    flagged in ``newcomer``, 0 for the others: shape (n, L)."""
    out = np.zeros((len(fa), len(newcomer)))
    for j in np.flatnonzero(newcomer):
        out[:, j] = np.sqrt(np.maximum(np.einsum("nd,nd->n", fa @ a_inv[j], fa), 0.0))
    out *= weight
    return out


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


NEWCOMER_TRIES = 50.0
"""Graded answers of a newcomer in one domain after which its bonus there is halved
(:class:`Newcomers`): the bonus is scaled by ``NEWCOMER_TRIES / (NEWCOMER_TRIES + n)``."""

MAX_DOMAINS = 8
"""Domains a router without task labels splits its training queries into (KMeans), so that a
newcomer's exploration is counted where it happened."""


class Newcomers:
    """Which LLMs were added without data, and how much of their exploration is spent where.

    The training queries are split into domains (their task labels, or KMeans clusters of their
    features without labels), kept as unit centres. A newcomer's graded answers are counted per
    domain (its feedback weight, the nearest centre), and its bonus at a query is scaled by
    ``tries / (tries + n)``, ``n`` its count in the query's domain. Its width alone shrinks
    too slowly to stop the exploration once the newcomer has been learned (the clients then go
    on being sent to it); a count over all its answers stops it too early where it has not been
    tried (a newcomer that failed on code would never be tried on the next task). Counted by
    domain, a newcomer is tried afresh on each task it has not answered yet, and then left to
    its learned predictions.

    >>> f = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    >>> n = Newcomers.fit(f, ["a", "b", "a"], n_llms=1)
    >>> n.add(True); n.observe(1, f[0]); n.observe(1, f[0])
    >>> n.flags_.tolist(), n.counts_.tolist(), n.scale(f, tries=2.0)[:, 1].tolist()
    ([False, True], [[0.0, 0.0], [2.0, 0.0]], [0.5, 1.0, 0.5])
    """

    def __init__(self, centres: FloatArray, flags: NDArray[np.bool_], counts: FloatArray) -> None:
        self.centres_ = centres
        self.flags_ = flags
        self.counts_ = counts

    @classmethod
    def fit(
        cls, features: FloatArray, tasks: Sequence[str] | None, n_llms: int, seed: int = 0
    ) -> Newcomers:
        """Domain centres from the training ``features`` (rows of queries) and their ``tasks``
        (``None``: KMeans, at most :data:`MAX_DOMAINS` clusters); no newcomer yet."""
        if tasks is not None and len(set(tasks)) >= 2:
            labels = np.asarray([str(t) for t in tasks])
            centres = np.stack([features[labels == t].mean(axis=0) for t in np.unique(labels)])
        else:
            centres = _clusters(features, seed)
        norms = np.linalg.norm(centres, axis=1, keepdims=True)
        centres = centres / np.where(norms > 0, norms, 1.0)
        return cls(centres, np.zeros(n_llms, dtype=bool), np.zeros((n_llms, len(centres))))

    def domains(self, features: FloatArray) -> NDArray[np.intp]:
        """The nearest centre of each row (domain 0 for every row without centres)."""
        if self.centres_.shape[1] != features.shape[1]:  # saved before domains were kept
            return np.zeros(len(features), dtype=np.intp)
        return np.asarray(np.argmax(features @ self.centres_.T, axis=1), dtype=np.intp)

    def add(self, new: bool) -> None:
        """One more LLM, a newcomer when ``new`` (added without data)."""
        self.flags_ = np.append(self.flags_, bool(new))
        self.counts_ = np.vstack([self.counts_, np.zeros((1, self.counts_.shape[1]))])

    def remove(self, j: int) -> None:
        """Forget LLM ``j``."""
        self.flags_ = np.delete(self.flags_, j)
        self.counts_ = np.delete(self.counts_, j, axis=0)

    def observe(self, j: int, features: FloatArray, weight: float = 1.0) -> None:
        """A graded answer of LLM ``j`` to the query with ``features`` (one row)."""
        if self.flags_[j]:
            self.counts_[j, self.domains(features[None, :])[0]] += weight

    def scale(self, features: FloatArray, tries: float = NEWCOMER_TRIES) -> FloatArray:
        """``tries / (tries + n)`` per row and newcomer, 1 for the other LLMs: shape (n, L)."""
        out = np.ones((len(features), len(self.flags_)))
        cols = np.flatnonzero(self.flags_)
        if len(cols):
            out[:, cols] = tries / (tries + self.counts_[cols][:, self.domains(features)].T)
        return out

    def bonus(self, a_inv: NDArray[np.float64], features: FloatArray, weight: float) -> FloatArray:
        """``weight`` × width × :meth:`scale` per row of ``features`` (without the constant) and
        LLM, 0 for the LLMs that are not newcomers: shape (n, L)."""
        width = newcomer_bonus(a_inv, with_bias(features), self.flags_, weight)
        return width * self.scale(features)

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """The state to save (with :meth:`from_arrays`)."""
        return {
            "newcomer": self.flags_,
            "newcomer_centres": self.centres_,
            "newcomer_counts": self.counts_,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[np.generic]], n_llms: int) -> Newcomers:
        """The state saved by :meth:`arrays`; a router saved before the newcomer bonus has no
        newcomer, one saved before the domains counts each newcomer's answers all together."""
        flags = np.asarray(arrays.get("newcomer", np.zeros(n_llms, dtype=bool)), dtype=bool)
        centres = np.asarray(arrays.get("newcomer_centres", np.zeros((1, 0))), dtype=np.float64)
        default = np.zeros((n_llms, len(centres)))
        counts = np.asarray(arrays.get("newcomer_counts", default), dtype=np.float64)
        return cls(centres, flags, counts)


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
