"""Collect routing outcomes from your own LLM pool: every prompt to every LLM, graded, written in
the long layout (``docs/data-format.md``) that ``mixllm fit`` trains on.

:func:`collect` runs it (``mixllm collect`` on the command line): prompts from
:func:`read_prompts`, a pool from :func:`load_pool` (``[[upstreams]]`` as for the gateway, with
prices) or :func:`replay_pool` (a dataset's recorded answers), grading as in
:class:`Grading` (reference graders of :mod:`mixllm.grade`, an LLM judge, or none). Runs are
resumable (:mod:`mixllm.collect.journal`) and capped in spend (:mod:`mixllm.collect.calls`).
"""

from __future__ import annotations

from mixllm.collect.calls import Budget, BudgetExceededError, CallPolicy
from mixllm.collect.grading import Graded, Grading
from mixllm.collect.journal import Journal
from mixllm.collect.judge import RECORDED, RecordedJudge
from mixllm.collect.pool import Member, Pool, load_pool, pool_from_text, replay_pool
from mixllm.collect.prompts import (
    PromptRow,
    dataset_prompts,
    read_prompts,
    sample_prompts,
    write_prompts,
)
from mixllm.collect.run import CollectSpec, Run, Summary, collect

__all__ = [
    "RECORDED",
    "Budget",
    "BudgetExceededError",
    "CallPolicy",
    "CollectSpec",
    "Graded",
    "Grading",
    "Journal",
    "Member",
    "Pool",
    "PromptRow",
    "RecordedJudge",
    "Run",
    "Summary",
    "collect",
    "dataset_prompts",
    "load_pool",
    "pool_from_text",
    "read_prompts",
    "replay_pool",
    "sample_prompts",
    "write_prompts",
]
