"""The :class:`Router`: embed the query, predict quality and cost per LLM, choose for a given λ.

The evaluation harness, the CLI and (later) the gateway all route through these methods; there is
no second code path for offline use.
"""

from __future__ import annotations

import copy
import math
import threading
import uuid
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm._decisions import decisions
from mixllm._queries import query_batch
from mixllm._router_state import PENALTY_SCALES, RouterStateMixin, check_lam, check_settings
from mixllm.data.dataset import Dataset
from mixllm.embed import DEFAULT_EMBEDDER, Embedder, make_embedder
from mixllm.errors import ConfigError, NotFittedError, UnknownLLMError
from mixllm.policy import (
    LoadTracker,
    OnlinePredictor,
    Predictor,
    choose_from_scores,
    lambda_grid,
    make_predictor,
    scores,
)
from mixllm.policy.calibration import (
    DEFAULT_FOLDS,
    Calibration,
    calibrate,
    note_routed,
    predict_for_choice,
)
from mixllm.policy.newcomers import check_weight
from mixllm.policy.targets import Target, check_confidence
from mixllm.types import LLM, Decision, Feedback, Prediction, QueryBatch

__all__ = ["PENALTY_SCALES", "Router"]


class Router(RouterStateMixin):
    """Routes each query to the LLM with the best predicted quality − λ × cost.

    Parameters
    ----------
    predictor:
        A predictor object or a registered name (see :func:`mixllm.policy.make_predictor`).
    embedder:
        An :class:`~mixllm.embed.Embedder` or a spec (``static``, ``minilm``, ``hashing``...;
        see :func:`mixllm.embed.make_embedder`). Default :data:`~mixllm.embed.DEFAULT_EMBEDDER`,
        ``static?max_tokens=64&keep=end``: the static model reading each prompt's last 64
        tokens. A spec gets the SQLite embedding cache; pass ``make_embedder(spec,
        cache=False)`` for the fastest decisions on prompts seen once.
    lam:
        Default willingness to pay (quality points per USD); a call may override it.
    alpha:
        Weight of the uncertainty bonus (used by predictors that report uncertainty).
    beta, tau_s:
        Weight of the latency penalty and the waiting time (seconds) past which an LLM is not
        chosen (MixLLM §3.3).
    penalty_scale:
        ``"flat"`` (default): every query pays the same latency penalty (the paper's);
        ``"service"``: a query's penalty grows with how long its predicted answer would hold
        the LLM's slot, relative to that LLM's average request (a long answer pays for the
        queue it builds; see :meth:`~mixllm.policy.LoadTracker.service_weights`).
    load_tracker:
        Where waits come from (a :class:`~mixllm.policy.LoadTracker` that the gateway or the
        simulator feeds); without one every wait is zero.
    target, reference, folds:
        A :class:`~mixllm.policy.targets.Target` (e.g. mean cost at most 25% of the
        reference's) replaces ``lam``: :meth:`fit` cross-fits the predictor in ``folds`` folds,
        keeps the result as ``calibration_`` and sets ``lam`` to the λ that meets the target
        (see :mod:`mixllm.policy.calibration`). ``reference`` names the LLM targets are relative
        to (default: the best by mean quality on the training data).

    Routing, learning and pool changes may be called from several threads: they take one
    lock, so a decision never sees a half-applied update.

    >>> from mixllm.data.dataset import Dataset, Outcome
    >>> rows = [Outcome(f"q{i}", f"task {i % 2}", m, float((i % 2) == (m == "big")), c)
    ...         for i in range(20) for m, c in (("small", 0.001), ("big", 0.01))]
    >>> router = Router("knn", embedder="hashing").fit(Dataset.from_outcomes(rows))
    >>> router.route("task 1", lam=0.0).llm
    'big'
    """

    def __init__(
        self,
        predictor: Predictor | str = "knn",
        *,
        embedder: Embedder | str = DEFAULT_EMBEDDER,
        lam: float = 1.0,
        alpha: float = 0.0,
        beta: float = 0.0,
        tau_s: float = math.inf,
        penalty_scale: str = "flat",
        load_tracker: LoadTracker | None = None,
        seed: int = 0,
        target: Target | None = None,
        reference: str | None = None,
        folds: int = DEFAULT_FOLDS,
    ) -> None:
        check_settings(
            {"lam": lam, "alpha": alpha, "beta": beta, "tau_s": tau_s,
             "penalty_scale": penalty_scale}
        )  # fmt: skip
        self.predictor = predictor
        self.embedder = embedder
        self.lam, self.alpha, self.beta, self.tau_s = lam, alpha, beta, tau_s
        self.penalty_scale = penalty_scale
        self.load_tracker = load_tracker
        self.seed = seed
        self.target, self.reference, self.folds = target, reference, folds
        self._lock = threading.RLock()

    # -- training -----------------------------------------------------------------------------
    def fit(self, dataset: Dataset) -> Router:
        """Train the predictor on ``dataset`` (and calibrate ``target``); returns ``self``.

        When no λ meets the target, :class:`~mixllm.errors.ConfigError` says what is achievable;
        the router is fitted and calibrated all the same (``lam`` unchanged): :meth:`lam_for`
        gives the λ of another target without fitting again."""
        check_lam(self.lam)
        dataset.require_quality("fitting a router")
        emb = self.embedder
        self.embedder_ = make_embedder(emb) if isinstance(emb, str) else emb
        queries = self._queries(
            [str(p) for p in dataset.prompts],
            [str(q) for q in dataset.query_ids],
            prompt_tokens=dataset.prompt_tokens,
        )
        self.calibration_: Calibration | None = None
        if self.target is not None:
            self.calibration_ = calibrate(
                self._new_predictor, dataset, queries, reference=self.reference,
                folds=self.folds, alpha=self.alpha, seed=self.seed,
            )  # fmt: skip
        predictor = self.predictor
        if isinstance(predictor, str):
            predictor = make_predictor(predictor, seed=self.seed)
        self.predictor_ = predictor.fit(dataset, queries)
        self.prices_ = {m: dataset.llm(m) for m in dataset.llms}
        if self.calibration_ is not None and self.target is not None:
            self.lam = self.calibration_.lam_for(self.target)  # fitted even if this raises
        return self

    def _new_predictor(self) -> Predictor:  # one per fold of the calibration
        if isinstance(self.predictor, str):
            return make_predictor(self.predictor, seed=self.seed)
        return copy.deepcopy(self.predictor)

    def lam_for(self, target: Target) -> float:
        """The λ that meets ``target``, from the calibration made by :meth:`fit` (and saved);
        :class:`~mixllm.errors.ConfigError` if none was made or none meets it."""
        calibration: Calibration | None = getattr(self, "calibration_", None)
        if calibration is None:
            raise ConfigError(
                "this router has no calibration for targets; refit it with a target: "
                "Router(..., target=...) or `mixllm fit --cost-share S`"
            )
        return calibration.lam_for(target)

    @property
    def llms(self) -> tuple[str, ...]:
        """Names of the LLMs this router chooses from."""
        return self._fitted().llms_

    def _fitted(self) -> Predictor:
        if not hasattr(self, "predictor_"):
            raise NotFittedError(
                "this Router is not fitted yet; call fit(dataset) or Router.load(path)"
            )
        return self.predictor_

    # -- routing ------------------------------------------------------------------------------
    def _queries(
        self,
        prompts: Sequence[str],
        query_ids: Sequence[str] | None,
        *,
        prompt_tokens: np.ndarray | None = None,
    ) -> QueryBatch:
        return query_batch(self.embedder_, prompts, query_ids, prompt_tokens=prompt_tokens)

    def predict(
        self, prompts: Sequence[str], *, query_ids: Sequence[str] | None = None
    ) -> Prediction:
        """Predicted quality and cost of every LLM for each prompt."""
        self._fitted()
        queries = self._queries(prompts, query_ids)
        with self._lock:
            return self._fitted().predict(queries)

    def route(
        self,
        prompt: str,
        *,
        lam: float | None = None,
        query_id: str | None = None,
        candidates: Sequence[str] | None = None,
        max_cost_usd: float | None = None,
        explore_scale: float = 1.0,
    ) -> Decision:
        """Choose an LLM for one prompt."""
        ids = None if query_id is None else [query_id]
        return self.route_many(
            [prompt], lam=lam, query_ids=ids, candidates=candidates,
            max_cost_usd=max_cost_usd, explore_scale=explore_scale,
        )[0]  # fmt: skip

    def route_many(
        self,
        prompts: Sequence[str],
        *,
        lam: float | None = None,
        query_ids: Sequence[str] | None = None,
        candidates: Sequence[str] | None = None,
        max_cost_usd: float | None = None,
        explore_scale: float = 1.0,
    ) -> list[Decision]:
        """Choose an LLM for each prompt (batched; the same answers as :meth:`route` one by one).

        ``lam`` overrides the router's default; ``candidates`` restricts the choice to those
        LLMs; ``max_cost_usd`` excludes LLMs whose predicted cost is higher (if none is left,
        the cheapest predicted one is chosen). ``explore_scale`` multiplies MixLLM's bonus for
        LLMs added without data (``explore_new``): 1 as fitted, less where few of the answers
        served will be graded (the gateway passes its shadow judge's share).
        """
        lam = self.lam if lam is None else lam
        check_lam(lam)
        if max_cost_usd is not None and not (max_cost_usd >= 0):
            raise ConfigError(f"max_cost_usd={max_cost_usd!r}; expected a number >= 0 (USD)")
        check_weight(explore_scale, "explore_scale")
        self._fitted()
        queries = self._queries(prompts, query_ids)
        a, b, tau = self.alpha, self.beta, self.tau_s
        with self._lock:
            predictor = self._fitted()
            pred, explore = predict_for_choice(predictor, queries, alpha=a, candidates=candidates)
            wait = None if self.load_tracker is None else self.load_tracker.wait_s(pred.llms)
            weight = self._service_weight(pred, queries, wait)
            total = scores(
                pred, lam, alpha=a, beta=b, tau_s=tau, wait_s=wait, service_weight=weight
            )
            if explore is not None:  # MixLLM's bonus for LLMs added without data
                total += explore_scale * explore
            chosen = choose_from_scores(
                pred, total, tau_s=tau, wait_s=wait, max_cost_usd=max_cost_usd
            )
            if explore is not None:  # a newcomer's queries in flight narrow its bonus
                note_routed(predictor, queries, [pred.llms[int(c)] for c in chosen])
            ids = [uuid.uuid4().hex for _ in queries.ids]
        return decisions(queries, ids, pred, chosen, total, lam=lam, wait=wait)

    def route_within_budget(
        self,
        prompts: Sequence[str],
        budget_usd: float,
        *,
        query_ids: Sequence[str] | None = None,
        candidates: Sequence[str] | None = None,
        confidence: float | None = None,
    ) -> list[Decision]:
        """One LLM per prompt for the whole batch: the highest total predicted quality whose
        total predicted cost is at most ``budget_usd`` (see :mod:`mixllm.policy.budget`).

        With ``confidence`` C (between 0 and 1), the budget holds on what the answers will
        cost, with probability about C, rather than on the predicted costs: the plan uses the
        calibration's measure of recorded against predicted costs (a router fitted with a
        target has one; see :mod:`mixllm.policy.spend`). Each decision's ``lam`` is the
        multiplier that binds the (planned) budget. No uncertainty bonus or latency penalty:
        the budget is on predicted quality and cost only. :class:`~mixllm.errors.ConfigError`
        for a budget that is not a number ≥ 0, one below the cheapest assignment, a bad
        ``confidence``, or a ``confidence`` for a router without a calibration.
        """
        from mixllm.policy.budget import BudgetSolver, check_budget
        from mixllm.policy.spend import hold_within_budget

        check_budget(budget_usd)
        if confidence is not None:
            check_confidence(confidence)
        self._fitted()
        calibration: Calibration | None = getattr(self, "calibration_", None)
        errors = None if calibration is None else calibration.spend
        if confidence is not None and errors is None:
            raise ConfigError(
                f"confidence={confidence!r} needs the router's measure of recorded against "
                "predicted costs, which fitting with a target makes (Router(..., target=...) "
                "or `mixllm fit`); this router has none"
            )
        queries = self._queries(prompts, query_ids)
        with self._lock:
            pred, _ = predict_for_choice(self._fitted(), queries, candidates=candidates)
            ids = [uuid.uuid4().hex for _ in queries.ids]
        if confidence is None or errors is None:
            solver = BudgetSolver(pred)
            chosen, lam = solver.assign(budget_usd), solver.multiplier(budget_usd)
        else:
            held = hold_within_budget(pred, budget_usd, errors, confidence=confidence)
            chosen, lam = held.choice, held.lam
        return decisions(queries, ids, pred, chosen, scores(pred, lam), lam=lam, wait=None)

    def _service_weight(
        self, pred: Prediction, queries: QueryBatch, wait: NDArray[np.float64] | None
    ) -> NDArray[np.float64] | None:
        """Per query and LLM, how long the answer would hold a slot relative to the LLM's
        average (``None``: every query pays the same penalty)."""
        tracker, tau = self.load_tracker, self.tau_s
        if self.penalty_scale != "service" or self.beta == 0 or not math.isfinite(tau):
            return None
        if tracker is None or wait is None or not wait.any():
            return None
        return tracker.prediction_weights(pred, queries.prompt_tokens, self.prices_)

    # -- learning online ----------------------------------------------------------------------
    def learn_one(self, decision: Decision, feedback: Feedback) -> bool:
        """Learn from feedback on one decision of this router (MixLLM §3.4): a pure update of
        the predictors from the decision's query (its embedding) and the feedback.

        Every call learns: keeping each feedback once is the caller's (the gateway's store
        keeps the first feedback per decision, and every replica learns its log once, in
        order). Returns ``False``, learning nothing, for an LLM removed since the decision or
        a decision without its embedding. Order does not matter (without a discount the
        updates commute). Raises :class:`~mixllm.errors.ConfigError` for a predictor that
        does not learn online.
        """
        if not isinstance(decision, Decision) or not isinstance(feedback, Feedback):
            raise ConfigError(
                f"learn_one({type(decision).__name__}, {type(feedback).__name__}); "
                "expected a Decision from this router and a Feedback"
            )
        with self._lock:
            predictor = self._learner()
            if decision.llm not in predictor.llms_ or decision.embedding is None:
                return False
            predictor.learn(
                decision.embedding,
                decision.llm,
                prompt_tokens=decision.prompt_tokens,
                quality=feedback.quality,
                cost_usd=feedback.cost_usd,
                reward=feedback.reward,
            )
            return True

    def _learner(self) -> OnlinePredictor:
        predictor = self._fitted()
        if not isinstance(predictor, OnlinePredictor):
            raise ConfigError(
                f"router {getattr(predictor, 'name', predictor)!r} does not learn online; "
                "expected one of mixllm, linucb, thompson, egreedy, metallm, llm-bandit"
            )
        return predictor

    def add_llm(self, llm: LLM, dataset: Dataset | None = None) -> None:
        """Add ``llm`` to the pool without retraining the others: with ``dataset`` (outcomes of
        ``llm`` on some queries) its predictors start from them; without, from a prior."""
        if not isinstance(llm, LLM):
            raise ConfigError(f"add_llm({llm!r}); expected an LLM(name, prices)")
        seed = queries = None
        if dataset is not None:
            if llm.name not in dataset.llms:
                raise UnknownLLMError(
                    f"{dataset.name}: no outcomes for {llm.name!r}; it has {list(dataset.llms)}"
                )
            seed = dataset.select_llms([llm.name])
            queries = self._queries(
                [str(p) for p in seed.prompts],
                [str(q) for q in seed.query_ids],
                prompt_tokens=seed.prompt_tokens,
            )
        with self._lock:  # all or nothing: a failure leaves the pool as it was
            predictor = copy.deepcopy(self._learner())
            predictor.add_llm(llm, seed, queries)
            self.predictor_ = predictor
            self.prices_[llm.name] = llm

    def remove_llm(self, name: str) -> None:
        """Take ``name`` out of the pool; the others keep what they learned. Decisions already
        made for it stay valid (their feedback is accepted and ignored)."""
        with self._lock:
            predictor = copy.deepcopy(self._learner())
            predictor.remove_llm(name)
            self.predictor_ = predictor
            self.prices_.pop(name, None)

    def lambda_sweep(
        self, prompts: Sequence[str], n: int, *, query_ids: Sequence[str] | None = None
    ) -> list[float]:
        """``n`` values of λ from 0 (the highest predicted quality) to a λ that routes every
        prompt of ``prompts`` to its cheapest predicted LLM, ascending."""
        return [float(x) for x in lambda_grid(self.predict(prompts, query_ids=query_ids), n)]
