"""What tests/test_docs.py changes, skips or reads differently in the docs' code blocks: the
rewrites made to commands before they run (``REWRITES``), blocks that cannot run here
(``EXEMPT``), blocks that are output rather than code (``NOT_EXECUTABLE``), and docs whose untagged
blocks are usage synopses (``SYNOPSIS_DOCS``). Each entry says why; each must still match a block
(``test_rewrites_and_exemptions_match_the_docs``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXEMPT", "NOT_EXECUTABLE", "REWRITES", "SERVICES", "SYNOPSIS_DOCS", "Rewrite"]


@dataclass(frozen=True)
class Rewrite:
    """In ``doc`` (``*``: every doc) ``old`` becomes ``new`` (``{port}``: the doc's free port)
    before the block runs. ``by_runner``: done by :class:`tests.docblocks.DocRun`, not as text."""

    doc: str
    old: str
    new: str
    why: str
    by_runner: bool = False


REWRITES = [
    Rewrite(
        "*",
        "mixllm serve ",
        "mixllm serve ... --port {port}, in the background",
        "A gateway must outlive its block: started in the background on a free port, waited for "
        "on /healthz, used by the doc's later blocks, stopped with SIGINT (Ctrl-C) after the "
        "doc's last block, which must make it exit within 30 s.",
        by_runner=True,
    ),
    Rewrite(
        "*",
        "127.0.0.1:8000",
        "127.0.0.1:{port}",
        "The gateway of that doc listens on a free port (parallel runs, port 8000 may be taken).",
    ),
    Rewrite(
        "README.md",
        "make demo ",
        "make --dry-run demo ",
        "`make demo` evaluates every router on RouterBench, a 3,000-prompt MMLU sample and GSM8K "
        "(32 CPU-s, plus ~100 CPU-s distilling the static model on a first run: the README's "
        "figures) and it has no smaller arguments; the dry run checks the target and prints its "
        "recipe.",
    ),
    Rewrite(
        "README.md",
        "make test ",
        "make --dry-run test ",
        "`make test` is the suite that runs this test (recursion); the dry run checks the target.",
    ),
    Rewrite(
        "README.md",
        "mixllm data fetch routerbench ",
        "rc=0; mixllm data fetch routerbench --cache-dir fetch-cache 2> fetch.err || rc=$?; "
        'test "$rc" -eq 2; grep -q MIXLLM_DATA_DIR fetch.err ',
        "It downloads from the Hugging Face hub, which CI cannot reach (HF_HUB_OFFLINE=1): offline "
        "it must fail with status 2 and a message pointing to MIXLLM_DATA_DIR "
        "(docs/data-format.md); an empty --cache-dir so a copy in the user's cache does not count.",
    ),
    Rewrite(
        "README.md",
        "mixllm simulate ood --report sim-ood ",
        "mixllm simulate ood --report sim-ood --data ood-tasks.jsonl --seeds 0 ",
        "One seed (the default) on RouterBench takes minutes (2 m 22 s measured); one seed on 300 "
        "generated queries with 3 tasks (FILES) ~12 s.",
    ),
    Rewrite(
        "docs/reliability.md",
        ".venv/bin/python -m pytest -q ",
        ".venv/bin/python -m pytest -q --collect-only -p no:cacheprovider ",
        "These tests are part of the suite (`make test` runs them, ~90 s together); collecting "
        "them checks that the files and test names the doc gives exist.",
    ),
    Rewrite(
        "docs/reliability.md",
        "--out gateway_latency.md",
        "--out gateway_latency.md --n 20",
        "500 requests per cell (18 cells) take minutes; 20 exercise the same harness (~14 s).",
    ),
    Rewrite(
        "docs/reliability.md",
        "--n 300 ",
        "--n 20 ",
        "300 requests per cell take minutes; 20 exercise the same harness (~14 s).",
    ),
    Rewrite(
        "docs/targets.md",
        "--splits 20 ",
        "--splits 1 --folds 2 ",
        "20 splits take ~11 min on 2 cores (a calibration each); one split with 2 folds "
        "exercises the same benchmark (~30 s).",
    ),
]

_DEPLOY_WHY = (
    "The doc's replicas use the PostgreSQL and Redis started for its run (SERVICES) and free "
    "ports (parallel runs, 8001-8003 may be taken)."
)
REWRITES += [
    Rewrite(
        "docs/deploy.md", "postgresql://mixllm@127.0.0.1:5432/mixllm", "{postgres}", _DEPLOY_WHY
    ),
    Rewrite("docs/deploy.md", "redis://127.0.0.1:6379/0", "{redis}", _DEPLOY_WHY),
    Rewrite("docs/deploy.md", "8001 8002 8003", "{port} {port2} {port3}", _DEPLOY_WHY),
    Rewrite("docs/deploy.md", "(8001, 8002, 8003)", "({port}, {port2}, {port3})", _DEPLOY_WHY),
    Rewrite("docs/deploy.md", "call(8001,", "call({port},", _DEPLOY_WHY),
    Rewrite("docs/deploy.md", "call(8002,", "call({port2},", _DEPLOY_WHY),
]

#: Blocks that cannot run as written here: (doc, first line of the block) -> why.
EXEMPT: dict[tuple[str, str], str] = {
    (
        "docs/deploy.md",
        "mixllm serve my-router --config mixllm.toml --port 8000 \\",
    ): "a production replica on the reader's database and cache hosts; the doc's one-machine "
    "section runs the same command on a PostgreSQL and a Redis of its own",
    (
        "docs/own-pool.md",
        "mixllm collect prompts.jsonl --config pool.toml --judge gpt-4o --max-usd 25 "
        "--out outcomes.jsonl",
    ): "calls the real pool (OpenAI, Anthropic, a vLLM and an Ollama server: keys and network); "
    "the doc's offline section runs the same commands on replayed upstreams",
}

#: Blocks that are not code at all: (doc, first line of the block) -> what they are.
NOT_EXECUTABLE: dict[tuple[str, str], str] = {
    (
        "README.md",
        "routerbench_0shot_subset: 508 test queries, reference gpt-4-1106-preview",
    ): "the table `make demo` prints (output, not a command; its numbers are the demo's)",
    (
        "docs/targets.md",
        "target: mean cost at most 25% of gpt-4-1106-preview's -> λ = 30.0851",
    ): "what the `mixllm fit --cost-share 0.25` block above prints (output, not a command)",
    ("docs/deploy.md", "clients"): "a picture of the deployment (not a command)",
    ("docs/deploy.md", "upstream mixllm {"): "an nginx configuration (nginx is not part of this "
    "project; the replicas behind it are tested by tests/serve/test_replicas.py)",
}

#: Docs whose blocks run against a PostgreSQL and a Redis server started for the doc's run:
#: ``{postgres}`` (a fresh database) and ``{redis}`` in REWRITES are their URLs, and ``{port2}``,
#: ``{port3}`` two more free ports (for several gateways).
SERVICES = {"docs/deploy.md"}

#: Docs whose untagged blocks are usage synopses of the `mixllm` command.
SYNOPSIS_DOCS = {"docs/cli.md"}
