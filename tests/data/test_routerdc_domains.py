"""Per-query domains: RouterDC's ``cluster_id`` kept as ``<task>/c<id>``, carried by every
dataset operation and by the long layout."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mixllm.data import concat, load_longform, load_routerdc, write_longform
from mixllm.data.dataset import Dataset, Outcome
from mixllm.errors import DataError

# Invented questions in RouterDC's layout (not taken from the RouterDC repository).
SCIENCE = [
    {"question": "Which gas do plants take in?", "scores": {"a": 1.0, "b": 0.0}, "cluster_id": 2},
    {"question": "What melts ice fastest?", "scores": {"a": 0.5, "b": 1.0}, "cluster_id": 0},
    {"question": "Why is the sky blue?", "scores": {"a": 0.0, "b": 1.0}},
]
MATH = [{"question": "What is 6 times 7?", "scores": {"a": 1.0, "b": 1.0}, "cluster_id": 2}]


def write(path: Path, items: object) -> Path:
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "science.json", SCIENCE)
    write(tmp_path / "math.json", MATH)
    return tmp_path


def test_cluster_id_becomes_a_domain_per_task(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mixllm.data.routerdc"):
        ds = load_routerdc(folder)
    assert ds.query_ids.tolist() == ["math-0", "science-0", "science-1", "science-2"]
    assert ds.domains is not None
    # one cluster id in two files is two domains: the id is RouterDC's, the task is ours
    assert ds.domains.tolist() == ["math/c2", "science/c2", "science/c0", None]
    assert ds.domain_names == ("math/c2", "science/c0", "science/c2")
    assert "ignored unknown field" not in caplog.text


def test_files_without_cluster_ids_have_no_domains(tmp_path: Path) -> None:
    ds = load_routerdc(write(tmp_path / "plain.json", [{"question": "q?", "scores": {"a": 1}}]))
    assert ds.domains is None
    assert ds.domain_names == ()


@pytest.mark.parametrize("bad", [[1], True, {"id": 1}, ""])
def test_a_bad_cluster_id_is_named(tmp_path: Path, bad: object) -> None:
    item = {"question": "q?", "scores": {"a": 1.0}, "cluster_id": bad}
    path = write(tmp_path / "t.json", [item])
    with pytest.raises(DataError, match=r"t\.json item 0: field 'cluster_id' = .* not an integer"):
        load_routerdc(path)


def test_domains_survive_subset_select_and_concat(folder: Path) -> None:
    ds = load_routerdc(folder)
    sub = ds.subset([3, 1])
    assert sub.domains is not None and sub.domains.tolist() == [None, "science/c2"]
    assert ds.select_llms(["b"]).domains.tolist() == ds.domains.tolist()  # type: ignore[union-attr]
    plain = Dataset.from_outcomes([Outcome("p1", "hi", "a", 1.0, 0.0, task="chat")])
    assert plain.domains is None
    both = concat([ds, plain])
    assert both.domains is not None
    assert both.domains.tolist() == [*ds.domains.tolist(), None]  # type: ignore[union-attr]
    other = Dataset.from_outcomes([Outcome("p2", "yo", "a", 0.0, 0.0)])
    assert concat([plain, other]).domains is None


def test_outcomes_round_trip_domains(folder: Path) -> None:
    ds = load_routerdc(folder)
    rows = list(ds.outcomes())
    assert {r.query_id: r.domain for r in rows}["science-1"] == "science/c0"
    again = Dataset.from_outcomes(rows)
    assert again.domains is not None
    assert again.domains.tolist() == ds.domains.tolist()  # type: ignore[union-attr]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_long_layout_writes_and_reads_the_domain_column(folder: Path, suffix: str) -> None:
    ds = load_routerdc(folder, prices={"a": (1.0, 1.0), "b": (2.0, 2.0)})
    path = write_longform(ds, folder / f"long{suffix}")
    back = load_longform(path)
    assert back.domains is not None
    assert back.domains.tolist() == ds.domains.tolist()  # type: ignore[union-attr]
    assert back.tasks.tolist() == ds.tasks.tolist()


def test_long_layout_without_domains_stays_as_before(tmp_path: Path) -> None:
    ds = Dataset.from_outcomes(
        [Outcome("q1", "hi", "a", 1.0, 0.001, task="chat"), Outcome("q1", "hi", "b", 0.0, 0.002)]
    )
    path = write_longform(ds, tmp_path / "long.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert "domain" not in header and "task" in header  # files readers of old versions know
    assert load_longform(path).domains is None
    # a file written before the column existed reads as before
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"id": "x", "prompt": "p", "llm": "a", "cost_usd": 0.1}) + "\n")
    assert load_longform(old).domains is None


def test_a_domains_array_of_the_wrong_length_is_refused() -> None:
    ds = Dataset.from_outcomes([Outcome("q1", "hi", "a", 1.0, 0.0)])
    with pytest.raises(DataError, match="domains has length 2, expected 1"):
        Dataset(**{**ds.__dict__, "domains": np.array(["x", "y"], dtype=object)})


def test_real_routerdc_cluster_ids(data_dir: Path) -> None:
    folder = data_dir / "routerdc_split2"
    ds = load_routerdc([folder / "arc_challenge_train.json", folder / "gsm8k-train.json"])
    assert ds.domains is not None
    arc = ds.tasks == "arc_challenge_train"
    assert int(arc.sum()) == 820
    counts = {d: int((ds.domains == d).sum()) for d in ds.domain_names}
    # RouterDC's cluster ids on ARC-Challenge (read from the file: 771, 29, 6, 1, 13)
    assert counts == {f"arc_challenge_train/c{k}": n for k, n in enumerate([771, 29, 6, 1, 13])}
    assert all(d is None for d in ds.domains[~arc])  # gsm8k items carry no cluster_id
