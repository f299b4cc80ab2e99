from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.split import split_by_task, split_random
from mixllm.errors import ConfigError, DataError


def test_random_split_is_seeded_disjoint_and_80_20(clustered: Dataset) -> None:
    train, test = split_random(clustered, seed=3)
    _, again_test = split_random(clustered, seed=3)
    assert (len(train), len(test)) == (160, 40)
    assert set(train.query_ids).isdisjoint(test.query_ids)
    assert list(test.query_ids) == list(again_test.query_ids)
    _, other = split_random(clustered, seed=4)
    assert list(other.query_ids) != list(test.query_ids)


def test_task_split_holds_out_whole_tasks(clustered: Dataset) -> None:
    train, test = split_by_task(clustered, ["topic1"])
    assert set(test.tasks) == {"topic1"} and "topic1" not in set(train.tasks)
    assert len(train) + len(test) == len(clustered)


def test_split_errors_name_the_value(clustered: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"test_size=1\.5"):
        split_random(clustered, test_size=1.5)
    with pytest.raises(ConfigError, match=r"'nope'.*known tasks: \['topic0', 'topic1'\]"):
        split_by_task(clustered, ["nope"])
    with pytest.raises(ConfigError, match="no training queries"):
        split_by_task(clustered, ["topic0", "topic1"])
    unlabeled = replace(clustered, tasks=np.full(len(clustered), None))
    with pytest.raises(DataError, match="task label"):
        split_by_task(unlabeled, ["topic0"])
