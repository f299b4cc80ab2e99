"""Download the full RouterBench table from the Hugging Face Hub, pinned to one commit.

The file lands in the Hugging Face cache (``$HF_HUB_CACHE``, by default
``~/.cache/huggingface/hub``) or in ``cache_dir``; a second call finds it there without network.
``mixllm data fetch routerbench`` calls :func:`fetch_routerbench`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from mixllm.errors import ConfigError, DataError

__all__ = [
    "ROUTERBENCH_FILE",
    "ROUTERBENCH_REPO",
    "ROUTERBENCH_REVISION",
    "Downloader",
    "cached_routerbench",
    "fetch_routerbench",
]

ROUTERBENCH_REPO = "withmartian/routerbench"
#: Commit of 2024-03-27 ("Delete routerbench_rag.pkl"), the latest of the dataset repository;
#: it holds routerbench_0shot.pkl (36,497 rows), routerbench_5shot.pkl and routerbench_raw.pkl.
ROUTERBENCH_REVISION = "784021482c3f320c6619ed4b3bb3b41a21424fcb"
ROUTERBENCH_FILE = "routerbench_0shot.pkl"


class Downloader(Protocol):
    """The signature of ``huggingface_hub.hf_hub_download`` that mixllm uses (a test seam)."""

    def __call__(
        self,
        repo_id: str,
        filename: str,
        *,
        repo_type: str,
        revision: str,
        cache_dir: str | None,
    ) -> str: ...


def _hf_download() -> Downloader:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ConfigError(
            "downloading RouterBench needs the 'huggingface_hub' package; "
            "install it with: pip install 'mixllm[data]'"
        ) from None
    download: Downloader = hf_hub_download
    return download


def _download_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "could not get the file": network, offline mode, missing entry."""
    errors: list[type[BaseException]] = [OSError]
    try:
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError:
        pass
    else:
        errors.append(EntryNotFoundError)
    try:
        import httpx
    except ImportError:
        pass
    else:
        errors.append(httpx.HTTPError)
    return tuple(errors)


def fetch_routerbench(
    *,
    cache_dir: str | Path | None = None,
    revision: str = ROUTERBENCH_REVISION,
    filename: str = ROUTERBENCH_FILE,
    download: Downloader | None = None,
) -> Path:
    """Download ``filename`` of ``withmartian/routerbench`` at ``revision``; return its path.

    Parameters
    ----------
    cache_dir:
        Where to keep the file; default: the Hugging Face cache.
    revision:
        A commit hash; the default pins the version mixllm was tested with.
    filename:
        ``routerbench_0shot.pkl`` (default) or ``routerbench_5shot.pkl``.
    download:
        Replaces ``huggingface_hub.hf_hub_download`` (tests pass a fake).

    Raises
    ------
    DataError
        When the file cannot be downloaded (offline, unknown revision, ...): the message says
        what to download and that ``MIXLLM_DATA_DIR`` can point to local copies.
    """
    fetch = download if download is not None else _hf_download()
    try:
        path = fetch(
            ROUTERBENCH_REPO,
            filename,
            repo_type="dataset",
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except _download_errors() as exc:
        raise DataError(
            f"cannot download {filename!r} from the Hugging Face dataset {ROUTERBENCH_REPO!r} "
            f"(revision {revision}): {type(exc).__name__}: {exc}. Check the network (and that "
            "HF_HUB_OFFLINE is not set), or get the file yourself "
            f"(https://huggingface.co/datasets/{ROUTERBENCH_REPO}) and pass its path, or save "
            "it as .parquet or .csv in $MIXLLM_DATA_DIR/routerbench/ (MIXLLM_DATA_DIR points "
            "to local copies of the data)"
        ) from exc
    return Path(path)


def cached_routerbench(
    *,
    cache_dir: str | Path | None = None,
    revision: str = ROUTERBENCH_REVISION,
    filename: str = ROUTERBENCH_FILE,
) -> Path | None:
    """The path of an earlier :func:`fetch_routerbench` download, or ``None`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(
        ROUTERBENCH_REPO,
        filename,
        cache_dir=None if cache_dir is None else str(cache_dir),
        revision=revision,
        repo_type="dataset",
    )
    return Path(found) if isinstance(found, str) else None
