"""Generated routing data with a known ground truth, for tests and for scoring routers on data
that is not in ``../shared/data`` (other queries, other LLMs, no task labels).

The model behind :func:`make_routing_dataset` (all of it drawn from ``seed``):

- **queries**: English prompts from per-topic templates and vocabulary (arithmetic word
  problems, Python, translation, history, chemistry, legal, poetry, SQL, geography, physics; see
  :mod:`mixllm.data._synthetic_text`). Difficulty = the topic's base + 1.2 if the main slot
  comes from the topic's hard list + the prefix's and suffix's shifts + Normal(0, 0.6) noise
  that the text does not show.
- **LLMs**: invented names such as ``"acme/heron-large"``; a price tier ``t`` in [0, 1] per LLM
  (spread over the whole range), input price ``0.1 × 100^t`` USD per million tokens (a 100×
  span) and output price 1–4 × the input price. General ability grows with the tier plus noise;
  per-topic skill = ability + Normal(0, 0.8), and about half of the cheaper LLMs are
  specialists with +2.0 on one topic, so a cheap LLM can beat expensive ones there.
- **outcomes**: success probability ``p = sigmoid(skill[llm, topic] − difficulty)`` and quality
  ~ Bernoulli(p) (0/1, as RouterBench); output tokens lognormal around the topic's median ×
  the LLM's verbosity × the modifiers' length factors; prompt tokens counted with
  :func:`~mixllm.data.tokens.count_tokens` (``cl100k_base``); cost = prompt tokens × input price
  + output tokens × output price; latency = time to first token + tokens / throughput.
- **missing**: a share ``missing_share`` of (query, LLM) cells is left out (NaN everywhere).

:func:`synthesize_routing` returns the dataset with its ground truth (:class:`SyntheticRouting`:
true ``p``, expected costs, topics), from which a "Bayes router" that knows ``p`` can be scored
as the headroom a router could reach.

>>> ds = make_routing_dataset(n_queries=50, n_llms=3, seed=1)
>>> len(ds), ds.n_llms, ds.has_tasks
(50, 3, False)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from mixllm.data._synthetic_text import TOPICS, compose
from mixllm.data.dataset import Dataset
from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError
from mixllm.types import LLM

__all__ = ["SyntheticRouting", "make_routing_dataset", "synthesize_routing"]

FloatArray = NDArray[np.float64]

_VENDORS = (
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell",
    "cyberdyne", "soylent", "aperture", "wonka", "nakatomi", "oscorp", "vandelay", "dunder",
)  # fmt: skip
_FAMILIES = (
    "heron", "kestrel", "osprey", "wren", "finch", "magpie", "puffin", "ibis",
    "plover", "tern", "lark", "curlew",
)  # fmt: skip
_SIZES = ("mini", "small", "base", "medium", "large", "xl")
_HARD_SHIFT = 1.2
_SPECIALIST_BONUS = 2.0


@dataclass(frozen=True, eq=False)
class SyntheticRouting:
    """Generated routing data and the truth it was drawn from.

    ``p_success[i, j]`` is the probability that ``dataset.llms[j]`` answers query ``i``
    correctly (known for every cell, missing ones too); ``expected_cost_usd[i, j]`` is the
    cost at the LLM's mean output length for the query; ``topics[i]`` is the query's topic,
    ``difficulty[i]`` its difficulty and ``skill[j, k]`` LLM ``j``'s skill on ``topic_names[k]``.
    """

    dataset: Dataset
    p_success: FloatArray
    expected_cost_usd: FloatArray
    topics: NDArray[np.object_]
    topic_names: tuple[str, ...]
    difficulty: FloatArray
    skill: FloatArray

    def bayes_outcomes(self) -> Dataset:
        """The dataset with quality = true ``p`` and cost = expected cost, every cell known.

        An oracle that looks these up (``OraclePredictor(outcomes=truth.bayes_outcomes())``)
        is the Bayes router: the best any router can do in expectation without seeing outcomes.
        """
        return replace(
            self.dataset,
            quality=self.p_success,
            cost_usd=self.expected_cost_usd,
            name=f"{self.dataset.name}-bayes",
        )


def _check(n_queries: int, n_llms: int, n_topics: int, missing_share: float) -> None:
    if n_queries < 1 or n_llms < 1:
        raise ConfigError(
            f"n_queries={n_queries!r}, n_llms={n_llms!r}; expected at least 1 of each"
        )
    if not 1 <= n_topics <= len(TOPICS):
        raise ConfigError(f"n_topics={n_topics!r}; expected 1 to {len(TOPICS)}")
    if not 0.0 <= missing_share < 1.0:
        raise ConfigError(f"missing_share={missing_share!r}; expected a fraction in [0, 1)")


def _llm_names(n: int, rng: np.random.Generator) -> tuple[str, ...]:
    vendors, families = rng.permutation(len(_VENDORS)), rng.permutation(len(_FAMILIES))
    names: list[str] = []
    for j in range(n):
        size = _SIZES[int(rng.integers(len(_SIZES)))]
        base = f"{_VENDORS[vendors[j % len(vendors)]]}/{_FAMILIES[families[j % len(families)]]}"
        name, k = f"{base}-{size}", 2
        while name in names:
            name, k = f"{base}-{size}-v{k}", k + 1
        names.append(name)
    return tuple(names)


def _llm_skills(
    n_llms: int, n_topics: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Price tier, (input, output) prices and per-topic skill of each LLM."""
    tier = rng.permutation((np.arange(n_llms) + rng.random(n_llms)) / n_llms)
    price_in = 0.1 * 100.0**tier
    prices = np.stack([price_in, price_in * rng.integers(1, 5, n_llms)], axis=1)
    ability = -0.2 + 2.6 * tier + rng.normal(0.0, 0.4, n_llms)
    skill = ability[:, None] + rng.normal(0.0, 0.8, (n_llms, n_topics))
    specialist = (tier < 0.5) & (rng.random(n_llms) < 0.5)
    skill[specialist, rng.integers(0, n_topics, n_llms)[specialist]] += _SPECIALIST_BONUS
    return tier, prices, skill


def synthesize_routing(
    *,
    n_queries: int = 3000,
    n_llms: int = 15,
    n_topics: int = 8,
    seed: int = 0,
    missing_share: float = 0.0,
    with_tasks: bool = False,
    name: str = "synthetic",
) -> SyntheticRouting:
    """Generate routing data and keep the truth behind it (see the module docstring).

    Parameters
    ----------
    n_queries, n_llms, n_topics:
        Size: queries, LLMs (any number ≥ 1) and topics (1 to 10).
    seed:
        Everything is drawn from ``numpy.random.default_rng(seed)``: same seed, same data.
    missing_share:
        Share of (query, LLM) cells left out (quality, cost, tokens and latency NaN).
    with_tasks:
        Label each query with its topic (default: no task labels, ``tasks`` all ``None``).
    name:
        The dataset's name.
    """
    _check(n_queries, n_llms, n_topics, missing_share)
    rng = np.random.default_rng(seed)
    topics = [TOPICS[k] for k in rng.permutation(len(TOPICS))[:n_topics]]
    llms = _llm_names(n_llms, rng)
    tier, prices, skill = _llm_skills(n_llms, n_topics, rng)
    topic_of = rng.integers(0, n_topics, n_queries)
    hard = rng.random(n_queries) < 0.4
    prompts, shift, length = [], np.zeros(n_queries), np.ones(n_queries)
    for i, (k, h) in enumerate(zip(topic_of.tolist(), hard.tolist())):
        text, prefix, suffix = compose(topics[k], rng, hard=h)
        prompts.append(text)
        shift[i] = prefix.difficulty + suffix.difficulty
        length[i] = prefix.length_factor * suffix.length_factor * (1.5 if h else 1.0)
    base = rng.normal(-0.3, 0.5, n_topics)
    difficulty = base[topic_of] + _HARD_SHIFT * hard + shift + rng.normal(0.0, 0.6, n_queries)
    p = 1.0 / (1.0 + np.exp(-(skill[:, topic_of].T - difficulty[:, None])))
    quality = (rng.random(p.shape) < p).astype(np.float64)
    verbosity = np.exp(rng.normal(0.0, 0.3, (n_llms, n_topics)))
    median = np.array([t.median_output_tokens for t in topics])[topic_of][:, None]
    typical = median * length[:, None] * verbosity[:, topic_of].T
    sigma = 0.4
    out_tokens = np.maximum(np.round(typical * np.exp(rng.normal(0.0, sigma, p.shape))), 1.0)
    prompt_tokens = count_tokens(prompts)
    price_in, price_out = prices[:, 0][None, :], prices[:, 1][None, :]
    cost = (prompt_tokens[:, None] * price_in + out_tokens * price_out) / 1e6
    expected = prompt_tokens[:, None] * price_in + typical * np.exp(sigma**2 / 2) * price_out
    throughput = 120.0 - 90.0 * tier + rng.normal(0.0, 5.0, n_llms)
    latency = 0.2 + 0.6 * tier[None, :] + out_tokens / throughput[None, :]
    missing = rng.random(p.shape) < missing_share
    missing[np.arange(n_llms) % n_queries, np.arange(n_llms)] = False  # every LLM keeps a cell
    grids = [np.where(missing, np.nan, g) for g in (quality, cost, out_tokens, latency)]
    ds = Dataset(
        query_ids=np.array([f"{name}-{i}" for i in range(n_queries)], dtype=object),
        prompts=np.array(prompts, dtype=object),
        llms=llms,
        quality=grids[0],
        cost_usd=grids[1],
        prompt_tokens=prompt_tokens,
        output_tokens=grids[2],
        latency_s=grids[3],
        tasks=np.array(
            [topics[k].name if with_tasks else None for k in topic_of.tolist()], dtype=object
        ),
        name=name,
        prices={m: LLM(m, float(pi), float(po)) for m, (pi, po) in zip(llms, prices.tolist())},
    )
    return SyntheticRouting(
        dataset=ds,
        p_success=p,
        expected_cost_usd=expected / 1e6,
        topics=np.array([topics[k].name for k in topic_of.tolist()], dtype=object),
        topic_names=tuple(t.name for t in topics),
        difficulty=difficulty,
        skill=skill,
    )


def make_routing_dataset(
    *,
    n_queries: int = 3000,
    n_llms: int = 15,
    n_topics: int = 8,
    seed: int = 0,
    missing_share: float = 0.0,
    with_tasks: bool = False,
    name: str = "synthetic",
) -> Dataset:
    """Generated routing data with a known ground truth; the arguments are those of
    :func:`synthesize_routing`, which also returns the truth (true success probabilities).

    >>> a = make_routing_dataset(n_queries=20, n_llms=2, seed=3)
    >>> b = make_routing_dataset(n_queries=20, n_llms=2, seed=3)
    >>> a.llms == b.llms and bool((a.quality == b.quality).all())
    True
    """
    return synthesize_routing(
        n_queries=n_queries,
        n_llms=n_llms,
        n_topics=n_topics,
        seed=seed,
        missing_share=missing_share,
        with_tasks=with_tasks,
        name=name,
    ).dataset
