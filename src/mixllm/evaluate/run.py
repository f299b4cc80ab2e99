"""Whole evaluation jobs behind ``mixllm evaluate`` and ``mixllm demo``: load, split, evaluate,
write the report. The CLI only parses arguments and prints what these return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mixllm.data import Dataset, load_dataset, split_by_task, split_random
from mixllm.embed import DEFAULT_EMBEDDER, make_embedder
from mixllm.errors import ConfigError
from mixllm.evaluate.harness import DEFAULT_ROUTERS, ProgressCallback, Report, evaluate
from mixllm.evaluate.report import write_report

__all__ = ["DEMO_SETS", "EvalSpec", "run_demo", "run_evaluation"]

#: What ``mixllm demo`` evaluates: RouterBench (AIQ, budgets) and RouteLLM's sets (APGR).
DEMO_SETS = ("routerbench", "routellm-mmlu", "routellm-gsm8k")


@dataclass(frozen=True)
class EvalSpec:
    """How to evaluate: which routers, which split, which embedder, seeds and resamples."""

    routers: tuple[str, ...] | None = None
    split: str = "random"
    test_tasks: tuple[str, ...] | None = None
    test_size: float = 0.2
    embedder: str = DEFAULT_EMBEDDER
    seed: int = 0
    n_boot: int = 1000
    n_lams: int = 30


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


def run_evaluation(
    ds: Dataset,
    spec: EvalSpec,
    report_dir: Path,
    *,
    progress: ProgressCallback | None = None,
) -> list[tuple[Report, list[Path]]]:
    """Split ``ds``, evaluate the routers of ``spec`` and write the report into ``report_dir``."""
    train, test = _split(ds, spec)
    tell = None
    if progress is not None:
        outer = progress

        def tell(what: str, done: int, total: int) -> None:
            outer(f"{ds.name}: {what}", done, total)

    report = evaluate(
        train,
        test,
        routers=spec.routers or DEFAULT_ROUTERS,
        embedder=make_embedder(spec.embedder),
        n_lams=spec.n_lams,
        n_boot=spec.n_boot,
        seed=spec.seed,
        progress=tell,
    )
    return [(report, write_report(report, report_dir))]


def run_demo(
    report_dir: Path,
    *,
    sets: Sequence[str] = DEMO_SETS,
    embedder: str = DEFAULT_EMBEDDER,
    n_boot: int = 1000,
    progress: ProgressCallback | None = None,
) -> list[tuple[Report, list[Path]]]:
    """Evaluate every router on each demo set (seeded 80/20 split); one report directory per set."""
    spec = EvalSpec(embedder=embedder, n_boot=n_boot)
    out: list[tuple[Report, list[Path]]] = []
    for name in sets:
        ds = load_dataset(name)
        out += run_evaluation(ds, spec, report_dir / name, progress=progress)
    return out
