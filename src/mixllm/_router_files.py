"""A router's state written to and read from a directory (the format :mod:`mixllm.persist`
describes): ``manifest.json`` holds the format fields and the state's parameters,
``arrays.npz`` its arrays. Nothing here builds a router, so :mod:`mixllm.router` and
:mod:`mixllm.persist` both use it without importing each other."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import PersistError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "READABLE_VERSIONS", "read_state", "write_state"]

FORMAT_NAME = "mixllm-router"
FORMAT_VERSION = 3
#: Versions this mixllm reads: 2 (the same files, written before the router's state API) and 3.
READABLE_VERSIONS = (2, 3)
#: The manifest's own fields; every other key is a parameter of the router's state.
FORMAT_FIELDS = ("format", "format_version", "mixllm_version", "arrays_sha256")
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def _package_version() -> str:
    try:
        return version("mixllm")
    except PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


def sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_state(path: Path, params: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> Path:
    """Write a router's state to the directory ``path`` (created if needed); returns ``path``.

    The arrays go to a synced temporary file renamed into place before the manifest that names
    their checksum, so a crash leaves the old router or the new one, never a mix."""
    clash = sorted(set(params) & set(FORMAT_FIELDS))
    if clash:
        raise PersistError(f"state parameters {clash} clash with the manifest's format fields")
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, suffix=".npz", delete=False) as tmp:
        # (cast: numpy's stub lets ** match its allow_pickle flag)
        cast(Any, np.savez)(tmp, allow_pickle=False, **arrays)
        tmp.flush()
        os.fsync(tmp.fileno())  # on disk before the manifest names it (a gateway checkpoint)
    tmp_path = Path(tmp.name)
    tmp_path.chmod(0o644)  # NamedTemporaryFile creates 0600; a saved router is shareable
    manifest: dict[str, Any] = {
        **params,
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "mixllm_version": _package_version(),
        "arrays_sha256": sha256(tmp_path),
    }
    os.replace(tmp_path, path / ARRAYS)
    _write_durably(path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def _write_durably(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file, sync it, rename it over ``path``, sync the folder:
    after a crash or power loss ``path`` holds the old text or the new, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if os.name == "posix":  # the rename itself is durable once its folder is synced
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.is_file():
        raise PersistError(f"{path}: no {MANIFEST}; expected a directory written by `mixllm fit`")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PersistError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise PersistError(f"{file}: not a mixllm router manifest (format != {FORMAT_NAME!r})")
    found = manifest.get("format_version")
    if isinstance(found, bool) or found not in READABLE_VERSIONS:
        raise PersistError(
            f"{file}: format_version {found!r} is not supported; this mixllm reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (re-run `mixllm fit` or upgrade mixllm)"
        )
    return manifest


def read_state(path: Path) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """The state parameters and arrays in the router directory ``path``, after checking its
    format, version and checksum (:class:`~mixllm.errors.PersistError` otherwise). Arrays are
    read without pickle, so no code runs."""
    manifest = _read_manifest(path)
    arrays_file = path / ARRAYS
    if not arrays_file.is_file():
        raise PersistError(f"{path}: missing {ARRAYS}")
    if sha256(arrays_file) != manifest.get("arrays_sha256"):
        raise PersistError(
            f"{arrays_file}: checksum does not match the manifest; the file was changed or damaged"
        )
    try:
        with np.load(arrays_file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise PersistError(f"{arrays_file}: unreadable ({type(exc).__name__}: {exc})") from None
    params = {k: v for k, v in manifest.items() if k not in FORMAT_FIELDS}
    return params, arrays
