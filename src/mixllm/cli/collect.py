"""``mixllm collect`` (routing outcomes from your own LLM pool) and ``mixllm data prompts``.

Exit status of ``mixllm collect``: 0 when every pair is written, 1 when some are left (the spending
cap was reached, or pairs failed: a rerun continues), 130 after Ctrl-C, 2 for a bad argument.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from mixllm.cli._common import _console, _progress
from mixllm.errors import ConfigError

__all__ = ["collect", "prompts"]


@click.command()
@click.argument("prompts_file", metavar="PROMPTS", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Outcomes file (.jsonl, long layout); an existing one is resumed.",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    default=None,
    help="Pool TOML: [[upstreams]] with prices, optional [[judges]].",
)
@click.option(
    "--replay",
    default=None,
    help="Instead of --config: every LLM of DATA answers from its recorded responses.",
)
@click.option("--llms", default=None, help="Comma-separated subset of the pool.")
@click.option("--sample", type=int, default=None, help="A seeded sample of N prompts.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--concurrency", type=int, default=4, show_default=True, help="Calls in flight per upstream."
)
@click.option(
    "--max-tokens",
    type=int,
    default=1024,
    show_default=True,
    help="Answer limit sent upstream (also bounds each call's worst-case cost).",
)
@click.option(
    "--retries",
    type=int,
    default=4,
    show_default=True,
    help="Retries of a call after 429, 5xx or a timeout.",
)
@click.option("--max-usd", type=float, default=None, help="Spending cap, answers and judge.")
@click.option(
    "--grader",
    default="auto",
    show_default=True,
    help="Reference grader (mixllm.grade), 'judge' or 'none'; a row's own wins.",
)
@click.option(
    "--judge", default=None, help="Judge LLM (pool or [[judges]]; 'recorded' with --replay)."
)
@click.option("--judge-template", type=click.Path(path_type=Path), default=None)
@click.option(
    "--code-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds the code grader lets an answer's tests run (then the row scores 0).",
)
@click.option(
    "--pairwise",
    default=None,
    metavar="REF_LLM",
    help="Judge each answer against REF_LLM's, in both orders.",
)
@click.pass_context
def collect(
    ctx: click.Context, prompts_file: Path, out: Path, config: Path | None, replay: str | None,
    llms: str | None, sample: int | None, seed: int, concurrency: int, max_tokens: int,
    retries: int, max_usd: float | None, grader: str, judge: str | None,
    judge_template: Path | None, code_timeout: float, pairwise: str | None,
) -> None:  # fmt: skip
    """Send every prompt of PROMPTS (JSONL/CSV: query_id, prompt, optional reference, task,
    grader) to every LLM of the pool and write one graded outcome per pair to --out."""
    from mixllm.collect import (
        CallPolicy,
        CollectSpec,
        Grading,
        load_pool,
        read_prompts,
        replay_pool,
        sample_prompts,
    )  # fmt: skip
    from mixllm.collect.prompts import check_grader_choice
    from mixllm.collect.run import collect as run_collect

    check_grader_choice(grader)
    if (config is None) == (replay is None):
        raise ConfigError("give exactly one of --config POOL.toml or --replay DATA")
    if out.suffix.lower() != ".jsonl":
        raise ConfigError(f"--out {str(out)!r}; expected a .jsonl file")
    rows = sample_prompts(read_prompts(prompts_file), sample, seed=seed)
    if replay is not None:
        from mixllm.data import load_dataset

        with _console().status(f"loading {replay}"):
            pool = replay_pool(load_dataset(replay))
    else:
        assert config is not None
        pool = load_pool(config, environ=os.environ)
    judge_llm = None if judge is None else pool.judge(judge)  # may be left out of --llms
    if llms is not None:
        pool = pool.select([m.strip() for m in llms.split(",") if m.strip()])
    template = None
    if judge_template is not None:
        from mixllm.grade import load_template

        template = load_template(judge_template, pairwise=pairwise is not None)
    grading = Grading(
        grader, judge_llm, template=template, pairwise=pairwise, code_timeout_s=code_timeout
    )
    spec = CollectSpec(
        CallPolicy(max_tokens=max_tokens, retries=retries),
        concurrency=concurrency, max_usd=max_usd, grading=grading,
    )  # fmt: skip
    console = _console()
    with _progress() as progress:
        task = progress.add_task("collecting", total=None)

        def tell(done: int, total: int, spent: float) -> None:
            progress.update(
                task, completed=done, total=total, description=f"collecting  ${spent:.4f}"
            )

        def interrupted() -> None:
            console.print("stopping: no new calls; waiting for those in flight (Ctrl-C again "
                          "to cancel them)")  # fmt: skip

        summary = run_collect(rows, pool, out, spec, progress=tell, on_interrupt=interrupted)
    for line in summary.lines():
        click.echo(line)
    if summary.interrupted:
        ctx.exit(130)
    if summary.left:
        ctx.exit(1)


@click.command("prompts")
@click.argument("data")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Prompts file to write (.jsonl).")  # fmt: skip
@click.option("--sample", type=int, default=None, help="A seeded sample of N prompts.")
@click.option("--seed", type=int, default=0, show_default=True)
def prompts(data: str, out: Path, sample: int | None, seed: int) -> None:
    """Write the prompts (query_id, prompt, task) of DATA, any dataset mixllm loads, as the
    PROMPTS file of ``mixllm collect``."""
    from mixllm.collect import dataset_prompts, sample_prompts, write_prompts
    from mixllm.data import load_dataset

    with _console().status(f"loading {data}"):
        ds = load_dataset(data)
    rows = sample_prompts(dataset_prompts(ds), sample, seed=seed)
    write_prompts(rows, out)
    click.echo(f"wrote {len(rows)} prompts of {ds.name} to {out}")
