from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixllm.data.queries import parse_prompt, read_queries
from mixllm.errors import DataError


def test_reads_jsonl_and_csv_with_either_id_field(tmp_path: Path) -> None:
    j = tmp_path / "q.jsonl"
    j.write_text(
        json.dumps({"id": 1, "prompt": "plain", "x": 0})
        + "\n\n"
        + json.dumps({"id": 2, "prompt": "['a', 'b']"})
        + "\n"
    )
    assert read_queries(j) == (["1", "2"], ["plain", "a\nb"])
    c = tmp_path / "q.csv"
    c.write_text("sample_id,prompt\ns1,\"['Question?', 'Answer:']\"\n")
    assert read_queries(c) == (["s1"], ["Question?\nAnswer:"])


def test_parse_prompt_never_evaluates_code() -> None:
    hostile = "[__import__('os').system('echo pwned')]"
    assert parse_prompt(hostile) == hostile


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "q.jsonl",
            '{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n',
            "line 2: duplicate id '1'",
        ),
        ("q.jsonl", '{"prompt": "a"}\n', "line 1: missing id field"),
        ("q.jsonl", '{"id": 1}\n', "line 1: missing or empty field 'prompt'"),
        ("q.jsonl", "{not json\n", "line 1: invalid JSON"),
        ("q.csv", "sample_id,prompt\n", "no queries"),
        ("q.txt", "hello", "unknown queries format '.txt'"),
    ],
)
def test_bad_queries_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_queries(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such queries file"):
        read_queries(tmp_path / "absent.csv")
