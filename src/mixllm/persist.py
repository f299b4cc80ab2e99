"""Save and load a fitted :class:`~mixllm.router.Router` as a versioned directory, never pickle.

Layout of a router directory::

    manifest.json   format name and version, predictor kind + parameters, embedder spec,
                    default λ, α, β, τ, LLMs with prices, the target and its calibration
                    (if the router was fitted with one), and the SHA-256 of arrays.npz
    arrays.npz      the predictor's learned arrays (loaded with allow_pickle=False), and the
                    ids of recent decisions with whether their feedback was applied (so a
                    restored router applies each feedback once, as before the restart)

Version 2 added online learning (the MixLLM predictor's ``online`` part) and the decision
ledger; version 1 directories must be re-created with ``mixllm fit``. The target, reference,
folds and calibration keys are optional: a manifest without them (written before targets
existed) loads as a router without a calibration.

A router file may come from someone else, so loading checks the format version and the checksum
before anything is built from it, and reads arrays only (no code runs on load).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mixllm._ledger import DecisionLedger
from mixllm.embed import embedder_spec, make_embedder
from mixllm.errors import ConfigError, PersistError
from mixllm.policy import predictor_from_state
from mixllm.policy.calibration import DEFAULT_FOLDS, Calibration
from mixllm.policy.targets import Target
from mixllm.types import LLM

if TYPE_CHECKING:
    from mixllm.router import Router

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_router", "save_router"]

FORMAT_NAME = "mixllm-router"
FORMAT_VERSION = 2
_MANIFEST = "manifest.json"
_ARRAYS = "arrays.npz"
#: Prefix of the router's own arrays in arrays.npz: the decisions that feedback is accepted for.
_LEDGER = "router.ledger."


def _package_version() -> str:
    try:
        return version("mixllm")
    except PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_router(router: Router, path: Path) -> Path:
    """Write ``router`` (fitted) to the directory ``path``; returns ``path``."""
    predictor = router._fitted()
    params, arrays = predictor.get_state()
    if any(k.startswith(_LEDGER) for k in arrays):
        raise PersistError(f"predictor array names may not start with {_LEDGER!r}")
    with router._lock:
        ids, applied = router._ledger.to_arrays()
    arrays = {**arrays, _LEDGER + "ids": ids, _LEDGER + "applied": applied}
    path.mkdir(parents=True, exist_ok=True)
    # Write arrays to a temporary file first so a crash never leaves a half-written router.
    with tempfile.NamedTemporaryFile(dir=path, suffix=".npz", delete=False) as tmp:
        # (cast: numpy's stub lets ** match its allow_pickle flag)
        cast(Any, np.savez)(tmp, allow_pickle=False, **arrays)
        tmp.flush()
        os.fsync(tmp.fileno())  # on disk before the manifest names it (a gateway checkpoint)
    tmp_path = Path(tmp.name)
    tmp_path.chmod(0o644)  # NamedTemporaryFile creates 0600; a saved router is shareable
    calibration: Calibration | None = getattr(router, "calibration_", None)
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "mixllm_version": _package_version(),
        "predictor": {"kind": predictor.name, "params": params},
        "embedder": embedder_spec(router.embedder_),
        "lam": float(router.lam),
        "alpha": float(router.alpha),
        "beta": float(router.beta),
        "tau_s": None if math.isinf(router.tau_s) else float(router.tau_s),
        "penalty_scale": router.penalty_scale,
        "seed": int(router.seed),
        "max_pending": int(router.max_pending),
        "target": None if router.target is None else router.target.to_dict(),
        "reference": router.reference,
        "folds": int(router.folds),
        "calibration": None if calibration is None else calibration.to_dict(),
        "llms": [
            {
                "name": m,
                "price_in_per_mtok": router.prices_[m].price_in_per_mtok,
                "price_out_per_mtok": router.prices_[m].price_out_per_mtok,
            }
            for m in predictor.llms_
        ],
        "arrays_sha256": _sha256(tmp_path),
    }
    os.replace(tmp_path, path / _ARRAYS)
    _write_durably(path / _MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
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
    file = path / _MANIFEST
    if not file.is_file():
        raise PersistError(f"{path}: no {_MANIFEST}; expected a directory written by `mixllm fit`")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PersistError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise PersistError(f"{file}: not a mixllm router manifest (format != {FORMAT_NAME!r})")
    found = manifest.get("format_version")
    if found != FORMAT_VERSION:
        raise PersistError(
            f"{file}: format_version {found!r} is not supported; this mixllm reads version "
            f"{FORMAT_VERSION} (re-run `mixllm fit` or upgrade mixllm)"
        )
    return manifest


def load_router(path: Path, *, embedding_cache: bool = True) -> Router:
    """Read a router directory written by :func:`save_router`, verifying version and checksum;
    its embedder with the embedding cache or not."""
    from mixllm.router import Router

    manifest = _read_manifest(path)
    arrays_file = path / _ARRAYS
    if not arrays_file.is_file():
        raise PersistError(f"{path}: missing {_ARRAYS}")
    if _sha256(arrays_file) != manifest.get("arrays_sha256"):
        raise PersistError(
            f"{arrays_file}: checksum does not match the manifest; the file was changed or damaged"
        )
    try:
        with np.load(arrays_file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        ledger = {k[len(_LEDGER) :]: arrays.pop(k) for k in list(arrays) if k.startswith(_LEDGER)}
        pred = manifest["predictor"]
        predictor = predictor_from_state(pred["kind"], pred["params"], arrays)
        prices = {
            m["name"]: LLM(m["name"], m["price_in_per_mtok"], m["price_out_per_mtok"])
            for m in manifest["llms"]
        }
        tau = manifest.get("tau_s")
        target, calibration = manifest.get("target"), manifest.get("calibration")
        router = Router(
            predictor,
            embedder=manifest["embedder"],
            lam=manifest["lam"],
            alpha=manifest.get("alpha", 0.0),
            beta=manifest.get("beta", 0.0),
            tau_s=math.inf if tau is None else float(tau),
            penalty_scale=manifest.get("penalty_scale", "flat"),  # absent in older files: flat
            target=None if target is None else Target.from_dict(target),
            reference=manifest.get("reference"),
            folds=int(manifest.get("folds", DEFAULT_FOLDS)),
        )
        router.calibration_ = None if calibration is None else Calibration.from_dict(calibration)
        router.seed = int(manifest["seed"])
        router.max_pending = int(manifest["max_pending"])
        router._ledger = DecisionLedger.from_arrays(ledger.get("ids"), ledger.get("applied"))
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise PersistError(
            f"{path}: malformed router files ({type(exc).__name__}: {exc})"
        ) from None
    embedder = make_embedder(manifest["embedder"], cache=embedding_cache)
    router._set_fitted(embedder, predictor, prices)
    return router
