from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mixllm.embed import CachedEmbedder, HashingEmbedder, embedder_spec
from mixllm.errors import ConfigError
from tests.embed.conftest import CountingEmbedder


def test_memory_hit_skips_the_inner_embedder(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, cache_dir=tmp_path)
    first = cached.embed(["a", "b"])
    again = cached.embed(["b", "a"])
    assert inner.calls == [["a", "b"]]
    np.testing.assert_array_equal(again, first[::-1])
    assert cached.stats == {"memory_hits": 2, "disk_hits": 0, "inner_texts": 2}


def test_only_misses_reach_the_inner_embedder_in_one_call(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, cache_dir=tmp_path)
    cached.embed(["a", "b"])
    out = cached.embed(["c", "a", "d", "c", "b"])
    assert inner.calls == [["a", "b"], ["c", "d"]]
    np.testing.assert_array_equal(out, inner.embed(["c", "a", "d", "c", "b"]))


def test_vectors_persist_across_instances(tmp_path: Path) -> None:
    first = CachedEmbedder(CountingEmbedder(), cache_dir=tmp_path).embed(["x", "y"])
    inner = CountingEmbedder()
    second = CachedEmbedder(inner, cache_dir=tmp_path)
    np.testing.assert_array_equal(second.embed(["y", "x"]), first[::-1])
    assert inner.calls == []
    assert second.stats["disk_hits"] == 2


def test_embedders_with_different_names_do_not_collide(tmp_path: Path) -> None:
    one = CachedEmbedder(CountingEmbedder("one"), cache_dir=tmp_path)
    two_inner = CountingEmbedder("two", salt="other model: ")
    two = CachedEmbedder(two_inner, cache_dir=tmp_path)
    a = one.embed(["same text"])
    b = two.embed(["same text"])
    assert two_inner.calls == [["same text"]]
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(
        CachedEmbedder(CountingEmbedder("one"), cache_dir=tmp_path).embed(["same text"]), a
    )


def test_returned_arrays_are_copies(tmp_path: Path) -> None:
    cached = CachedEmbedder(CountingEmbedder(), cache_dir=tmp_path)
    out = cached.embed(["a"])
    expected = out.copy()
    out[:] = 0.0
    np.testing.assert_array_equal(cached.embed(["a"]), expected)


def test_memory_layer_is_bounded_lru(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, cache_dir=tmp_path, memory_items=2)
    cached.embed(["a", "b"])
    cached.embed(["a"])  # a is now the most recently used
    cached.embed(["c"])  # evicts b
    cached.embed(["a", "c", "b"])
    assert cached.stats["memory_hits"] == 1 + 2
    assert cached.stats["disk_hits"] == 1
    assert inner.texts_embedded == 3


def test_without_memory_every_hit_comes_from_disk(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, cache_dir=tmp_path, memory_items=0)
    cached.embed(["a"])
    cached.embed(["a"])
    assert cached.stats == {"memory_hits": 0, "disk_hits": 1, "inner_texts": 1}
    cached.clear_memory()


def test_clear_memory_falls_back_to_disk(tmp_path: Path) -> None:
    cached = CachedEmbedder(CountingEmbedder(), cache_dir=tmp_path)
    cached.embed(["a"])
    cached.clear_memory()
    cached.embed(["a"])
    assert cached.stats["disk_hits"] == 1


def test_default_location_follows_the_environment(cache_dir: Path, tmp_path: Path) -> None:
    cached = CachedEmbedder(CountingEmbedder())
    cached.embed(["a"])
    assert cached.db_path.parent == cache_dir / "embeddings"
    assert cached.db_path.is_file()
    other = CachedEmbedder(CountingEmbedder(), environ={"MIXLLM_CACHE_DIR": str(tmp_path / "e")})
    assert other.db_path == tmp_path / "e" / "embeddings" / "embeddings-v1.sqlite"
    xdg = CachedEmbedder(CountingEmbedder(), environ={"XDG_CACHE_HOME": str(tmp_path / "x")})
    assert xdg.db_path.parent == tmp_path / "x" / "mixllm" / "embeddings"


def test_uses_sqlite_wal(tmp_path: Path) -> None:
    cached = CachedEmbedder(CountingEmbedder(), cache_dir=tmp_path)
    cached.embed(["a"])
    db = sqlite3.connect(cached.db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM vectors").fetchone()[0] == 1
    finally:
        db.close()


def test_a_damaged_row_is_recomputed(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, cache_dir=tmp_path, memory_items=0)
    good = cached.embed(["a"])
    db = sqlite3.connect(cached.db_path)
    try:
        with db:
            db.execute("UPDATE vectors SET vec = ?", (b"\x00" * 7,))
    finally:
        db.close()
    np.testing.assert_array_equal(cached.embed(["a"]), good)
    assert inner.texts_embedded == 2
    np.testing.assert_array_equal(cached.embed(["a"]), good)
    assert inner.texts_embedded == 2


def test_name_dim_and_spec_are_the_inner_ones(tmp_path: Path) -> None:
    cached = CachedEmbedder(HashingEmbedder(32), cache_dir=tmp_path)
    assert (cached.name, cached.dim, cached.spec) == ("hashing-32", 32, "hashing:32")
    no_spec = CachedEmbedder(CountingEmbedder("fake"), cache_dir=tmp_path)
    assert getattr(no_spec, "spec", None) is None
    with pytest.raises(ConfigError, match=r"'fake' .*has no spec"):
        embedder_spec(no_spec)


def test_inner_returning_the_wrong_shape_is_an_error(tmp_path: Path) -> None:
    class Broken(CountingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            return super().embed(list(texts)[:1])

    with pytest.raises(ConfigError, match=r"returned shape \(1, 16\) for 2 texts"):
        CachedEmbedder(Broken(), cache_dir=tmp_path).embed(["a", "b"])


def test_rejects_negative_memory_items(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="memory_items"):
        CachedEmbedder(CountingEmbedder(), cache_dir=tmp_path, memory_items=-1)


def test_threads_share_one_instance(tmp_path: Path) -> None:
    cached = CachedEmbedder(CountingEmbedder(), cache_dir=tmp_path, memory_items=50)
    texts = [f"text {i}" for i in range(200)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for start in range(0, 200, 20):
                chunk = texts[(start + offset) % 200 :][:20]
                np.testing.assert_array_equal(cached.embed(chunk), HashingEmbedder(16).embed(chunk))
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


WRITER = """
import sys
import numpy as np
from pathlib import Path
from mixllm.embed import CachedEmbedder, HashingEmbedder, embedder_spec
folder, worker = Path(sys.argv[1]), int(sys.argv[2])
cached = CachedEmbedder(HashingEmbedder(16), cache_dir=folder, memory_items=0)
for round_ in range(30):
    texts = [f"text {(worker * 20 + round_ * 2 + i) % 60}" for i in range(10)]
    assert np.array_equal(cached.embed(texts), HashingEmbedder(16).embed(texts))
"""


def test_processes_write_the_same_file_at_once(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(w)], stderr=subprocess.PIPE
        )
        for w in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    inner = CountingEmbedder("hashing-16")
    cached = CachedEmbedder(inner, cache_dir=tmp_path)
    texts = [f"text {i}" for i in range(60)]
    np.testing.assert_array_equal(cached.embed(texts), HashingEmbedder(16).embed(texts))
    assert inner.calls == []


def test_close_and_reopen(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    with CachedEmbedder(inner, cache_dir=tmp_path, memory_items=0) as cached:
        first = cached.embed(["a"])
    cached.close()  # closing twice is fine
    np.testing.assert_array_equal(cached.embed(["a"]), first)  # reopens the file
    assert inner.texts_embedded == 1
    cached.close()
