from __future__ import annotations

import re
from pathlib import Path

import pytest

from mixllm.data.hub import (
    ROUTERBENCH_FILE,
    ROUTERBENCH_REPO,
    ROUTERBENCH_REVISION,
    cached_routerbench,
    fetch_routerbench,
)
from mixllm.errors import DataError


class FakeDownload:
    """Records its calls; returns a path or raises ``error``."""

    def __init__(self, result: str = "/cache/file.pkl", error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.calls.append((args, kwargs))
        if self.error is not None:
            raise self.error
        return self.result


def test_revision_is_a_pinned_commit() -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", ROUTERBENCH_REVISION)


def test_fetch_downloads_the_pinned_file(tmp_path: Path) -> None:
    fake = FakeDownload()
    path = fetch_routerbench(cache_dir=tmp_path, download=fake)
    assert path == Path("/cache/file.pkl")
    assert fake.calls == [
        (
            ("withmartian/routerbench", "routerbench_0shot.pkl"),  # RouterBench's 0-shot file
            {"repo_type": "dataset", "revision": ROUTERBENCH_REVISION, "cache_dir": str(tmp_path)},
        )
    ]


def test_fetch_passes_revision_and_filename() -> None:
    fake = FakeDownload()
    fetch_routerbench(revision="a" * 40, filename="routerbench_5shot.pkl", download=fake)
    args, kwargs = fake.calls[0]
    assert args[1] == "routerbench_5shot.pkl"
    assert kwargs["revision"] == "a" * 40
    assert kwargs["cache_dir"] is None


def test_offline_is_a_clear_data_error() -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    fake = FakeDownload(error=LocalEntryNotFoundError("cannot find the requested files"))
    with pytest.raises(DataError) as info:
        fetch_routerbench(download=fake)
    message = str(info.value)
    for part in (ROUTERBENCH_REPO, ROUTERBENCH_FILE, ROUTERBENCH_REVISION, "MIXLLM_DATA_DIR"):
        assert part in message
    assert "LocalEntryNotFoundError" in message


def test_connection_errors_are_data_errors() -> None:
    with pytest.raises(DataError, match=r"cannot download 'routerbench_0shot\.pkl'"):
        fetch_routerbench(download=FakeDownload(error=ConnectionError("network unreachable")))


def test_other_errors_are_not_hidden() -> None:
    with pytest.raises(TypeError):
        fetch_routerbench(download=FakeDownload(error=TypeError("bug")))


def test_cached_finds_only_an_earlier_download(tmp_path: Path) -> None:
    assert cached_routerbench(cache_dir=tmp_path) is None
    snapshot = tmp_path / "datasets--withmartian--routerbench" / "snapshots" / ROUTERBENCH_REVISION
    snapshot.mkdir(parents=True)
    (snapshot / ROUTERBENCH_FILE).write_bytes(b"x")
    assert cached_routerbench(cache_dir=tmp_path) == snapshot / ROUTERBENCH_FILE
    assert cached_routerbench(cache_dir=tmp_path, revision="b" * 40) is None
