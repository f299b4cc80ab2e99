"""LLM Bandit: one router for every quality/cost preference, with identity vectors for LLMs so a
new LLM joins from a few probe outcomes.

Li (2025), "LLM Bandit: Cost-Efficient LLM Generation via Preference-Conditioned Dynamic
Routing", arXiv:2502.02743.

The paper's method: an item-response (IRT) model over prompt embeddings learns, for each LLM,
an *identity vector* such that P(LLM k answers x well) = σ(a(x)·θ_k − d(x)), with a prompt's
discrimination a(x) and difficulty d(x) computed from its embedding; a routing policy
conditioned on the user's preference ω between quality and cost, and on the identity vectors
of the LLMs available, is trained (PPO) to maximise ω·quality − (1 − ω)·normalised cost; a new
LLM is added by answering a small set of discriminative probe prompts (20–50), from which its
identity vector is fitted with the rest of the model frozen, without retraining the policy.

Here:

* the IRT model is the paper's, fitted by maximum a posteriori (L2-regularised logistic loss,
  Adam, full batch) instead of variationally; each LLM keeps a Laplace precision of its
  identity, so feedback updates that identity online (one Newton step per answer, the prompt
  side frozen);
* it is a *predictor*, not a batch policy: the paper's point is one policy for every ω, and
  the policy that maximises the expected ω-weighted reward picks
  argmax ω·P(good) − (1 − ω)·cost/τ, which is the shared choice rule at
  λ = (1 − ω)/(ω·τ) (:meth:`LLMBanditPredictor.preference_lam`; τ the highest mean training
  cost per query). So the harness's λ sweep is the sweep over ω and nothing is refitted per ω.
  The paper's PPO-trained stochastic policy network is left out: the choice is greedy on the
  IRT model's predicted quality and the list-price cost
  (:class:`~mixllm.predict.cost.MeanLengthCostModel`);
* the probe set is chosen from the training prompts by greedy D-optimal design for the
  identity of an unknown LLM (each prompt weighted by p(1 − p) averaged over the known LLMs:
  the prompts on which LLMs are least predictable); :meth:`~LLMBanditPredictor.probe_queries`
  returns it, and :meth:`~LLMBanditPredictor.add_llm` fits the newcomer's identity from its
  outcomes on those (or any) prompts, starting from the population of known identities as
  prior.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError, UnknownLLMError
from mixllm.policy._features import with_bias
from mixllm.policy._irt import fit_identity, fit_irt, probe_rows, sigmoid
from mixllm.policy.state import Arrays, BasePredictor, JSONValue, cost_arrays, restore_cost
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.types import LLM, Prediction, QueryBatch

__all__ = ["LLMBanditPredictor"]

FloatArray = NDArray[np.float64]


class LLMBanditPredictor(BasePredictor):
    """Quality from an IRT model with one identity vector per LLM; cost from list prices.

    Parameters
    ----------
    dim:
        Size of the identity vectors (and of a prompt's discrimination).
    l2:
        Weight of the L2 penalty of the IRT fit.
    max_iter, lr:
        Adam steps and step size of the IRT fit.
    n_probe:
        Size of the probe set chosen for new LLMs.
    seed:
        Initial weights.
    """

    name = "llm-bandit"
    kind: ClassVar[str] = "llm-bandit"
    _param_names: ClassVar[tuple[str, ...]] = ("dim", "l2", "max_iter", "lr", "n_probe", "seed")

    def __init__(
        self,
        dim: int = 8,
        *,
        l2: float = 1e-3,
        max_iter: int = 300,
        lr: float = 0.05,
        n_probe: int = 30,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.l2 = l2
        self.max_iter = max_iter
        self.lr = lr
        self.n_probe = n_probe
        self.seed = seed

    def _check_params(self) -> None:
        for name in ("dim", "max_iter", "n_probe"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"{name}={value!r}; expected an integer ≥ 1")
        if not (isinstance(self.l2, int | float) and self.l2 >= 0):
            raise ConfigError(f"l2={self.l2!r}; expected a number ≥ 0")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ConfigError(f"lr={self.lr!r}; expected a number > 0")

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> LLMBanditPredictor:
        """The IRT model on every logged outcome, the cost model, and the probe set."""
        self._check_params()
        x = with_bias(self._check_train(train, queries))
        quality = np.asarray(train.quality, dtype=np.float64)
        irt = fit_irt(
            x, quality, dim=self.dim, l2=float(self.l2), max_iter=self.max_iter,
            lr=float(self.lr), seed=int(self.seed),
        )  # fmt: skip
        self.w_, self.v_, self.identity_, self.precision_ = irt
        self.cost_model_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        mean_cost = np.nanmean(np.where(np.isfinite(train.cost_usd), train.cost_usd, np.nan), 0)
        finite = mean_cost[np.isfinite(mean_cost)]
        self.cost_scale_ = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        rows = probe_rows(self._phi(x), x @ self.v_, self.identity_, self._prior()[1], self.n_probe)
        self.probe_ids_ = [str(queries.ids[i]) for i in rows]
        self.probe_prompts_ = [str(queries.prompts[i]) for i in rows]
        self.probe_embeddings_ = np.asarray(queries.embeddings, dtype=np.float64)[rows]
        self.probe_tokens_ = np.asarray(queries.prompt_tokens, dtype=np.float64)[rows]
        self.llms_ = train.llms
        return self

    def _input_dim(self) -> int | None:
        return int(self.w_.shape[0]) - 1

    def _phi(self, x: FloatArray) -> FloatArray:
        """A prompt's IRT features: its discrimination a(x) and a constant (the LLM's bias)."""
        return np.hstack([x @ self.w_, np.ones((len(x), 1))])

    def _logits(self, x: FloatArray) -> FloatArray:
        out: FloatArray = self._phi(x) @ self.identity_.T - (x @ self.v_)[:, None]
        return out

    # -- predicting ----------------------------------------------------------------------------
    def predict(self, queries: QueryBatch) -> Prediction:
        """P(good answer) per LLM, list-price cost, and the identity's Laplace standard error
        carried to the probability as uncertainty."""
        x = with_bias(self._check_queries(queries))
        p = sigmoid(self._logits(x))
        phi = self._phi(x)
        cov = np.linalg.inv(self.precision_)
        var = np.einsum("nd,kde,ne->nk", phi, cov, phi)
        cost = self.cost_model_.predict(np.asarray(queries.prompt_tokens, dtype=np.float64))
        return Prediction(
            llms=self.llms_,
            quality=p,
            cost_usd=cost,
            uncertainty=p * (1 - p) * np.sqrt(np.maximum(var, 0.0)),
        )

    def preference_lam(self, omega: float) -> float:
        """The λ at which :func:`~mixllm.policy.choose` takes the paper's action for preference
        ``omega`` (reward ω·quality − (1 − ω)·cost/τ): (1 − ω)/(ω·τ); ω = 1 is quality alone."""
        self._check_fitted()
        if not (isinstance(omega, int | float) and 0 < omega <= 1):
            raise ConfigError(f"omega={omega!r}; expected a preference in (0, 1]")
        return (1.0 - float(omega)) / (float(omega) * self.cost_scale_)

    # -- new LLMs and feedback -----------------------------------------------------------------
    def prior(self) -> tuple[FloatArray, FloatArray]:
        """Mean and precision of the known LLMs' identities: where a new LLM starts."""
        self._check_fitted()
        return self._prior()

    def _prior(self) -> tuple[FloatArray, FloatArray]:
        """Gaussian of the identities: their mean, and twice their covariance plus a little
        isotropic variance (a newcomer is most likely a mix of the known LLMs' skills)."""
        mean = self.identity_.mean(axis=0)
        d = len(mean)
        spread = np.cov(self.identity_.T).reshape(d, d) if len(self.identity_) > 1 else 0.0
        precision = np.asarray(np.linalg.inv(2.0 * spread + 0.05 * np.eye(d)), dtype=np.float64)
        return mean, precision

    def probe_queries(self) -> QueryBatch:
        """The probe prompts (training prompts most informative about a new LLM's identity)."""
        self._check_fitted()
        return QueryBatch(
            ids=tuple(self.probe_ids_),
            prompts=tuple(self.probe_prompts_),
            embeddings=self.probe_embeddings_.astype(np.float32),
            prompt_tokens=self.probe_tokens_.copy(),
        )

    def add_llm(
        self, llm: LLM, seed: Dataset | None = None, queries: QueryBatch | None = None
    ) -> None:
        """A new LLM priced from ``llm``, its identity fitted from its outcomes in ``seed`` (a
        dataset with a column for it, e.g. its answers to :meth:`probe_queries`) with the IRT
        prompt side frozen; without outcomes it is the known LLMs' mean identity."""
        self._check_fitted()
        if llm.name in self.llms_:
            raise ConfigError(f"LLM {llm.name!r} is already in the pool")
        mean, precision = self.prior()
        phi, y = np.zeros((0, len(mean))), np.zeros(0)
        offset = np.zeros(0)
        tokens = np.zeros(0)
        if seed is not None and queries is not None:
            if len(queries) != len(seed):
                raise DataError(f"{len(queries)} seed queries for {len(seed)} seed rows")
            col = seed.llm_index(llm.name)
            x = with_bias(np.asarray(queries.embeddings, dtype=np.float64))
            ok = np.isfinite(seed.quality[:, col])
            phi, y, offset = self._phi(x)[ok], seed.quality[ok, col], (x @ self.v_)[ok]
            tokens = seed.output_tokens[:, col][np.isfinite(seed.output_tokens[:, col])]
        identity, hessian = fit_identity(phi, y, offset, mean, precision)
        self.identity_ = np.vstack([self.identity_, identity])
        self.precision_ = np.concatenate([self.precision_, hessian[None]])
        self.cost_model_.add_llm(llm)
        if tokens.size:
            self.cost_model_.mean_output_tokens_[-1] = float(tokens.mean())
        self.llms_ = (*self.llms_, llm.name)

    def remove_llm(self, name: str) -> None:
        """Forget an LLM; the others keep their identities."""
        j = self._index(name)
        self.identity_ = np.delete(self.identity_, j, axis=0)
        self.precision_ = np.delete(self.precision_, j, axis=0)
        self.cost_model_.remove_llm(j)
        self.llms_ = tuple(m for m in self.llms_ if m != name)

    def learn(
        self,
        embedding: NDArray[Any],
        llm: str,
        *,
        prompt_tokens: float = float("nan"),
        quality: float | None = None,
        cost_usd: float | None = None,
        reward: bool | None = None,
    ) -> None:
        """One answer of ``llm``: a Newton step of its identity on the outcome (a thumbs
        up/down is quality 1/0). The cost comes from list prices, so ``cost_usd`` is unused."""
        j = self._index(llm)
        if quality is None and reward is not None:
            quality = float(bool(reward))
        if quality is None:
            return
        x = with_bias(embedding)
        phi = self._phi(x)[0]
        p = float(sigmoid(self._logits(x))[0, j])
        self.precision_[j] += p * (1 - p) * np.outer(phi, phi)
        self.identity_[j] += np.linalg.solve(self.precision_[j], phi * (float(quality) - p))

    def _index(self, llm: str) -> int:
        self._check_fitted()
        if llm not in self.llms_:
            raise UnknownLLMError(f"unknown LLM {llm!r}; known: {sorted(self.llms_)}")
        return self.llms_.index(llm)

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, object], Arrays]:
        arrays: Arrays = {
            "w": self.w_, "v": self.v_, "identity": self.identity_,
            "precision": self.precision_, "probe_embeddings": self.probe_embeddings_,
            "probe_tokens": self.probe_tokens_, **cost_arrays(self.cost_model_),
        }  # fmt: skip
        params = {
            "cost_scale": self.cost_scale_,
            "probe_ids": self.probe_ids_,
            "probe_prompts": self.probe_prompts_,
        }
        return params, arrays

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        self.cost_scale_ = float(params["cost_scale"])  # type: ignore[arg-type]
        self.probe_ids_ = [str(s) for s in params["probe_ids"]]  # type: ignore[union-attr]
        self.probe_prompts_ = [str(s) for s in params["probe_prompts"]]  # type: ignore[union-attr]
        for name in ("w", "v", "identity", "precision", "probe_embeddings", "probe_tokens"):
            setattr(self, f"{name}_", np.asarray(arrays[name], dtype=np.float64))
        self.cost_model_ = restore_cost(arrays)
