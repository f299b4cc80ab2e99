"""RouteLLM's evaluation sets (Ong et al., 2024): MMLU, GSM8K and MT-Bench, two LLMs each.

The layout is RouteLLM's ``routellm/evals`` folder:

- ``mmlu/responses/mmlu_<subject>.csv``: ``prompt`` and one True/False column per LLM;
  task = subject. RouteLLM asked for the answer letter with ``max_new_tokens=1``, so every
  answer is :data:`MMLU_OUTPUT_TOKENS` = 1 token.
- ``gsm8k/gsm8k_responses.csv``: correctness per LLM and ``<llm>_response``; task ``gsm8k``.
- ``mt_bench/judgements.jsonl``: one query per question, routed on its first turn; quality is
  the mean GPT-4 judge score of both turns / 10 (RouteLLM's ``MTBench`` benchmark averages the
  two turns the same way); tokens and cost add up both turns; task = MT-Bench category.

Prompts listed in ``<set>/contaminated_prompts.jsonl`` (field ``eval_prompt``) are dropped, as
RouteLLM does. No costs are recorded: cost = prompt tokens × input price + output tokens ×
output price, with the prices of the same LLMs in RouterBench (:data:`ROUTELLM_PRICES`).
Prompt tokens count the stored prompt only, not the few-shot examples RouteLLM prepended.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.data.mtbench import mt_bench_category, read_judgements
from mixllm.data.rows import jsonl_objects
from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError, DataError
from mixllm.types import LLM

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MMLU_OUTPUT_TOKENS",
    "ROUTELLM_PRICES",
    "ROUTELLM_ROUTERBENCH_NAMES",
    "ROUTELLM_SETS",
    "RouteLLMSet",
    "load_routellm",
    "load_routellm_dir",
]

logger = logging.getLogger(__name__)

RouteLLMSet = Literal["mmlu", "gsm8k", "mt_bench"]
ROUTELLM_SETS: tuple[str, ...] = get_args(RouteLLMSet)
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
#: The RouterBench LLM whose prices each RouteLLM LLM takes.
ROUTELLM_ROUTERBENCH_NAMES: Mapping[str, str] = MappingProxyType(
    {STRONG: "gpt-4-1106-preview", WEAK: "mistralai/mixtral-8x7b-chat"}
)
#: USD per million tokens, fitted with :func:`mixllm.data.prices.fit_prices` on
#: ``routerbench/routerbench_0shot_subset.csv`` (R² = 1.0; largest relative error ~1e-15).
ROUTELLM_PRICES: Mapping[str, LLM] = MappingProxyType(
    {
        STRONG: LLM(STRONG, price_in_per_mtok=10.0, price_out_per_mtok=30.0),
        WEAK: LLM(WEAK, price_in_per_mtok=0.6, price_out_per_mtok=0.6),
    }
)
#: RouteLLM generated MMLU answers with ``max_new_tokens=1``: one answer letter, one token.
MMLU_OUTPUT_TOKENS = 1.0
_TRUE = {"true": 1.0, "1": 1.0, "1.0": 1.0, "false": 0.0, "0": 0.0, "0.0": 0.0}
FloatArray = NDArray[np.float64]


def load_routellm(name: RouteLLMSet, root: str | Path) -> Dataset:
    """Load one RouteLLM set from ``root`` (RouteLLM's ``routellm/evals`` folder or a copy).

    Parameters
    ----------
    name:
        ``"mmlu"``, ``"gsm8k"`` or ``"mt_bench"``.
    root:
        The folder holding ``mmlu/``, ``gsm8k/`` and ``mt_bench/``.
    """
    if name not in ROUTELLM_SETS:
        raise ConfigError(f"unknown RouteLLM set {name!r}; known: {list(ROUTELLM_SETS)}")
    return load_routellm_dir(name, Path(root) / name)


def load_routellm_dir(name: RouteLLMSet, directory: str | Path) -> Dataset:
    """Load the RouteLLM set ``name`` from its own folder (e.g. ``routellm/mmlu``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(
            f"{directory}: no such directory; expected RouteLLM's {name} data "
            f"(folder routellm/evals/{name} of the RouteLLM repository)"
        )
    if name == "mmlu":
        return _load_mmlu(directory)
    if name == "gsm8k":
        return _load_gsm8k(directory)
    return _load_mt_bench(directory)


def contaminated_prompts(directory: Path) -> set[str]:
    """The ``eval_prompt`` of each line of ``contaminated_prompts.jsonl`` (empty if absent)."""
    path = directory / "contaminated_prompts.jsonl"
    if not path.is_file():
        logger.warning("%s: not found; no prompts excluded", path)
        return set()
    prompts: set[str] = set()
    for lineno, row in jsonl_objects(path):
        text = row.get("eval_prompt")
        if not isinstance(text, str):
            raise DataError(f"{path} line {lineno}: missing text field 'eval_prompt'")
        prompts.add(text)
    return prompts


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the table ({exc})") from exc
    if "prompt" not in frame.columns:
        raise DataError(f"{path}: missing required column 'prompt'")
    return frame


def _llm_columns(frame: pd.DataFrame, path: Path) -> list[str]:
    llms = [str(c) for c in frame.columns if c != "prompt" and not str(c).endswith("_response")]
    if not llms:
        raise DataError(f"{path}: no LLM columns (one True/False column per LLM expected)")
    return llms


def _correct(frame: pd.DataFrame, column: str, path: Path) -> FloatArray:
    """A True/False correctness column as 1.0/0.0; blank → ``NaN``."""
    raw = frame[column]
    if raw.dtype == bool:
        return raw.to_numpy(dtype=np.float64)
    out = np.full(len(raw), np.nan)
    for i, value in enumerate(raw.tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        parsed = _TRUE.get(str(value).strip().lower())
        if parsed is None:
            raise DataError(
                f"{path}: row {i + 1}, column {column!r}: {value!r} is not True or False"
            )
        out[i] = parsed
    return out


def _build(
    name: str,
    llms: Sequence[str],
    *,
    ids: Sequence[str],
    prompts: Sequence[str],
    tasks: Sequence[str | None],
    quality: FloatArray,
    output_tokens: FloatArray,
    prompt_tokens: FloatArray | None = None,
    responses: NDArray[np.object_] | None = None,
) -> Dataset:
    """A dataset whose costs come from token counts × :data:`ROUTELLM_PRICES`."""
    if prompt_tokens is None:
        prompt_tokens = count_tokens(prompts)
    cost = np.full(quality.shape, np.nan)
    for j, m in enumerate(llms):
        llm = ROUTELLM_PRICES.get(m)
        if llm is None:
            logger.warning("%s: no price for LLM %r; its costs are unknown (NaN)", name, m)
            continue
        cost[:, j] = (
            prompt_tokens * llm.price_in_per_mtok + output_tokens[:, j] * llm.price_out_per_mtok
        ) / 1e6
    return Dataset(
        query_ids=np.array(ids, dtype=object),
        prompts=np.array(prompts, dtype=object),
        llms=tuple(llms),
        quality=quality,
        cost_usd=cost,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        latency_s=np.full(quality.shape, np.nan),
        tasks=np.array(tasks, dtype=object),
        name=name,
        prices={m: ROUTELLM_PRICES[m] for m in llms if m in ROUTELLM_PRICES},
        responses=responses,
    )


def _load_mmlu(directory: Path) -> Dataset:
    files = sorted((directory / "responses").glob("mmlu_*.csv"))
    if not files:
        raise DataError(f"{directory}: no responses/mmlu_<subject>.csv files")
    excluded = contaminated_prompts(directory)
    ids: list[str] = []
    prompts: list[str] = []
    tasks: list[str | None] = []
    grids: list[FloatArray] = []
    llms: list[str] | None = None
    for path in files:
        frame = _read_csv(path)
        found = _llm_columns(frame, path)
        if llms is not None and sorted(found) != sorted(llms):
            raise DataError(f"{path}: LLM columns {found} differ from {llms} in {files[0].name}")
        llms = llms or found
        subject = path.stem.removeprefix("mmlu_")
        texts = frame["prompt"].tolist()
        keep = [i for i, p in enumerate(texts) if p not in excluded]
        correct = np.stack([_correct(frame, m, path) for m in llms], axis=1)
        ids += [f"mmlu.{subject}.{i}" for i in keep]
        prompts += [str(texts[i]) for i in keep]
        tasks += [subject] * len(keep)
        grids.append(correct[keep])
    assert llms is not None
    quality = np.concatenate(grids)
    output_tokens = np.full(quality.shape, MMLU_OUTPUT_TOKENS)
    return _build(
        "routellm-mmlu",
        llms,
        ids=ids,
        prompts=prompts,
        tasks=tasks,
        quality=quality,
        output_tokens=output_tokens,
    )


def _load_gsm8k(directory: Path) -> Dataset:
    path = directory / "gsm8k_responses.csv"
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    frame = _read_csv(path)
    llms = _llm_columns(frame, path)
    excluded = contaminated_prompts(directory)
    texts = frame["prompt"].tolist()
    keep = [i for i, p in enumerate(texts) if p not in excluded]
    quality = np.stack([_correct(frame, m, path) for m in llms], axis=1)[keep]
    responses = np.full((len(keep), len(llms)), None, dtype=object)
    for j, m in enumerate(llms):
        if f"{m}_response" in frame.columns:
            column = frame[f"{m}_response"].tolist()
            responses[:, j] = [column[i] if isinstance(column[i], str) else None for i in keep]
    known = np.array([r is not None for r in responses.ravel()], dtype=bool).reshape(
        responses.shape
    )
    output_tokens = np.full(responses.shape, np.nan)
    output_tokens[known] = count_tokens([str(r) for r in responses[known]])
    return _build(
        "routellm-gsm8k",
        llms,
        ids=[f"gsm8k.{i}" for i in keep],
        prompts=[str(texts[i]) for i in keep],
        tasks=["gsm8k"] * len(keep),
        quality=quality,
        output_tokens=output_tokens,
        responses=responses,
    )


def _load_mt_bench(directory: Path) -> Dataset:
    questions = read_judgements(directory / "judgements.jsonl")
    excluded = contaminated_prompts(directory)
    questions = [q for q in questions if not excluded.intersection(q.turns)]
    llms = list(dict.fromkeys(m for q in questions for m in q.answers))
    n, k = len(questions), len(llms)
    quality = np.full((n, k), np.nan)
    answers = np.full((n, k), None, dtype=object)
    output_tokens = np.full((n, k), np.nan)
    for i, q in enumerate(questions):
        for j, m in enumerate(llms):
            if m in q.answers:
                scores = np.array(q.scores[m])
                quality[i, j] = np.nanmean(scores) / 10 if (~np.isnan(scores)).any() else np.nan
                turns = [a for a in q.answers[m] if a]
                answers[i, j] = "\n\n".join(turns)
                output_tokens[i, j] = count_tokens(turns).sum()
    return _build(
        "routellm-mt-bench",
        llms,
        ids=[f"mt_bench.{q.question_id}" for q in questions],
        prompts=[q.turns[0] for q in questions],
        tasks=[mt_bench_category(q.question_id) for q in questions],
        quality=quality,
        output_tokens=output_tokens,
        prompt_tokens=np.array([count_tokens(q.turns).sum() for q in questions]),
        responses=answers,
    )
