"""Whole evaluation jobs behind ``mixllm evaluate`` and ``mixllm demo``: load, split, evaluate,
write the report. The CLI only parses arguments and prints what these return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mixllm.data import Dataset, load_dataset, split_by_task, split_random
from mixllm.data.price_table import price_dataset, read_price_table
from mixllm.embed import DEFAULT_EMBEDDER, make_embedder
from mixllm.errors import ConfigError
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.evaluate.harness import DEFAULT_ROUTERS, ProgressCallback, Report, evaluate
from mixllm.evaluate.report import write_report
from mixllm.evaluate.targets import evaluate_targets
from mixllm.policy.targets import Target

__all__ = ["DEMO_SAMPLES", "DEMO_SETS", "EvalSpec", "run_demo", "run_evaluation"]

#: What ``mixllm demo`` evaluates: RouterBench (AIQ, budgets) and RouteLLM's sets (APGR).
DEMO_SETS = ("routerbench", "routellm-mmlu", "routellm-gsm8k")
#: The demo's seeded sample size per set (MMLU's 14,037 prompts would take most of its time);
#: ``mixllm evaluate routellm-mmlu --report ...`` evaluates the whole set.
DEMO_SAMPLES = {"routellm-mmlu": 3000}


@dataclass(frozen=True)
class EvalSpec:
    """How to evaluate: which routers, which split, which embedder, seeds and resamples.

    ``reference`` is the LLM the report compares against (default: the best on the training
    data); ``prices`` a price table (:func:`~mixllm.data.price_table.read_price_table`) whose
    costs replace the data's, with ``output_tokens`` assumed where an answer's length is unknown.
    ``targets`` are each reported as met or not on the test split
    (:func:`~mixllm.evaluate.targets.evaluate_targets`, relative to the report's reference).
    """

    routers: tuple[str, ...] | None = None
    split: str = "random"
    test_tasks: tuple[str, ...] | None = None
    test_size: float = 0.2
    embedder: str = DEFAULT_EMBEDDER
    seed: int = 0
    n_boot: int = 1000
    n_lams: int = 30
    reference: str | None = None
    prices: Path | None = None
    output_tokens: float | None = None
    targets: tuple[Target, ...] = ()


def _split(ds: Dataset, spec: EvalSpec) -> tuple[Dataset, Dataset]:
    if spec.split == "random":
        return split_random(ds, test_size=spec.test_size, seed=spec.seed)
    if spec.split == "task":
        if not spec.test_tasks:
            raise ConfigError(
                f"--split task needs --test-tasks; tasks in {ds.name}: {list(ds.task_names)}"
            )
        return split_by_task(ds, spec.test_tasks)
    raise ConfigError(f"split {spec.split!r}; expected 'random' or 'task'")


def _priced(data: Sequence[Dataset], spec: EvalSpec) -> tuple[list[Dataset], tuple[str, ...]]:
    """``data`` with the costs of ``spec.prices`` (unchanged without), and how they were made."""
    if spec.prices is None:
        if spec.output_tokens is not None:
            raise ConfigError(
                f"output tokens {spec.output_tokens:g} without a price table; give --prices FILE"
            )
        return list(data), ()
    table = read_price_table(spec.prices)
    out, notes = [], []
    labels = ("",) if len(data) == 1 else ("training data: ", "test data: ")
    for label, ds in zip(labels, data):
        priced, said = price_dataset(ds, table, output_tokens=spec.output_tokens)
        out.append(priced)
        notes += [label + n for n in said]
    return out, tuple(notes)


def run_evaluation(
    ds: Dataset,
    spec: EvalSpec,
    report_dir: Path,
    *,
    test: Dataset | None = None,
    progress: ProgressCallback | None = None,
) -> list[tuple[Report, list[Path]]]:
    """Evaluate the routers of ``spec`` and write the report into ``report_dir``.

    Without ``test``, ``ds`` is split as ``spec`` says; with it, ``ds`` is the training data and
    ``test`` the test data (no split). A price table in ``spec`` prices both first.
    """
    if test is not None and spec.split != "random":
        raise ConfigError(f"--split {spec.split} with separate test data; give one or the other")
    if test is None:
        (ds,), notes = _priced([ds], spec)
        train, test = _split(ds, spec)
    else:
        (train, test), notes = _priced([ds, test], spec)
    tell = None
    if progress is not None:
        outer = progress

        def tell(what: str, done: int, total: int) -> None:
            outer(f"{ds.name}: {what}", done, total)

    embedder = MemoEmbedder(make_embedder(spec.embedder))  # shared with the targets' router
    report = evaluate(
        train,
        test,
        routers=spec.routers or DEFAULT_ROUTERS,
        embedder=embedder,
        reference=spec.reference,
        n_lams=spec.n_lams,
        n_boot=spec.n_boot,
        seed=spec.seed,
        progress=tell,
        notes=notes,
    )
    if spec.targets:
        if tell is not None:
            tell("targets (mixllm, cross-fitted)", 0, 1)
        rows = evaluate_targets(
            train,
            test,
            spec.targets,
            embedder=embedder,
            reference=report.context.reference,
            seed=spec.seed,
        )
        if tell is not None:
            tell("targets (mixllm, cross-fitted)", 1, 1)
        report = replace(report, targets=rows)
    return [(report, write_report(report, report_dir))]


def run_demo(
    report_dir: Path,
    *,
    sets: Sequence[str] = DEMO_SETS,
    embedder: str = DEFAULT_EMBEDDER,
    n_boot: int = 1000,
    progress: ProgressCallback | None = None,
) -> list[tuple[Report, list[Path]]]:
    """Evaluate every router on each demo set (seeded 80/20 split; a seeded sample of the sets
    in :data:`DEMO_SAMPLES`); one report directory per set."""
    spec = EvalSpec(embedder=embedder, n_boot=n_boot)
    out: list[tuple[Report, list[Path]]] = []
    for name in sets:
        ds = load_dataset(name)
        size = DEMO_SAMPLES.get(name, len(ds))
        if size < len(ds):
            rows = np.sort(np.random.default_rng(spec.seed).choice(len(ds), size, replace=False))
            ds = ds.subset(rows, name=f"{ds.name}, sample of {size}")
        out += run_evaluation(ds, spec, report_dir / name, progress=progress)
    return out
