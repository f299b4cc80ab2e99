"""Save and load a fitted :class:`~mixllm.router.Router` as a versioned directory, never pickle.

Layout of a router directory::

    manifest.json   format name and version, predictor kind + parameters, embedder spec,
                    default λ, α, β, τ, LLMs with prices, the target and its calibration
                    (if the router was fitted with one), and the SHA-256 of arrays.npz
    arrays.npz      the predictor's learned arrays (loaded with allow_pickle=False), and the
                    ids of recent decisions with whether their feedback was applied (so a
                    restored router applies each feedback once, as before the restart)

The manifest is the router's :meth:`~mixllm.router.Router.get_state` parameters plus the format
fields (``format``, ``format_version``, ``mixllm_version``, ``arrays_sha256``); ``arrays.npz``
holds its arrays. Version 3 is written since routers have that state API; version 2 directories
(the same files) load unchanged. Version 2 added online learning (the MixLLM predictor's
``online`` part) and a decision ledger (ignored since learning became a pure update); version 1
directories must be re-created with ``mixllm fit``. The target, reference, folds and
calibration keys are optional: a manifest without them (written before targets existed) loads
as a router without a calibration.

A router file may come from someone else, so loading checks the format version and the checksum
before anything is built from it, and reads arrays only (no code runs on load).
"""

from __future__ import annotations

from pathlib import Path

from mixllm._router_files import FORMAT_NAME, FORMAT_VERSION, write_state
from mixllm._router_files import sha256 as _sha256  # noqa: F401 (tests re-sign damaged files)
from mixllm.policy import LoadTracker
from mixllm.router import Router

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_router", "save_router"]


def save_router(router: Router, path: Path) -> Path:
    """Write ``router`` (fitted) to the directory ``path``; returns ``path``."""
    return write_state(Path(path), *router.get_state())


def load_router(
    path: Path, *, embedding_cache: bool = True, load_tracker: LoadTracker | None = None
) -> Router:
    """Read a router directory written by :func:`save_router`, verifying version and checksum;
    its embedder with the embedding cache or not, its waits from ``load_tracker``."""
    return Router.load(path, embedding_cache=embedding_cache, load_tracker=load_tracker)
