"""Final-answer extractors on hand-written strings and on real recorded answers (RouterBench's
subset, RouteLLM's gsm8k): right answers of different LLMs read the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixllm import load_dataset
from mixllm.data.dataset import Dataset
from mixllm.policy.answers import (
    answer_features,
    extract_all,
    extract_answer,
    require_responses,
    task_kind,
    vote,
)
from mixllm.policy.batch import LacksDataError
from tests.policy.cascade_data import answer_set


@pytest.mark.parametrize(
    ("text", "task", "expected"),
    [
        ("C", "arc-challenge", "C"),
        ("B\n", "winogrande", "B"),
        ("A) Maria", "winogrande", "A"),
        ("(D) south", "arc-challenge", "D"),
        ("Answer: C", "arc-challenge", "C"),
        ("I think the answer is B because ...", "arc-challenge", "B"),
        ("a bakery is bigger", "winogrande", None),
        ("I do", "winogrande", None),
        ("", "arc-challenge", None),
        (None, "arc-challenge", None),
        ("so she makes 9 * 2 = 18 dollars.\n#### 18", "gsm8k", "18"),
        ("The answer is $1,250.", "gsm8k", "1250"),
        ("First 3 then 4, total 7.0", "gsm8k", "7"),
        ("no number here", "gsm8k", None),
        ("any text", "mt-bench", None),
        ("def f(:\n  pass", "mbpp", None),
    ],
)
def test_extract_answer_by_hand(text: str | None, task: str, expected: str | None) -> None:
    assert extract_answer(text, task) == expected


def test_code_answers_agree_on_the_same_program_only() -> None:
    a = "Here you go:\n```python\ndef add(a, b):\n    # sum\n    return a + b\n```\nDone."
    b = "[PYTHON]\ndef add(a, b):\n\n    return a+b\n[/PYTHON]"
    c = "```python\ndef add(a, b):\n    return b + a\n```"
    assert extract_answer(a, "mbpp") == extract_answer(b, "mbpp") != extract_answer(c, "mbpp")


def test_task_kinds() -> None:
    kinds = [task_kind(t) for t in ("mmlu", "hellaswag", "college_biology", "humaneval")]
    assert kinds == ["choice", "choice", "choice", "code"]
    assert task_kind("consensus_summary") == "free"


def test_vote_and_features() -> None:
    assert vote(["7", None, "7", "8"]) == ("7", 2)
    ds, _ = answer_set(50)
    assert ds.responses is not None
    ans = extract_all(ds.responses[:, :3], ds.tasks)
    f = answer_features(ds.responses[:, :3], ans, ds.tasks)
    assert f.shape == (50, 20)
    hedged = f[:, 3] == 1.0  # c1's hedging flag: exactly its wrong answers
    np.testing.assert_array_equal(hedged, ds.quality[:, 0] == 0)
    agree = [sum(ans[i, j] == ans[i, 0] for j in (1, 2)) / 2 for i in range(50)]
    np.testing.assert_allclose(f[:, 5], agree)


def test_missing_answers_are_a_lacks_data_error(clustered: Dataset) -> None:
    with pytest.raises(LacksDataError, match=r"clustered: no recorded answers.*policy-x"):
        require_responses(clustered, ["small"], "policy-x")


@pytest.fixture(scope="module")
def routerbench(data_dir: Path) -> Dataset:
    return load_dataset(data_dir / "routerbench" / "routerbench_0shot_subset.csv")


@pytest.mark.parametrize("task", ["arc-challenge", "winogrande"])
def test_choice_answers_on_routerbench(routerbench: Dataset, task: str) -> None:
    ds = routerbench.subset(np.flatnonzero(routerbench.tasks == task))
    resp = require_responses(ds, ds.llms, "test")
    ans = extract_all(resp, ds.tasks)
    right = ds.quality == 1.0
    assert all(ans[right] != None)  # noqa: E711 every right answer is read
    letters = [{ans[i, j] for j in range(ds.n_llms) if right[i, j]} for i in range(len(ds))]
    assert max(len(s) for s in letters) == 1  # right answers of all LLMs read the same
    gpt4 = ds.llm_index("gpt-4-1106-preview")
    assert np.mean(ans[:, gpt4] != None) > 0.99  # noqa: E711


def test_code_answers_on_routerbench(routerbench: Dataset) -> None:
    ds = routerbench.subset(np.flatnonzero(routerbench.tasks == "mbpp"))
    ans = extract_all(require_responses(ds, ds.llms, "test"), ds.tasks)
    assert np.mean(ans != None) > 0.9  # noqa: E711 most answers hold a parsable program


def test_number_answers_on_routellm_gsm8k(data_dir: Path) -> None:
    ds = load_dataset(data_dir / "routellm" / "gsm8k")
    ans = extract_all(require_responses(ds, ds.llms, "test"), ds.tasks)
    both = (ds.quality == 1.0).all(axis=1)
    same = ans[both, 0] == ans[both, 1]
    assert both.sum() > 500 and same.mean() > 0.9
