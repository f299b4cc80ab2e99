"""Every fenced code block of README.md and docs/*.md, one test per block (id ``doc:line``), so
that a doc that drifts from the code fails the suite. Project rule: "Keep docs in the repo
(README, docs/) true to what the code does. Every code block in docs runs as a test."

How each kind of block is checked (by its fence's language):

- ``python``: executed; a doc's Python blocks in order in one namespace (one Python process per
  doc), in order with its shell blocks.
- ``bash``, ``sh``, ``console`` (the ``$`` lines): run by bash with ``set -euo pipefail``, in order
  with the doc's Python blocks; ``BLOCK_TIMEOUT_S`` each.
- ``toml``: a pool for ``mixllm collect`` (every upstream priced) goes through
  ``pool_from_text``, each of its ``[[judges]]`` through ``make_backend``; a gateway config
  (``[server]``, ``[[keys]]``, ``[profiles.*]``, ``[[upstreams]]``) goes through
  ``load_settings_text`` with every ``*_env`` variable set, and ``make_backend`` for each
  upstream; other TOML through ``tomllib``.
- ``json``: ``json.loads``. ``jsonl``, ``csv`` (data examples): each JSONL line ``json.loads``,
  then the block written to a file and read by ``mixllm.data.load_dataset``.
- untagged blocks of ``SYNOPSIS_DOCS`` (docs/cli.md): usage synopses, not executable
  (placeholders in capitals, options in brackets); their command and every ``--option`` must
  exist in the CLI.
- anything else must be listed in ``NOT_EXECUTABLE`` with the reason (skipped, shown by ``-ra``);
  a block that cannot run here gets a named entry in ``EXEMPT``; an unlisted one fails.

Where the shell and Python blocks run: ``<tmp>/docs/<doc>/work``, a folder that stands for the
repository root (commands in the docs are written for it): it links the repository's ``.venv``
(the Python running the tests), ``src``, ``tests``, ``benchmarks``, ``Makefile`` and
``pyproject.toml``, so ``.venv/bin/python -m pytest tests/...`` and ``make`` work, while what
the blocks write stays in the temporary folder; ``../shared/data`` there is the routing data.
``FILES`` lists what is put there first (data the docs use without creating it). Environment:
the test Python's ``bin`` first on PATH, ``MIXLLM_DATA_DIR``, ``HF_HUB_OFFLINE=1`` and a
``MIXLLM_CACHE_DIR`` shared by the session (the static embedder is distilled once). Each doc runs
once per session, in whichever xdist worker asks first (a file lock); its blocks' tests then read
the outcomes, so blocks that depend on earlier ones (a fitted router, a running gateway) work
whichever worker runs their test.

``REWRITES`` (tests/docrules.py) is the one table of changes made to the docs' commands before
they run; every entry must still match a block (``test_rewrites_and_exemptions_match_the_docs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import tomllib
from filelock import FileLock

from tests.docblocks import SHELL_LANGS, Block, DocRun, doc_paths, extract_blocks
from tests.docrules import EXEMPT, NOT_EXECUTABLE, REWRITES, SERVICES, SYNOPSIS_DOCS

REPO = Path(__file__).resolve().parents[1]
BLOCK_TIMEOUT_S = 240.0


RUN_LANGS = ("python", *SHELL_LANGS)
GATEWAY_TABLES = {"server", "keys", "profiles", "upstreams"}


def _queries_csv(work: Path, blocks: list[Block]) -> None:
    (work / "queries.csv").write_text(
        "id,prompt\nq1,What is the capital of Australia?\nq2,Write a haiku about routers.\n"
        'q3,"Question: which gas do plants take in? A) oxygen B) carbon dioxide"\n',
        encoding="utf-8",
    )


def _ood_tasks(work: Path, blocks: list[Block]) -> None:
    from mixllm.data import make_routing_dataset, write_longform

    data = make_routing_dataset(n_queries=300, n_llms=4, n_topics=3, with_tasks=True, seed=0)
    write_longform(data, work / "ood-tasks.jsonl")


def _own_jsonl_example(work: Path, blocks: list[Block]) -> None:
    (example,) = [b for b in blocks if b.lang == "jsonl"]
    (work / "my_outcomes.jsonl").write_text(example.code, encoding="utf-8")


def _acme_outcomes(work: Path, blocks: list[Block]) -> None:
    rng = np.random.default_rng(0)
    lines = [
        {
            "query_id": f"acme-{i}",
            "prompt": f"Question {i}: {topic}?",
            "llm": "acme/other",
            "quality": float(rng.random() < 0.7),
            "cost_usd": 0.0004,
        }
        for i, topic in enumerate(["capital of France", "2 + 2", "a haiku about rain"] * 10)
    ]
    (work / "acme_outcomes.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8"
    )


#: Files a doc's blocks use without creating them: doc -> [(file, why, maker)].
FILES: dict[str, list[tuple[str, str, Callable[[Path, list[Block]], None]]]] = {
    "README.md": [
        ("queries.csv", "`mixllm route my-router queries.csv`: three prompts", _queries_csv),
        ("ood-tasks.jsonl", "the smaller data of the `simulate ood` rewrite", _ood_tasks),
    ],
    "docs/data-format.md": [
        ("my_outcomes.jsonl", "`load_dataset('my_outcomes.jsonl')`: the doc's JSONL example",
         _own_jsonl_example),
    ],
    "docs/library.md": [
        ("acme_outcomes.jsonl", "`seed_outcomes`: outcomes of `acme/other` on 30 queries",
         _acme_outcomes),
    ],
}  # fmt: skip

LINKED = (".venv", "src", "tests", "benchmarks", "Makefile", "pyproject.toml")


def _all_blocks() -> list[Block]:
    return [b for doc in doc_paths(REPO) for b in extract_blocks(REPO, doc)]


BLOCKS = _all_blocks()


def _listed(table: dict[tuple[str, str], str], block: Block) -> str | None:
    return table.get((block.doc, block.first_line))


def _is_synopsis(block: Block) -> bool:
    return (
        block.lang == "" and block.doc in SYNOPSIS_DOCS and block.first_line.startswith("mixllm ")
    )


def _runs(block: Block) -> bool:
    return block.lang in RUN_LANGS and _listed(EXEMPT, block) is None


def _rewritten(block: Block, port: int, places: Mapping[str, str] | None = None) -> str:
    """The block's code with the rewrites made, ``{port}`` and the other ``places`` filled."""
    fill = {"port": str(port), **(places or {})}
    code = block.code
    for rw in REWRITES:
        if rw.doc in ("*", block.doc) and not rw.by_runner:
            new = rw.new
            for name, value in fill.items():
                new = new.replace("{" + name + "}", value)
            code = code.replace(rw.old, new)
    return code


@contextmanager
def _services(folder: Path) -> Iterator[dict[str, str]]:
    """A PostgreSQL and a Redis server of the doc's own (``SERVICES`` docs): their URLs, and
    two more free ports, for the rewrites."""
    from tests.pg_service import PostgresServer, fresh_database
    from tests.redis_service import RedisServer

    (folder / "redis").mkdir(parents=True)
    pg, redis = PostgresServer(), RedisServer(folder / "redis")
    try:
        pg.start()
        redis.start()
        yield {
            "postgres": fresh_database(pg.url), "redis": redis.url,
            "port2": str(_free_port()), "port3": str(_free_port()),
        }  # fmt: skip
    finally:
        redis.stop()
        pg.remove()


def _stop_pidfiles(work: Path) -> None:
    """SIGTERM to the processes a doc started in the background and listed in ``*.pid`` files
    (a doc that failed halfway leaves them running)."""
    for pidfile in work.glob("*.pid"):
        for line in pidfile.read_text().split():
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(line), signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _run_doc(doc: str, folder: Path, data_dir: Path, session: Path) -> dict[str, Any]:
    """Prepare ``folder`` (see the module doc) and run ``doc``'s blocks there."""
    work, shared = folder / "work", folder / "shared"
    work.mkdir(parents=True)
    shared.mkdir()
    (shared / "data").symlink_to(data_dir.resolve(), target_is_directory=True)
    for name in LINKED:
        target = Path(sys.prefix) if name == ".venv" else REPO / name
        if target.exists():
            (work / name).symlink_to(target, target_is_directory=target.is_dir())
    blocks = extract_blocks(REPO, doc)
    for _, _, make in FILES.get(doc, []):
        make(work, blocks)
    models = session / "static-models"  # the folder tests/embed distils into: once a session
    models.mkdir(exist_ok=True)
    cache = session / "docs-cache"
    cache.mkdir(exist_ok=True)
    if not (cache / "models").exists():
        (cache / "models").symlink_to(models, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        MIXLLM_DATA_DIR=str(data_dir),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        MIXLLM_CACHE_DIR=str(cache),
    )
    port = _free_port()
    with ExitStack() as stack:
        places = stack.enter_context(_services(folder)) if doc in SERVICES else {}
        stack.callback(_stop_pidfiles, work)
        todo = [(b, _rewritten(b, port, places)) for b in blocks if _runs(b)]
        runner = DocRun(
            todo,
            root=REPO,
            workdir=work,
            logdir=folder / "logs",
            env=env,
            port=port,
            timeout_s=BLOCK_TIMEOUT_S,
        )
        return {k: v.as_json() for k, v in runner.run().items()}


@pytest.fixture(scope="session")
def doc_outcomes(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Callable[[str], dict[str, Any]]:
    """``doc -> {block id: {"ok", "detail", "seconds"}}``, each doc run once per session."""
    session = _session_dir(tmp_path_factory)
    runs = session / "docs"
    runs.mkdir(exist_ok=True)
    seen: dict[str, dict[str, Any]] = {}

    def outcomes(doc: str) -> dict[str, Any]:
        if doc not in seen:
            slug = doc.replace("/", "-").removesuffix(".md")
            result = runs / f"{slug}.json"
            with FileLock(str(runs / f"{slug}.lock")):
                if not result.exists():
                    found = _run_doc(doc, runs / slug, data_dir, session)
                    result.write_text(json.dumps(found), encoding="utf-8")
            seen[doc] = json.loads(result.read_text(encoding="utf-8"))
        return seen[doc]

    return outcomes


# -- the checks that need no run ------------------------------------------------------------------
def _env_names(value: object) -> Iterator[str]:
    """Every ``*_env`` value (and ``*_envs`` list item) in parsed TOML."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_env") and isinstance(item, str):
                yield item
            elif key.endswith("_envs") and isinstance(item, list):
                yield from (str(x) for x in item)
            else:
                yield from _env_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _env_names(item)


def _check_toml(block: Block) -> None:
    data = tomllib.loads(block.code)
    environ = {name: f"secret-for-{name}" for name in _env_names(data)}
    if data.get("upstreams") and all("price_in_per_mtok" in u for u in data["upstreams"]):
        from mixllm.collect import pool_from_text  # a pool for `mixllm collect`

        pool_from_text(block.code, environ=environ)
    for judge in data.get("judges", []):  # judges of a pool, shown on their own
        from mixllm.serve.backends import make_backend

        assert {"price_in_per_mtok", "price_out_per_mtok"} <= set(judge), judge
        make_backend(judge, environ=environ)
    if not set(data) & GATEWAY_TABLES:
        return
    from mixllm.serve.backends import make_backend
    from mixllm.serve.settings import load_settings_text

    settings = load_settings_text(block.code, environ=environ, source=block.id)
    for upstream in settings.upstreams:
        make_backend(upstream, environ=environ)


def _check_data(block: Block, tmp_path: Path) -> None:
    from mixllm.data import load_dataset

    if block.lang == "jsonl":
        for line in block.code.splitlines():
            if line.strip():
                json.loads(line)
    path = tmp_path / f"example.{block.lang}"
    path.write_text(block.code, encoding="utf-8")
    data = load_dataset(path)
    assert data.quality.shape[0] > 0


def _check_synopsis(block: Block) -> None:
    from mixllm.cli import cli

    text = " ".join(block.code.split())
    for synopsis in ("mixllm " + s for s in text.split("mixllm ")[1:]):
        words = synopsis.split()[1:]
        command: click.Command = cli
        while isinstance(command, click.Group) and words and words[0] in command.commands:
            command = command.commands[words.pop(0)]
        assert not isinstance(command, click.Group), f"{synopsis!r}: no such mixllm command"
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        options = {
            w.strip("[]()|.,").split("=")[0] for w in words if w.lstrip("[(|").startswith("--")
        }
        assert options <= known, f"{synopsis!r}: unknown options {sorted(options - known)}"


# -- the tests ---------------------------------------------------------------------------------
def _marks(block: Block) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if _runs(block) else []


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=_marks(b)) for b in BLOCKS])
def test_doc_block(
    block: Block, doc_outcomes: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    if (why := _listed(NOT_EXECUTABLE, block)) is not None:
        pytest.skip(f"not executable: {why}")
    if (why := _listed(EXEMPT, block)) is not None:
        pytest.skip(f"exempt: {why}")
    if _is_synopsis(block):
        _check_synopsis(block)
    elif block.lang == "toml":
        _check_toml(block)
    elif block.lang == "json":
        json.loads(block.code)
    elif block.lang in ("jsonl", "csv"):
        _check_data(block, tmp_path)
    elif block.lang in RUN_LANGS:
        outcome = doc_outcomes(block.doc)[block.id]
        if not outcome["ok"]:
            pytest.fail(f"{block.id} failed: {outcome['detail']}", pytrace=False)
    else:
        pytest.fail(
            f"{block.id}: a ```{block.lang} block is neither run nor listed in NOT_EXECUTABLE "
            "(tests/test_docs.py); give it a language this test runs, or list it with the reason"
        )


def test_rewrites_and_exemptions_match_the_docs() -> None:
    """No stale entry: each rewrite, exemption and listed block still exists in the docs."""
    for rw in REWRITES:
        assert any(rw.doc in ("*", b.doc) and rw.old in b.code for b in BLOCKS), rw
    keys = {(b.doc, b.first_line) for b in BLOCKS}
    for table in (EXEMPT, NOT_EXECUTABLE):
        assert set(table) <= keys, sorted(set(table) - keys)
    for doc in FILES:
        assert (REPO / doc).is_file(), doc


def test_every_doc_has_its_blocks_found() -> None:
    """The block extractor sees README.md and docs/*.md."""
    docs = {b.doc for b in BLOCKS}
    assert {"README.md", "docs/cli.md", "docs/gateway.md", "docs/library.md"} <= docs
