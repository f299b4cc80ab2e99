"""Batch policies in the harness: their knob is swept like λ, their cost counts every call."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.split import split_random
from mixllm.errors import ConfigError, DataError, NotFittedError
from mixllm.evaluate import evaluate
from mixllm.policy.batch import BatchPolicy, BatchRun, LacksDataError
from mixllm.policy.batch_registry import check_router_name, make_batch_policy
from mixllm.types import QueryBatch
from tests.evaluate.fakes import FakeEmbedder, make_three


class Escalate:
    """Calls 'cheap'; when its recorded answer is wrong, escalates to 'ref' on a share ``knob``
    of those queries (a verifier that knows the truth, for checks by hand)."""

    name = "escalate"
    knob = "share"

    def __init__(self, *, column: int | None = None, lacks: bool = False) -> None:
        self.column, self.lacks, self.fitted = column, lacks, False

    def fit(self, train: Dataset, queries: QueryBatch) -> Escalate:
        if self.lacks:
            raise LacksDataError(f"{train.name} has no recorded answers; escalate reads them")
        self.fitted = True
        return self

    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]:
        return np.linspace(0.0, 1.0, n).tolist()

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun:
        if not self.fitted:
            raise NotFittedError("escalate is not fitted")
        cheap, ref = test.llm_index("cheap"), test.llm_index("ref")
        wrong = np.nan_to_num(test.quality[:, cheap], nan=0.0) < 1
        order = np.cumsum(wrong)
        up = wrong & (order <= round(knob * wrong.sum()))
        choice = np.where(up, ref, cheap if self.column is None else self.column)
        cost = test.cost_usd[:, cheap] + np.where(up, test.cost_usd[:, ref], 0.0)
        quality = test.quality[np.arange(len(test)), np.minimum(choice, test.n_llms - 1)]
        return BatchRun(choice, quality, cost, np.where(up, 2, 1))


@pytest.fixture(scope="module")
def splits() -> tuple[Dataset, Dataset]:
    return split_random(make_three(150), seed=0)


def test_a_batch_policy_is_swept_over_its_knob(splits: tuple[Dataset, Dataset]) -> None:
    train, test = splits
    assert isinstance(Escalate(), BatchPolicy)
    rep = evaluate(train, test, routers=["cheapest", Escalate()], embedder=FakeEmbedder(),
                   n_lams=5, n_boot=200)  # fmt: skip
    row = rep.row("escalate")
    assert row.kind == "router"
    assert [p.lam for p in row.points] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    q = np.nan_to_num(test.quality, nan=0.0)
    cheap, ref = q[:, 0], q[:, 2]
    first, last = row.points[0], row.points[-1]
    assert first.quality == pytest.approx(cheap.mean())
    assert first.cost_usd == pytest.approx(test.cost_usd[:, 0].mean())
    assert first.shares == {"cheap": 1.0, "mid": 0.0, "ref": 0.0}
    wrong = cheap < 1
    assert last.quality == pytest.approx(np.where(wrong, ref, cheap).mean())
    both = test.cost_usd[:, 0] + np.where(wrong, test.cost_usd[:, 2], 0.0)
    assert last.cost_usd == pytest.approx(both.mean())  # the cheap call is paid too
    assert last.shares["ref"] == pytest.approx(wrong.mean())
    qualities = [p.quality for p in row.points]
    assert qualities == sorted(qualities) and qualities[-1] > qualities[0]
    assert row.aiq.value is not None and row.aiq.low is not None
    assert row.quality_at_lam0.value == pytest.approx(last.quality)  # the last knob stands for λ=0


def test_a_policy_the_data_cannot_feed_is_skipped_with_a_note(
    splits: tuple[Dataset, Dataset],
) -> None:
    train, test = splits
    rep = evaluate(train, test, routers=["cheapest", Escalate(lacks=True)],
                   embedder=FakeEmbedder(), n_lams=3, n_boot=200)  # fmt: skip
    assert "escalate" not in [r.name for r in rep.rows]
    assert any(n.startswith("escalate skipped:") and "no recorded answers" in n
               for n in rep.context.notes)  # fmt: skip


def test_a_run_outside_the_columns_stops_the_evaluation(splits: tuple[Dataset, Dataset]) -> None:
    train, test = splits
    with pytest.raises(DataError, match="outside the 3 LLM columns"):
        evaluate(train, test, routers=[Escalate(column=7)], embedder=FakeEmbedder(),
                 n_lams=3, n_boot=200)  # fmt: skip


def test_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown batch policy 'nope'"):
        make_batch_policy("nope")
    with pytest.raises(ConfigError, match=r"unknown router 'nope'; known: \['random'"):
        check_router_name("nope")
    check_router_name("knn")
    with pytest.raises(DataError, match=r"BatchRun\.cost_usd has 1 rows; expected 2"):
        BatchRun(np.zeros(2, dtype=np.int64), np.zeros(2), np.zeros(1), np.ones(2, np.int64))
