"""A :class:`~mixllm.router.Router`'s settings and state: their checks, and the state as
JSON-able parameters plus named arrays (what :mod:`mixllm.persist` writes), built and read back.

The parameters are the manifest of a router directory without its format fields: the predictor's
kind and parameters, the embedder spec, the settings (λ, α, β, τ, ...), the target and its
calibration, the LLMs with their prices. The arrays are the predictor's. (States written before
learning became a pure update also hold a decision ledger, under :data:`LEDGER`, and
``max_pending``: both are ignored when read.)
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from mixllm._router_files import read_state, write_state
from mixllm.embed import Embedder, embedder_spec, make_embedder
from mixllm.errors import ConfigError, PersistError
from mixllm.policy import LoadTracker, Predictor, predictor_from_state
from mixllm.policy.calibration import DEFAULT_FOLDS, Calibration
from mixllm.policy.targets import Target
from mixllm.types import LLM

__all__ = [
    "LEDGER",
    "PARAMS",
    "PENALTY_SCALES",
    "RouterParts",
    "RouterStateMixin",
    "check_lam",
    "check_settings",
    "parse_state",
    "state_of",
]

#: How the latency penalty is spread over queries (see :class:`~mixllm.router.Router`).
PENALTY_SCALES = ("flat", "service")
#: Prefix of the decision ledger's arrays in states written before learning was a pure update.
LEDGER = "router.ledger."
#: The parameters :meth:`RouterStateMixin.get_params` reports and ``set_params`` takes.
PARAMS = (
    "predictor", "embedder", "lam", "alpha", "beta", "tau_s", "penalty_scale", "load_tracker",
    "seed", "target", "reference", "folds",
)  # fmt: skip
R = TypeVar("R", bound="RouterStateMixin")


def check_lam(lam: float) -> None:
    """:class:`~mixllm.errors.ConfigError` unless ``lam`` is a finite number >= 0."""
    if not np.isfinite(lam) or lam < 0:
        raise ConfigError(f"lam={lam!r}; expected a finite number >= 0 (quality points per USD)")


def _number(name: str, value: object, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{name}={value!r}; expected a number {rule}")
    return float(value)


def check_settings(settings: Mapping[str, Any]) -> None:
    """Check the router settings among ``settings`` (the others are not looked at):
    ``lam`` finite >= 0, ``alpha`` and ``beta`` >= 0, ``tau_s`` > 0 (``inf``: no limit),
    ``penalty_scale`` one of :data:`PENALTY_SCALES`.

    >>> check_settings({"alpha": -1})
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: alpha=-1; expected a number >= 0
    """
    if "lam" in settings:
        check_lam(_number("lam", settings["lam"], ">= 0 (quality points per USD)"))
    for name in ("alpha", "beta"):
        if name in settings and not _number(name, settings[name], ">= 0") >= 0:
            raise ConfigError(f"{name}={settings[name]!r}; expected a number >= 0")
    if "tau_s" in settings and not _number("tau_s", settings["tau_s"], "> 0 (seconds)") > 0:
        raise ConfigError(
            f"tau_s={settings['tau_s']!r}; expected a number > 0 (seconds; inf: none)"
        )
    if "penalty_scale" in settings and settings["penalty_scale"] not in PENALTY_SCALES:
        raise ConfigError(
            f"penalty_scale={settings['penalty_scale']!r}; expected one of {PENALTY_SCALES}"
        )


def state_of(
    predictor: Predictor,
    embedder: Embedder,
    prices: Mapping[str, LLM],
    settings: Mapping[str, Any],
    calibration: Calibration | None,
) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """The state of a fitted router from its parts (``settings``: its :meth:`get_params`); the
    arrays are copies, so the state stays as it was when the router changes."""
    pred_params, pred_arrays = predictor.get_state()
    if any(k.startswith(LEDGER) for k in pred_arrays):
        raise PersistError(f"predictor array names may not start with {LEDGER!r}")
    arrays = {k: np.array(v, copy=True) for k, v in pred_arrays.items()}
    target: Target | None = settings["target"]
    tau = float(settings["tau_s"])
    params: dict[str, Any] = {
        "predictor": {"kind": predictor.name, "params": copy.deepcopy(pred_params)},
        "embedder": embedder_spec(embedder),
        "lam": float(settings["lam"]),
        "alpha": float(settings["alpha"]),
        "beta": float(settings["beta"]),
        "tau_s": None if math.isinf(tau) else tau,
        "penalty_scale": settings["penalty_scale"],
        "seed": int(settings["seed"]),
        "target": None if target is None else target.to_dict(),
        "reference": settings["reference"],
        "folds": int(settings["folds"]),
        "calibration": None if calibration is None else calibration.to_dict(),
        "llms": [
            {
                "name": m,
                "price_in_per_mtok": prices[m].price_in_per_mtok,
                "price_out_per_mtok": prices[m].price_out_per_mtok,
            }
            for m in predictor.llms_
        ],
    }
    return params, arrays


@dataclass(frozen=True)
class RouterParts:
    """What a router is built from, read from its state by :func:`parse_state`."""

    predictor: Predictor
    embedder: str
    settings: dict[str, Any]  # the Router's keyword arguments
    calibration: Calibration | None
    prices: dict[str, LLM]


def parse_state(params: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> RouterParts:
    """The parts of the router whose state is ``params`` and ``arrays``. Keys added after the
    first saved routers (``alpha``, ``beta``, ``penalty_scale``, ``target``, ``reference``,
    ``folds``, ``calibration``) may be absent: they get the defaults those routers had. Raises
    :class:`~mixllm.errors.PersistError` naming what is malformed."""
    try:
        predictor_arrays = {k: v for k, v in arrays.items() if not k.startswith(LEDGER)}
        pred = params["predictor"]
        predictor = predictor_from_state(pred["kind"], pred["params"], predictor_arrays)
        prices = {
            m["name"]: LLM(m["name"], m["price_in_per_mtok"], m["price_out_per_mtok"])
            for m in params["llms"]
        }
        tau, target = params.get("tau_s"), params.get("target")
        calibration = params.get("calibration")
        settings: dict[str, Any] = {
            "lam": params["lam"],
            "alpha": params.get("alpha", 0.0),
            "beta": params.get("beta", 0.0),
            "tau_s": math.inf if tau is None else float(tau),
            "penalty_scale": params.get("penalty_scale", "flat"),  # absent in older files: flat
            "seed": int(params["seed"]),
            "target": None if target is None else Target.from_dict(target),
            "reference": params.get("reference"),
            "folds": int(params.get("folds", DEFAULT_FOLDS)),
        }
        check_settings(settings)
        embedder = params["embedder"]
        if not isinstance(embedder, str):
            raise TypeError(f"embedder={embedder!r}; expected a spec string")
        return RouterParts(
            predictor=predictor,
            embedder=embedder,
            settings=settings,
            calibration=None if calibration is None else Calibration.from_dict(calibration),
            prices=prices,
        )
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise PersistError(f"malformed router state ({type(exc).__name__}: {exc})") from None


class RouterStateMixin:
    """The parameters and the state of a :class:`~mixllm.router.Router` (its base class):
    sklearn-style ``get_params``/``set_params``, ``get_state``/``from_state``, ``save``/``load``.
    """

    _lock: threading.RLock
    embedder_: Embedder
    predictor_: Predictor
    prices_: dict[str, LLM]
    calibration_: Calibration | None

    def _fitted(self) -> Predictor:  # the Router's: its predictor, or NotFittedError
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """The router's parameters (its constructor's arguments, as they are now)."""
        with self._lock:
            return {name: getattr(self, name) for name in PARAMS}

    def set_params(self: R, **params: Any) -> R:
        """Change parameters (all or none, checked as the constructor checks them); returns
        ``self``. ``lam``, ``alpha``, ``beta``, ``tau_s``, ``penalty_scale`` and ``load_tracker``
        apply to the next decision; ``predictor``, ``embedder``, ``target`` and the others to the
        next :meth:`fit`."""
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise ConfigError(
                f"unknown Router parameter {', '.join(map(repr, unknown))}; expected one of "
                f"{', '.join(PARAMS)}"
            )
        check_settings(params)
        with self._lock:
            for name, value in params.items():
                setattr(self, name, value)
        return self

    @property
    def prices(self) -> Mapping[str, LLM]:
        """The LLMs of the pool with their prices, by name (a read-only copy)."""
        self._fitted()
        with self._lock:
            return MappingProxyType(dict(self.prices_))

    def get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """Everything a fitted router is, as JSON-able parameters and named arrays (what
        :meth:`save` writes): one consistent snapshot, taken under the router's lock, that
        later routing or learning does not change. :meth:`from_state` rebuilds the router."""
        with self._lock:
            return state_of(
                self._fitted(), self.embedder_, self.prices_, self.get_params(),
                getattr(self, "calibration_", None),
            )  # fmt: skip

    @classmethod
    def from_state(
        cls: type[R],
        params: Mapping[str, Any],
        arrays: Mapping[str, NDArray[Any]],
        *,
        embedding_cache: bool = True,
        load_tracker: LoadTracker | None = None,
    ) -> R:
        """The fitted router whose :meth:`get_state` gave ``params`` and ``arrays``; its embedder
        with the SQLite embedding cache or not, its waits from ``load_tracker``.
        :class:`~mixllm.errors.PersistError` if the state is malformed."""
        parts = parse_state(params, arrays)
        router: R = cast(Any, cls)(
            parts.predictor, embedder=parts.embedder, load_tracker=load_tracker, **parts.settings
        )
        router.calibration_ = parts.calibration
        router.embedder_ = make_embedder(parts.embedder, cache=embedding_cache)
        router.predictor_, router.prices_ = parts.predictor, parts.prices
        return router

    def save(self, path: str | Path) -> Path:
        """Write this router to directory ``path`` (manifest.json + arrays; no pickle; see
        :mod:`mixllm.persist`)."""
        return write_state(Path(path), *self.get_state())  # the state is taken under the lock

    @classmethod
    def load(
        cls: type[R],
        path: str | Path,
        *,
        embedding_cache: bool = True,
        load_tracker: LoadTracker | None = None,
    ) -> R:
        """Read a router written by :meth:`save` (or ``mixllm fit``). ``embedding_cache=False``
        embeds without the SQLite embedding cache: the fastest decisions on prompts seen once
        (what a gateway routes); ``load_tracker`` is where its waits come from."""
        params, arrays = read_state(Path(path))
        try:
            return cls.from_state(
                params, arrays, embedding_cache=embedding_cache, load_tracker=load_tracker
            )
        except PersistError as exc:
            raise PersistError(f"{path}: {exc}") from None
