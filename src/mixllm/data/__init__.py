"""Routing data: the :class:`Dataset` of recorded outcomes, its loaders, splits and token counts.

>>> from mixllm.data import Dataset, Outcome
>>> ds = Dataset.from_outcomes([Outcome("q1", "2+2?", "small", 1.0, 0.001)])
>>> len(ds), ds.llms
(1, ('small',))

Loaders: :func:`load_dataset` (any file, folder or named set), :func:`load_routerbench`
(RouterBench wide table), :func:`load_routellm` (RouteLLM's MMLU, GSM8K, MT-Bench),
:func:`load_longform` / :func:`write_longform` (the bring-your-own long layout, see
``docs/data-format.md``), :func:`load_routerdc` (RouterDC's per-task JSON files) and
:func:`fetch_routerbench` (pinned download). :func:`make_routing_dataset` and
:func:`synthesize_routing` generate routing data with a known ground truth. Importing this package
does not import pandas or huggingface_hub; the loaders do, when called.
"""

from __future__ import annotations

from mixllm.data.combine import concat
from mixllm.data.dataset import Dataset, Outcome
from mixllm.data.hub import fetch_routerbench
from mixllm.data.load import NAMED_SETS, data_dir, load_dataset
from mixllm.data.longform import load_longform, write_longform
from mixllm.data.prices import ROUTERBENCH_LIST_PRICES, PriceFit, fit_prices
from mixllm.data.routellm import load_routellm
from mixllm.data.routerbench import load_routerbench
from mixllm.data.routerdc import load_routerdc
from mixllm.data.split import split_by_task, split_random
from mixllm.data.synthetic import SyntheticRouting, make_routing_dataset, synthesize_routing
from mixllm.data.tokens import count_tokens

__all__ = [
    "NAMED_SETS",
    "ROUTERBENCH_LIST_PRICES",
    "Dataset",
    "Outcome",
    "PriceFit",
    "SyntheticRouting",
    "concat",
    "count_tokens",
    "data_dir",
    "fetch_routerbench",
    "fit_prices",
    "load_dataset",
    "load_longform",
    "load_routellm",
    "load_routerbench",
    "load_routerdc",
    "make_routing_dataset",
    "split_by_task",
    "split_random",
    "synthesize_routing",
    "write_longform",
]
