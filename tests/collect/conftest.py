"""Helpers for the collect tests: a scripted OpenAI-compatible upstream on 127.0.0.1 that records
every (model, prompt) it is asked, pool files pointing at it, and the CLI runner."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mixllm.cli import cli
from mixllm.serve.run import serve_in_thread

#: USD per million tokens of the fake LLMs (in, out) and of the judge.
PRICES = {"small": (1.0, 2.0), "big": (10.0, 30.0), "judge": (3.0, 6.0)}


class Upstream:
    """An upstream serving every model: answers ``"<model> answer <n words of the prompt>"``
    after ``delay_s`` (the judge model answers ``"Rating: [[7]]"``), or fails with the statuses
    scripted per model in ``failures`` (each used once, in order; ``fail_always`` for ever).
    ``seen`` counts the (model, prompt) pairs asked, failed calls included."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.failures: dict[str, list[int]] = {}
        self.fail_always: dict[str, int] = {}
        self.seen: Counter[tuple[str, str]] = Counter()
        self.answered: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        model, prompt = str(body["model"]), str(body["messages"][-1]["content"])
        with self._lock:
            self.seen[(model, prompt)] += 1
            scripted = self.failures.get(model)
            status = scripted.pop(0) if scripted else self.fail_always.get(model)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if status is not None:
            headers = {"Retry-After": "0"} if status in (429, 503) else {}
            return JSONResponse({"error": {"message": f"scripted {status}"}}, status, headers)
        text = "Rating: [[7]]" if model == "judge" else f"{model} answer {len(prompt.split())}"
        with self._lock:
            self.answered[(model, prompt)] += 1
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        return JSONResponse({"model": model, "choices": [{**choice, "finish_reason": "stop"}],
                             "usage": usage})  # fmt: skip


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    """A fresh :class:`Upstream` served on 127.0.0.1; yields it and its base URL."""
    up = Upstream()
    with serve_in_thread(up.app) as base:
        yield up, base


def pool_file(path: Path, base: str, llms: tuple[str, ...] = ("small", "big"), *,
              judge: bool = False, timeout_s: float = 10.0) -> Path:  # fmt: skip
    """A pool TOML with ``llms`` (and a ``[[judges]]`` table for ``judge``) at ``base``."""
    tables = [("upstreams", m) for m in llms] + ([("judges", "judge")] if judge else [])
    text = "".join(
        f'[[{kind}]]\nllm = "{m}"\nbase_url = "{base}"\nmodel = "{m}"\ntimeout_s = {timeout_s}\n'
        f"price_in_per_mtok = {PRICES[m][0]}\nprice_out_per_mtok = {PRICES[m][1]}\n\n"
        for kind, m in tables
    )
    path.write_text(text)
    return path


def prompts_file(path: Path, n: int, *, words: int = 5) -> Path:
    """``n`` prompts ``p0 ... p{n-1}``, each ``words`` words long and distinct."""
    rows = [{"query_id": f"q{i}", "prompt": " ".join([f"w{i}"] * words)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_cli(*args: object) -> tuple[int, str]:
    """``mixllm ARGS`` in process: (exit status, output)."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
