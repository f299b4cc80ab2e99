"""``MixLLMPredictor(tags=...)``: which domains the tag head learns from, saved and restored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixllm import Router
from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError
from mixllm.policy import MixLLMPredictor
from mixllm.types import QueryBatch


def tagged_set(n: int = 240, seed: int = 0) -> tuple[Dataset, QueryBatch]:
    """Four clusters in two tasks (a: clusters 0, 1; b: 2, 3); the domain of a query is its
    cluster, except cluster 3 which has none (it falls back to its task)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16))
    cluster = rng.integers(0, 4, n)
    x = centres[cluster] + 0.3 * rng.normal(size=(n, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    good = np.stack([cluster == 0, cluster >= 1, cluster == 3], axis=1)
    quality = (rng.random((n, 3)) < np.where(good, 0.9, 0.2)).astype(float)
    tasks = np.where(cluster < 2, "a", "b").astype(object)
    domains = np.array(
        [None if c == 3 else f"{t}/c{c}" for t, c in zip(tasks, cluster)], dtype=object
    )
    ds = Dataset(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        prompts=np.array([f"prompt {i}" for i in range(n)], dtype=object),
        llms=("x", "y", "z"),
        quality=quality,
        cost_usd=np.full((n, 3), 0.001),
        prompt_tokens=np.full(n, 20.0),
        output_tokens=np.full((n, 3), 10.0),
        latency_s=np.full((n, 3), np.nan),
        tasks=tasks,
        domains=domains,
        name="tagged",
    )
    queries = QueryBatch(
        ids=tuple(ds.query_ids.tolist()),
        prompts=tuple(ds.prompts.tolist()),
        embeddings=x.astype(np.float32),
        prompt_tokens=ds.prompt_tokens,
    )
    return ds, queries


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, QueryBatch]:
    return tagged_set()


def fit(data: tuple[Dataset, QueryBatch], **params: object) -> MixLLMPredictor:
    return MixLLMPredictor("logistic", "ridge", **params).fit(*data)  # type: ignore[arg-type]


def test_each_tag_source_gives_its_domains(data: tuple[Dataset, QueryBatch]) -> None:
    by_task, by_domain = fit(data), fit(data, tags="domain")
    assert by_task.tags == "task"
    assert by_task.projection_ is not None and by_task.projection_.domains_ == ("a", "b")
    assert by_domain.projection_ is not None
    assert by_domain.projection_.domains_ == ("a/c0", "a/c1", "b", "b/c2")
    three = fit(data, tags="kmeans:3").projection_
    assert three is not None and len(three.domains_) == 3
    assert all(d.startswith("cluster") for d in three.domains_)
    # the head differs, so do the predictions
    p_task, p_domain = by_task.predict(data[1]), by_domain.predict(data[1])
    assert np.abs(p_task.quality - p_domain.quality).max() > 1e-3


def test_none_and_tagged_false_are_the_untagged_router(data: tuple[Dataset, QueryBatch]) -> None:
    none, old = fit(data, tags=None), fit(data, tagged=False)
    assert none.projection_ is None and old.projection_ is None
    np.testing.assert_array_equal(none.predict(data[1]).quality, old.predict(data[1]).quality)
    assert none.quality_.dim_ == data[1].embeddings.shape[1]  # the raw embedding


def test_tasks_without_domains_and_kmeans_on_unlabelled_data(
    data: tuple[Dataset, QueryBatch],
) -> None:
    ds, queries = data
    plain = Dataset(**{**ds.__dict__, "domains": None})
    with pytest.raises(DataError, match="tags='domain' but no query has a domain label"):
        MixLLMPredictor(tags="domain").fit(plain, queries)
    neither = Dataset(**{**ds.__dict__, "tasks": np.full(len(ds), None, dtype=object)})
    missing = sum(d is None for d in ds.domains)  # type: ignore[union-attr]
    with pytest.raises(DataError, match=f"tags='domain' but {missing} of 240 queries have neither"):
        MixLLMPredictor(tags="domain").fit(neither, queries)
    # "task" on data without tasks falls back to KMeans, as it always did
    fallback = MixLLMPredictor(tags="task").fit(neither, queries).projection_
    assert fallback is not None and fallback.domains_[0].startswith("cluster")


@pytest.mark.parametrize("bad", ["cluster", "kmeans:1", "kmeans:x", "kmeans:", 3, "Task"])
def test_a_bad_tags_value_is_named(data: tuple[Dataset, QueryBatch], bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"tags={bad!r}; expected 'task', 'domain'"):
        fit(data, tags=bad)


def test_tagged_must_be_a_bool(data: tuple[Dataset, QueryBatch]) -> None:
    with pytest.raises(ConfigError, match="tagged='no'; expected True or False"):
        fit(data, tagged="no")


def test_state_keeps_tags_and_old_states_still_load(data: tuple[Dataset, QueryBatch]) -> None:
    queries = data[1]
    model = fit(data, tags="domain")
    params, arrays = model.get_state()
    assert params["tags"] == "domain"
    again = MixLLMPredictor.from_state(params, arrays)
    assert again.tags == "domain"
    np.testing.assert_array_equal(again.predict(queries).quality, model.predict(queries).quality)
    # a state saved before ``tags`` existed: only ``tagged``
    for tagged in (True, False):
        old = fit(data, tagged=tagged)
        p, a = old.get_state()
        del p["tags"]
        restored = MixLLMPredictor.from_state(p, a)
        assert restored.tags == "task" and restored.tagged is tagged
        assert (restored.projection_ is None) is not tagged
        np.testing.assert_array_equal(
            restored.predict(queries).quality, old.predict(queries).quality
        )


def test_a_router_saves_its_tags(data: tuple[Dataset, QueryBatch], tmp_path: Path) -> None:
    router = Router(MixLLMPredictor(tags="kmeans:2"), embedder="hashing", lam=0.0).fit(data[0])
    router.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r")
    assert isinstance(loaded.predictor, MixLLMPredictor)
    assert loaded.predictor.tags == "kmeans:2"
    prompts = ["prompt 1", "prompt 7"]
    assert [d.llm for d in loaded.route_many(prompts)] == [
        d.llm for d in router.route_many(prompts)
    ]
