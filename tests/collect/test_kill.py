"""kill -9 in the middle of a collection: the rerun completes it without asking twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from mixllm.serve.run import serve_in_thread
from tests.collect.conftest import Upstream, pool_file, prompts_file, read_jsonl


def complete_lines(path: Path) -> list[dict[str, object]]:
    """The records of the lines that were whole (ended by a line break) at this moment."""
    data = path.read_bytes() if path.exists() else b""
    return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]


def test_kill_9_then_rerun_writes_every_pair_once_and_asks_nothing_twice(tmp_path: Path) -> None:
    up = Upstream(delay_s=0.05)  # slow enough to be killed mid-run
    n = 24
    prompts = prompts_file(tmp_path / "p.jsonl", n)
    out = tmp_path / "o.jsonl"
    log = tmp_path / "collect.log"
    with serve_in_thread(up.app) as base:
        pool = pool_file(tmp_path / "pool.toml", base, judge=True)
        command = [
            sys.executable, "-c", "from mixllm.cli import main; main()", "collect", str(prompts),
            "--config", str(pool), "--out", str(out), "--judge", "judge", "--concurrency", "3",
        ]  # fmt: skip
        with log.open("wb") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while len(complete_lines(out)) < 8:  # bounded in time
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no rows after 60 s:\n" + log.read_text()
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        before_rows = {(r["query_id"], r["llm"]) for r in complete_lines(out)}
        answers = out.with_name("o.jsonl.answers.jsonl")
        before_answers = {(r["query_id"], r["llm"]) for r in complete_lines(answers)}
        judged = out.with_name("o.jsonl.judge.jsonl")
        before_judged = {(r["query_id"], r["llm"]) for r in complete_lines(judged)}
        assert before_rows <= before_answers and len(before_rows) < 2 * n

        rerun = subprocess.run(command, capture_output=True, timeout=120, check=False)
        assert rerun.returncode == 0, rerun.stdout.decode() + rerun.stderr.decode()

    rows = read_jsonl(out)  # every line is valid JSON
    keys = [(r["query_id"], r["llm"]) for r in rows]
    assert sorted(keys) == sorted((f"q{i}", m) for i in range(n) for m in ("small", "big"))
    prompt_of = {f"q{i}": " ".join([f"w{i}"] * 5) for i in range(n)}
    for qid, llm in before_answers:  # an answer received before the kill is never asked again
        assert up.seen[(llm, prompt_of[qid])] == 1, (qid, llm)
    judge_asks = {
        pair: count
        for (model, text), count in up.seen.items()
        if model == "judge"
        for pair in before_judged
        if _judges(text, *pair, prompt_of)
    }
    for pair in before_judged:  # a judgement finished before the kill is not asked again
        assert judge_asks[pair] == 1, pair
    assert {r["quality"] for r in rows} == {6 / 9}
    # the spend is counted once per answer and judgement across the two runs
    assert len(read_jsonl(out.with_name("o.jsonl.answers.jsonl"))) == 2 * n


def _judges(text: str, qid: str, llm: str, prompt_of: dict[str, str]) -> bool:
    """Whether the judge prompt ``text`` is about ``llm``'s answer to ``qid``."""
    answer = f"{llm} answer 5"
    return f"\n{prompt_of[qid]}\n" in text and f"\n{answer}\n" in text


def test_ctrl_c_stops_starting_calls_and_a_rerun_continues(tmp_path: Path) -> None:
    up = Upstream(delay_s=0.1)
    prompts = prompts_file(tmp_path / "p.jsonl", 20)
    out = tmp_path / "o.jsonl"
    with serve_in_thread(up.app) as base:
        pool = pool_file(tmp_path / "pool.toml", base)
        command = [
            sys.executable, "-c", "from mixllm.cli import main; main()", "collect", str(prompts),
            "--config", str(pool), "--out", str(out), "--concurrency", "2",
        ]  # fmt: skip
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while len(complete_lines(out)) < 4:  # bounded in time
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        assert proc.returncode == 130, stderr.decode()
        assert "stopping: no new calls" in stderr.decode()
        text = " ".join(stdout.decode().split())
        written = len(read_jsonl(out))
        assert f"interrupted: {40 - written} pairs left" in text
        assert written == len(read_jsonl(out.with_name("o.jsonl.answers.jsonl"))) < 40
        rerun = subprocess.run(command, capture_output=True, timeout=120, check=False)
        assert rerun.returncode == 0, rerun.stderr.decode()
    assert len(read_jsonl(out)) == 40
    assert set(up.seen.values()) == {1}  # the calls in flight finished: none asked twice
