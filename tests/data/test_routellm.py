from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.mtbench import read_judgements
from mixllm.data.prices import fit_prices
from mixllm.data.routellm import (
    MMLU_OUTPUT_TOKENS,
    ROUTELLM_PRICES,
    ROUTELLM_ROUTERBENCH_NAMES,
    contaminated_prompts,
    load_routellm,
    load_routellm_dir,
)
from mixllm.errors import ConfigError, DataError

GPT4, MIXTRAL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


@pytest.fixture(scope="module")
def mmlu(routellm_dir: Path) -> Dataset:
    return load_routellm("mmlu", routellm_dir)


def mean_quality(ds: Dataset, llm: str) -> float:
    return float(np.nanmean(ds.quality[:, ds.llm_index(llm)]))


def test_mmlu(mmlu: Dataset, routellm_dir: Path) -> None:
    assert len(mmlu) == 14042 - 5
    assert set(mmlu.llms) == {GPT4, MIXTRAL}
    assert len(mmlu.task_names) == 57
    assert "abstract_algebra" in mmlu.task_names
    assert mean_quality(mmlu, GPT4) == pytest.approx(0.806, abs=0.001)
    assert mean_quality(mmlu, MIXTRAL) == pytest.approx(0.681, abs=0.001)
    assert (mmlu.output_tokens == MMLU_OUTPUT_TOKENS).all()
    assert not contaminated_prompts(routellm_dir / "mmlu") & set(mmlu.prompts)


def test_mmlu_costs_are_tokens_times_prices(mmlu: Dataset) -> None:
    for j, name in enumerate(mmlu.llms):
        llm = ROUTELLM_PRICES[name]
        expected = (mmlu.prompt_tokens * llm.price_in_per_mtok + llm.price_out_per_mtok) / 1e6
        np.testing.assert_allclose(mmlu.cost_usd[:, j], expected)
        assert mmlu.prices[name] == llm


def test_gsm8k(routellm_dir: Path) -> None:
    ds = load_routellm("gsm8k", routellm_dir)
    assert len(ds) == 1319 - 12
    assert ds.task_names == ("gsm8k",)
    assert mean_quality(ds, GPT4) == pytest.approx(0.858, abs=0.001)
    assert mean_quality(ds, MIXTRAL) == pytest.approx(0.637, abs=0.001)
    assert ds.responses is not None
    assert np.median(ds.output_tokens[:, ds.llm_index(GPT4)]) > 50
    assert not contaminated_prompts(routellm_dir / "gsm8k") & set(ds.prompts)


def test_mt_bench(routellm_dir: Path) -> None:
    ds = load_routellm("mt_bench", routellm_dir)
    assert len(ds) == 80 - 8
    assert len(ds.task_names) == 8
    assert mean_quality(ds, GPT4) == pytest.approx(0.921, abs=0.001)
    assert mean_quality(ds, MIXTRAL) == pytest.approx(0.828, abs=0.001)
    assert ((ds.quality >= 0.1) & (ds.quality <= 1.0)).all()
    assert ds.query_ids[0] == "mt_bench.141"
    assert ds.prompts[0].startswith("In the field of quantum physics, what is superposition")
    assert ds.tasks[0] == "stem"


def test_mt_bench_turn_texts_agree(routellm_dir: Path) -> None:
    questions = read_judgements(routellm_dir / "mt_bench" / "judgements.jsonl")
    assert len(questions) == 80
    for q in questions:
        assert all(q.turns), q.question_id
        assert all(all(a) for a in q.answers.values()), q.question_id


def test_routellm_prices_match_a_fresh_fit_on_routerbench(routerbench: Dataset) -> None:
    fits = fit_prices(routerbench)
    for name, llm in ROUTELLM_PRICES.items():
        fit = fits[ROUTELLM_ROUTERBENCH_NAMES[name]]
        assert fit.price_in_per_mtok == pytest.approx(llm.price_in_per_mtok, rel=1e-4)
        assert fit.price_out_per_mtok == pytest.approx(llm.price_out_per_mtok, rel=1e-4)


def test_unknown_set_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown RouteLLM set 'mmluu'; known: \['mmlu'"):
        load_routellm("mmluu", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"gsm8k: no such directory"):
        load_routellm("gsm8k", tmp_path)


def write_mmlu(root: Path, body: str, contaminated: list[str] | None = None) -> Path:
    folder = root / "mmlu"
    (folder / "responses").mkdir(parents=True)
    (folder / "responses" / "mmlu_toy.csv").write_text(f"prompt,{MIXTRAL},{GPT4}\n{body}")
    if contaminated is not None:
        lines = [json.dumps({"eval_prompt": p, "train_prompt": p}) for p in contaminated]
        (folder / "contaminated_prompts.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_small_mmlu_folder_with_contamination_and_blanks(tmp_path: Path) -> None:
    folder = write_mmlu(tmp_path, "q1,True,True\nq2,False,\nq3,true,0\n", ["q2"])
    ds = load_routellm_dir("mmlu", folder)
    assert list(ds.query_ids) == ["mmlu.toy.0", "mmlu.toy.2"]
    assert ds.quality.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert ds.tasks.tolist() == ["toy", "toy"]


def test_bad_correctness_value_is_named(tmp_path: Path) -> None:
    folder = write_mmlu(tmp_path, "q1,True,True\nq2,maybe,False\n", [])
    with pytest.raises(
        DataError, match=rf"mmlu_toy\.csv: row 2, column '{MIXTRAL}': 'maybe' is not True or False"
    ):
        load_routellm_dir("mmlu", folder)


def test_bad_contamination_file(tmp_path: Path) -> None:
    folder = write_mmlu(tmp_path, "q1,True,True\n")
    (folder / "contaminated_prompts.jsonl").write_text('{"eval_prompt": "x"}\n{oops\n')
    with pytest.raises(DataError, match=r"contaminated_prompts\.jsonl line 2: invalid JSON"):
        load_routellm_dir("mmlu", folder)


def judgement(qid: int, turn: int, model: str, score: float, prompt: str) -> str:
    return json.dumps(
        {
            "question_id": qid,
            "model": model,
            "judge": ["gpt-4", "single-v1"],
            "turn": turn,
            "score": score,
            "user_prompt": prompt,
            "judgment": "...",
            "tstamp": 0,
        }
    )


def single(q: str, a: str) -> str:
    return (
        f"[Instruction]\nJudge.\n\n[Question]\n{q}\n\n[The Start of Assistant's Answer]\n{a}\n"
        "[The End of Assistant's Answer]"
    )


def conversation(q1: str, a1: str, q2: str, a2: str) -> str:
    return (
        "<|The Start of Assistant A's Conversation with User|>\n\n"
        f"### User:\n{q1}\n\n### Assistant A:\n{a1}\n\n### User:\n{q2}\n\n### Assistant A:\n{a2}"
        "\n\n<|The End of Assistant A's Conversation with User|>"
    )


def test_small_mt_bench(tmp_path: Path) -> None:
    folder = tmp_path / "mt_bench"
    folder.mkdir()
    lines = [
        judgement(81, 1, "a", 8, single("Write.", "Done.")),
        judgement(81, 2, "a", -1, conversation("Write.", "Done.", "Again.", "Done again.")),
        judgement(81, 1, "b", 4, single("Write.", "No.")),
        judgement(81, 2, "b", 6, conversation("Write.", "No.", "Again.", "Yes.")),
    ]
    (folder / "judgements.jsonl").write_text("\n".join(lines) + "\n")
    ds = load_routellm_dir("mt_bench", folder)
    assert ds.quality.tolist() == [[0.8, 0.5]]  # -1 = no score; b: mean of 4 and 6
    assert ds.tasks.tolist() == ["writing"]
    assert ds.responses is not None
    assert ds.responses[0, 0] == "Done.\n\nDone again."


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", r"line 1: invalid JSON"),
        ('{"question_id": 81}', r"line 1: missing field\(s\) \['model', 'turn'"),
        (
            judgement(81, 1, "a", 5, single("q", "a")).replace("81", '"x"', 1),
            r"line 1: field 'question_id' = 'x' is not an integer",
        ),
        (judgement(81, 1, "a", 11, single("q", "a")), r"line 1: field 'score' = 11 is outside"),
        (judgement(81, 1, "a", 5, "no template"), r"line 1: cannot find the question and answer"),
    ],
)
def test_bad_judgements(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "judgements.jsonl").write_text(line + "\n")
    with pytest.raises(DataError, match=rf"judgements\.jsonl {message}"):
        read_judgements(tmp_path / "judgements.jsonl")
