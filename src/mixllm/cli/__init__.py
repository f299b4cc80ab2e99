"""The ``mixllm`` command: parse arguments, build library objects, call one function, print.

Commands: ``fit``, ``route``, ``evaluate``, ``demo``, ``simulate``, ``serve``, ``collect``,
``export``, ``data fetch`` and ``data prompts``. Every error a user can cause ends with a
one-line message naming the bad value and a non-zero exit (status 2).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mixllm.cli._common import _check_names, _console, _load, _progress, _run_and_print
from mixllm.embed import DEFAULT_EMBEDDER
from mixllm.errors import MixLLMError

__all__ = ["main"]


class _Group(click.Group):
    """Turns mixllm errors into a clear message and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MixLLMError as exc:
            raise click.ClickException(str(exc)) from None


click.ClickException.exit_code = 2


@click.group(cls=_Group)
@click.version_option(package_name="mixllm")
def cli() -> None:
    """mixllm: route each query to the LLM with the best quality for the money."""


@cli.command()
@click.option(
    "--report", "report_dir", default=Path("reports/demo"), type=click.Path(path_type=Path)
)
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True)
@click.option("--n-boot", default=1000, show_default=True, type=int)
def demo(report_dir: Path, embedder: str, n_boot: int) -> None:
    """Evaluate every router on RouterBench, a seeded sample of 3,000 of RouteLLM's MMLU prompts
    and RouteLLM's GSM8K (seeded 80/20 splits); print a table and write a report per set."""
    from mixllm.evaluate.run import run_demo

    _run_and_print(
        lambda progress: run_demo(report_dir, embedder=embedder, n_boot=n_boot, progress=progress)
    )


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}; expected integers separated by commas") from None


@cli.command()
@click.argument("scenario", type=click.Choice(["ood", "latency", "pool", "pacing"]))
@click.option("--data", "data_source", default="routerbench", show_default=True,
              help="A data file, folder or named set.")  # fmt: skip
@click.option("--report", "report_dir", required=True, type=click.Path(path_type=Path))
@click.option("--seeds", default="0", show_default=True,
              help="Comma-separated seeds; several give 95% intervals over seeds (e.g. 0,1,2,3,4, "
              "as many times as long as one).")  # fmt: skip
@click.option("--lam", default=100.0, show_default=True, type=float, help="λ of every router.")
@click.option("--alpha", default=0.3, show_default=True, type=float,
              help="Exploration weight of the learning routers.")  # fmt: skip
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True)
@click.option("--window", default=50, show_default=True, type=int, help="Queries per window.")
@click.option("--rate", default=12.0, show_default=True, type=float,
              help="latency: arrivals per second.")  # fmt: skip
@click.option("--tau", default=5.0, show_default=True, type=float, help="latency: τ (s).")
@click.option("--beta", default=0.1, show_default=True, type=float, help="latency: β.")
@click.option("--newcomer", default=None, help="pool: the LLM that joins late (default: busiest).")
@click.option("--join-at", default=100, show_default=True, type=int, help="pool: query index.")
def simulate(
    scenario: str,
    data_source: str,
    report_dir: Path,
    seeds: str,
    lam: float,
    alpha: float,
    embedder: str,
    window: int,
    rate: float,
    tau: float,
    beta: float,
    newcomer: str | None,
    join_at: int,
) -> None:
    """Stream queries through routers in simulated time (SCENARIO: ood, latency or pool) and
    write a report (report.md, report.json, plots)."""
    import dataclasses
    import time

    from mixllm.simulate.run import SimSpec, run_simulation
    from mixllm.types import resolve_llm

    spec = SimSpec(
        scenario=scenario, seeds=_ints(seeds), lam=lam, alpha=alpha, embedder=embedder,
        window=window, rate_per_s=rate, tau_s=tau, beta=beta, newcomer=newcomer, join_at=join_at,
    )  # fmt: skip
    _check_names("mixllm", embedder)
    ds = _load((data_source,))
    if newcomer is not None:  # a short name is fine: mixtral-8x7b-chat
        spec = dataclasses.replace(spec, newcomer=resolve_llm(newcomer, ds.llms))
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task(scenario, total=1)

        def on_progress(step: str, done: int, total: int) -> None:
            progress.update(task, description=step, completed=done, total=total)

        text, paths = run_simulation(ds, spec, report_dir, progress=on_progress)
    click.echo(text)
    click.echo(f"report written to {paths[0].parent}")
    if len(spec.seeds) == 1:
        took = time.monotonic() - started
        click.echo(
            f"one seed took {took:.0f} s, without intervals over seeds; --seeds 0,1,2,3,4 "
            f"gives them in about {5 * took / 60:.0f} min",
            err=True,
        )


@cli.command()
@click.argument("router_dir", type=click.Path(path_type=Path))
@click.option("--config", type=click.Path(path_type=Path), default=None, help="mixllm.toml.")
@click.option("--replay", default=None, help="Answer from the recorded responses of DATA.")
@click.option("--state", "state_dir", type=click.Path(path_type=Path), default=None,
              help="Store and checkpoints (default: ROUTER_DIR.state).")  # fmt: skip
@click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="sqlite:///FILE (one machine; the default is STATE/gateway.db) or postgresql://... "
    "(replicas sharing decisions, feedback, spend and checkpoints).",
)
@click.option(
    "--redis",
    "redis_url",
    default=None,
    metavar="URL",
    help="redis://... shared by replicas: in-flight counts, service times, breakers, rate limits.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--access-log",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Append the JSON access log (one line a request) to FILE (default: stderr).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def serve(
    router_dir: Path, config: Path | None, replay: str | None, state_dir: Path | None,
    store_url: str | None, redis_url: str | None, host: str, port: int,
    access_log: Path | None, log_level: str,
) -> None:  # fmt: skip
    """Serve ROUTER_DIR as an OpenAI-compatible gateway (POST /v1/chat/completions)."""
    import os

    from mixllm.serve.logs import configure_logging
    from mixllm.serve.run import build_app
    from mixllm.serve.run import serve as run_server

    level = log_level.lower()
    configure_logging(level, access_log=access_log)  # before the build, which may warn
    app = build_app(
        router_dir, environ=os.environ, config=config, replay=replay, state_dir=state_dir,
        store=store_url, redis=redis_url,
    )  # fmt: skip
    settings = app.state.gateway.settings
    configure_logging(
        level, access_log=access_log, errors_per_minute=settings.error_logs_per_minute
    )
    click.echo(f"mixllm gateway for {router_dir} on http://{host}:{port}/v1", err=True)
    # Ctrl-C: uvicorn drains, the app checkpoints and closes, then uvicorn raises it again
    with contextlib.suppress(KeyboardInterrupt):
        run_server(app, host=host, port=port, log_level=level)


@cli.group()
def data() -> None:
    """Download routing data (fetch) and write a dataset's prompts for collect (prompts)."""


@data.command("fetch")
@click.argument("name", type=click.Choice(["routerbench"]))
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
def fetch(name: str, cache_dir: Path | None) -> None:
    """Download a public routing dataset into the user cache (pinned revision)."""
    from mixllm.data import fetch_routerbench

    with _console().status(f"downloading {name}"):
        path = fetch_routerbench(cache_dir=cache_dir)
    click.echo(str(path))


def _register() -> None:
    """Add the commands defined in this package's other modules."""
    from mixllm.cli.collect import collect, prompts
    from mixllm.cli.evaluate import evaluate
    from mixllm.cli.export import export
    from mixllm.cli.fit import fit
    from mixllm.cli.route import route

    cli.add_command(fit)
    cli.add_command(route)
    cli.add_command(evaluate)
    cli.add_command(collect)
    data.add_command(prompts)
    cli.add_command(export)


_register()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mixllm`` console script."""
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="mixllm")
