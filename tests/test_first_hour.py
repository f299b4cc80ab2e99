"""What a new user runs into in the first hour, through the ``mixllm`` command: data found
without MIXLLM_DATA_DIR, bad data files ending in one line and exit status 2, short LLM names,
a quick ``simulate`` by default, and the package's version."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import mixllm
from mixllm.cli import cli
from mixllm.data import Dataset, Outcome, load_dataset, make_routing_dataset, write_longform
from mixllm.errors import DataError, UnknownLLMError
from mixllm.router import Router


def run(*args: object) -> tuple[int, str]:
    """Exit status and output (stdout and stderr) of ``mixllm ARGS``; a Python exception other
    than an exit is a failure (what a user would see as a traceback)."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_a_binary_data_file_is_one_line_and_status_2(tmp_path: Path) -> None:
    """The real command in a subprocess: no traceback, one line naming the file and where."""
    garbage = bytes(range(256)) * 8
    for name in ("outcomes.csv", "outcomes.jsonl", "tasks.json"):
        path = tmp_path / name
        path.write_bytes(b"query_id,prompt\n" + garbage)  # byte 10 is a line break
        result = subprocess.run(
            [sys.executable, "-c", "from mixllm.cli import main; main()", "evaluate", str(path),
             "--report", str(tmp_path / "r")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{path}: not UTF-8 text (line 3, byte 144 is 0x80)" in lines[0], lines[0]
    code, out = run("fit", path, "--out", tmp_path / "r2")  # the same through fit
    assert code == 2 and "not UTF-8 text" in out, out


def test_a_cut_off_json_line_names_file_and_line(tmp_path: Path) -> None:
    rows = [
        {"query_id": f"q{i}", "prompt": f"p{i}", "llm": m, "quality": 1.0, "cost_usd": 0.001}
        for i in range(3)
        for m in ("a", "b")
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path = tmp_path / "cut.jsonl"
    path.write_text(text[: text.rindex("cost_usd")])  # the download stopped mid-line
    code, out = run("evaluate", path, "--report", tmp_path / "r")
    assert code == 2, out
    assert f"{path} line 6: invalid JSON at column " in out, out
    routerdc = tmp_path / "tasks.json"  # a RouterDC task file cut off the same way
    routerdc.write_text('[{"question": "2+2?", "scores": {"a": 1.0}},\n {"question": "3+')
    code, out = run("evaluate", routerdc, "--report", tmp_path / "r")
    assert code == 2 and f"{routerdc}: invalid JSON at line 2, column 15" in out, out


def test_data_without_any_quality_label_is_refused(tmp_path: Path) -> None:
    """Not routed all to the cheapest LLM with a meaningless report: refused, saying why."""
    rows = [
        {"query_id": f"q{i}", "prompt": f"question {i}", "llm": m, "cost_usd": c}
        for i in range(30)
        for m, c in (("small", 0.0001), ("big", 0.01))
    ]
    path = tmp_path / "unlabelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for args in (
        ("evaluate", path, "--report", tmp_path / "r"),
        ("fit", path, "--out", tmp_path / "m"),
    ):
        code, out = run(*args)
        assert code == 2, out
        assert "unlabelled: no quality labels at all (30 queries x 2 LLMs" in out, out
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()
    with pytest.raises(DataError, match="no quality labels at all"):  # the library too
        Router("knn", embedder="hashing").fit(load_dataset(path))
    rows[0]["quality"] = 1.0  # one label is enough to be routing data
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_dataset(path).require_quality() is not None


def test_named_sets_without_the_variable(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a checkout with the data beside it (../shared/data), as the README's commands run."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data_dir, target_is_directory=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.delenv("MIXLLM_DATA_DIR", raising=False)
    out = tmp_path / "prompts.jsonl"
    code, said = run("data", "prompts", "routellm-gsm8k", "--out", out, "--sample", 5)
    assert code == 0, said
    assert len(out.read_text().splitlines()) == 5
    monkeypatch.chdir(tmp_path)  # nothing in ./data, ../data or ../shared/data from here
    code, said = run("data", "prompts", "routellm-gsm8k", "--out", out)
    assert code == 2 and "MIXLLM_DATA_DIR is unset and none of" in said, said


def test_short_llm_names_resolve_once_everywhere() -> None:
    rows = [
        Outcome(f"q{i}", f"p{i}", m, 1.0, 0.001)
        for i in range(3)
        for m in ("mistralai/mixtral-8x7b-chat", "meta/llama-2-70b-chat", "acme/llama-2-70b-chat")
    ]
    ds = Dataset.from_outcomes(rows)
    assert ds.llm_index("mixtral-8x7b-chat") == ds.llm_index("mistralai/mixtral-8x7b-chat")
    assert ds.llm("mixtral-8x7b-chat").name == "mistralai/mixtral-8x7b-chat"
    assert ds.select_llms(["mixtral-8x7b-chat"]).llms == ("mistralai/mixtral-8x7b-chat",)
    with pytest.raises(UnknownLLMError, match=r"ambiguous LLM name 'llama-2-70b-chat': \["):
        ds.llm_index("llama-2-70b-chat")
    with pytest.raises(UnknownLLMError, match="unknown LLM 'gpt-5'"):
        ds.llm_index("gpt-5")
    single = mixllm.Router("single:mixtral-8x7b-chat", embedder="hashing").fit(ds)
    assert single.route("p1").llm == "mistralai/mixtral-8x7b-chat"
    router = mixllm.Router("knn", embedder="hashing").fit(ds)
    chosen = router.route("p1", candidates=["mixtral-8x7b-chat"])
    assert chosen.llm == "mistralai/mixtral-8x7b-chat"
    assert list(chosen.scores) == ["mistralai/mixtral-8x7b-chat"]
    with pytest.raises(UnknownLLMError, match="ambiguous LLM name 'llama-2-70b-chat'"):
        router.route("p1", candidates=["llama-2-70b-chat"])
    with pytest.raises(UnknownLLMError, match=r"unknown candidate LLMs \['gpt-5', 'gpt-6'\]"):
        router.route("p1", candidates=["mixtral-8x7b-chat", "gpt-5", "gpt-6"])


def test_simulate_is_one_seed_by_default_and_says_what_more_takes(tmp_path: Path) -> None:
    """``--newcomer`` by its short name; one seed unless asked, with the time more would take."""
    seeds = next(p for p in cli.commands["simulate"].params if p.name == "seeds")
    assert seeds.default == "0"
    data = make_routing_dataset(n_queries=160, n_llms=3, n_topics=2, seed=0)  # org/name LLMs
    path = tmp_path / "pool.jsonl"
    write_longform(data, path)
    short = data.llms[1].split("/")[1]
    args = ["--embedder", "hashing", "--newcomer", short, "--join-at", 40, "--window", 20]
    code, out = run("simulate", "pool", "--data", path, "--report", tmp_path / "sim", *args)
    assert code == 0, out
    report = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert report["newcomer"] == data.llms[1] and report["seeds"] == [0]
    assert "one seed took" in out and "--seeds 0,1,2,3,4 gives them in about" in out, out


def test_version() -> None:
    assert mixllm.__version__ == importlib.metadata.version("mixllm")
    code, out = run("--version")
    assert code == 0 and mixllm.__version__ in out
