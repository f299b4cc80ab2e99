from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mixllm.data.hub import ROUTERBENCH_FILE, ROUTERBENCH_REVISION
from mixllm.data.load import data_dir, load_dataset
from mixllm.errors import DataError


def test_data_dir_from_the_environment(tmp_path: Path) -> None:
    assert data_dir({"MIXLLM_DATA_DIR": str(tmp_path)}) == tmp_path
    assert data_dir({"MIXLLM_DATA_DIR": "  "}, cwd=tmp_path) is None
    assert data_dir({}, cwd=tmp_path) is None


def test_data_dir_without_the_variable_looks_beside_the_current_folder(tmp_path: Path) -> None:
    """MIXLLM_DATA_DIR unset: ./data, then ../data, then ../shared/data, the first holding a
    routerbench or routellm folder; the variable wins over all of them."""
    here = tmp_path / "work" / "repo"
    here.mkdir(parents=True)
    (tmp_path / "work" / "shared" / "data" / "routellm").mkdir(parents=True)
    assert data_dir({}, cwd=here) == tmp_path / "work" / "shared" / "data"
    (tmp_path / "work" / "data" / "routerbench").mkdir(parents=True)
    assert data_dir({}, cwd=here) == tmp_path / "work" / "data"
    (here / "data").mkdir()  # a data folder without either set does not count
    assert data_dir({}, cwd=here) == tmp_path / "work" / "data"
    (here / "data" / "routerbench").mkdir()
    assert data_dir({}, cwd=here) == here / "data"
    assert data_dir({"MIXLLM_DATA_DIR": str(tmp_path)}, cwd=here) == tmp_path
    # a named set is looked for where its own folder is
    assert data_dir({}, cwd=here, holding="routellm") == tmp_path / "work" / "shared" / "data"


def test_named_sets_found_beside_the_current_folder(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").symlink_to(data_dir, target_is_directory=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert len(load_dataset("routellm-gsm8k", environ={})) == 1307


def test_named_sets_from_the_data_dir(data_dir: Path, tmp_path: Path) -> None:
    env = {"MIXLLM_DATA_DIR": str(data_dir)}
    rb = load_dataset("routerbench", environ=env, cache_dir=tmp_path)
    assert (len(rb), rb.name) == (2541, "routerbench_0shot_subset")
    assert len(load_dataset("routellm-gsm8k", environ=env)) == 1307
    assert len(load_dataset("routellm-mt-bench", environ=env)) == 72


def hub_cache(root: Path, frame: Any) -> Path:
    snapshot = root / "datasets--withmartian--routerbench" / "snapshots" / ROUTERBENCH_REVISION
    snapshot.mkdir(parents=True)
    frame.to_pickle(snapshot / ROUTERBENCH_FILE)
    return root


def test_routerbench_falls_back_to_the_pinned_download(
    wide: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no data folder around it
    cache = hub_cache(tmp_path / "hf", wide())
    ds = load_dataset("routerbench", environ={}, cache_dir=cache)
    assert ds.llms == ("big", "small")
    with pytest.raises(DataError, match="refusing to read a pickle"):
        load_dataset("routerbench", environ={}, cache_dir=cache, allow_pickle=False)


def test_routerbench_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"run `mixllm data fetch routerbench`.*MIXLLM_DATA_DIR"):
        load_dataset("routerbench", environ={}, cache_dir=tmp_path)


def test_routellm_without_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError, match=r"MIXLLM_DATA_DIR is unset and none of .*'\.\./shared/data'"
    ):
        load_dataset("routellm-mmlu", environ={})
    with pytest.raises(DataError, match=r"routellm-mmlu: no RouteLLM data; set MIXLLM_DATA_DIR"):
        load_dataset("routellm-mmlu", environ={})
    with pytest.raises(DataError, match=r"routellm-gsm8k: no RouteLLM data"):
        load_dataset("routellm-gsm8k", environ={"MIXLLM_DATA_DIR": str(tmp_path)})


def test_data_dir_that_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MIXLLM_DATA_DIR=.*absent is not a directory"):
        load_dataset("routerbench", environ={"MIXLLM_DATA_DIR": str(tmp_path / "absent")})


def test_several_tables_in_the_routerbench_folder(wide: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "routerbench").mkdir()
    wide().to_csv(tmp_path / "routerbench" / "a.csv", index=False)
    wide().to_parquet(tmp_path / "routerbench" / "b.parquet")
    with pytest.raises(DataError, match=r"several data files \['a\.csv', 'b\.parquet'\]"):
        load_dataset("routerbench", environ={"MIXLLM_DATA_DIR": str(tmp_path)})


def test_a_pickle_is_never_read_from_a_folder(wide: Callable[..., Any], tmp_path: Path) -> None:
    wide().to_pickle(tmp_path / "rb.pkl")
    with pytest.raises(DataError, match=r"pickles \['rb\.pkl'\] are not read from a folder"):
        load_dataset(tmp_path)


def test_an_explicit_pickle_path_is_read(wide: Callable[..., Any], tmp_path: Path) -> None:
    wide().to_pickle(tmp_path / "rb.pkl")
    assert len(load_dataset(tmp_path / "rb.pkl")) == 6
    with pytest.raises(DataError, match="refusing to read a pickle"):
        load_dataset(tmp_path / "rb.pkl", allow_pickle=False)


def test_files_dispatch_by_suffix_and_columns(wide: Callable[..., Any], tmp_path: Path) -> None:
    frame = wide()
    frame.to_csv(tmp_path / "wide.csv", index=False)
    frame.to_parquet(tmp_path / "wide.parquet")
    assert load_dataset(tmp_path / "wide.csv").llms == ("big", "small")
    assert load_dataset(str(tmp_path / "wide.parquet")).llms == ("big", "small")
    long_rows = "query_id,prompt,llm,cost_usd,quality\nq,p,m,0.1,1\n"
    (tmp_path / "long.csv").write_text(long_rows)
    (tmp_path / "long.jsonl").write_text('{"id": "q", "prompt": "p", "llm": "m", "cost_usd": 0}\n')
    assert load_dataset(tmp_path / "long.csv").llms == ("m",)
    assert load_dataset(tmp_path / "long.jsonl").llms == ("m",)


def test_a_folder_with_one_table(wide: Callable[..., Any], tmp_path: Path) -> None:
    wide().to_csv(tmp_path / "only.csv", index=False)
    assert load_dataset(tmp_path).name == "only"


def test_unknown_csv_layout_and_empty_csv(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"other\.csv: unknown CSV layout \(columns \['a', 'b'\]\)"):
        load_dataset(tmp_path / "other.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load_dataset(tmp_path / "empty.csv")


def test_unknown_format_names_path_and_formats(tmp_path: Path) -> None:
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(
        DataError, match=r"data\.xlsx: unknown data format '\.xlsx'; expected .*jsonl"
    ):
        load_dataset(tmp_path / "data.xlsx")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.jsonl: no such file or directory; expected"):
        load_dataset(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match=r"routerbenchh: no such file or directory.*routerbench"):
        load_dataset("routerbenchh")


def test_routellm_folders(routellm_dir: Path, tmp_path: Path) -> None:
    assert load_dataset(routellm_dir / "gsm8k").name == "routellm-gsm8k"
    with pytest.raises(DataError, match=r"holds the RouteLLM sets \['mmlu', 'gsm8k', 'mt_bench'\]"):
        load_dataset(routellm_dir)
    shutil.copytree(routellm_dir / "mt_bench", tmp_path / "mine")
    assert len(load_dataset(tmp_path / "mine")) == 72


def test_a_data_root_folder_suggests_named_sets(data_dir: Path) -> None:
    with pytest.raises(DataError, match=r"looks like a data folder: set MIXLLM_DATA_DIR="):
        load_dataset(data_dir)
