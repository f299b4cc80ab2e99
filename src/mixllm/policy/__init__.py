"""Routing policies: predictors of quality and cost per LLM, and the one choice rule.

Every router is a :class:`Predictor` (``fit(train, queries)``, ``predict(queries)``) whose
:class:`~mixllm.types.Prediction` goes through :func:`choose` (score = quality − λ × cost
+ α × uncertainty − β × latency penalty, MixLLM §3.3; waits from a :class:`LoadTracker`).
The baselines every report includes, the online bandit baselines of the streams
(:mod:`mixllm.policy.bandits`), the routers of related papers and the task routers
(:mod:`mixllm.policy.task_best`, :mod:`mixllm.policy.task_prior`) are registered by name:

>>> from mixllm.policy import PREDICTORS, make_predictor
>>> PREDICTORS[:8], PREDICTORS[8:]
(('random', 'cheapest', 'oracle', 'knn', 'logistic', 'mlp', 'mf', 'mixllm'), \
('linucb', 'thompson', 'egreedy', 'metallm', 'llm-bandit', 'task-best', 'task-prior'))
>>> make_predictor("single:gpt-4").name
'single:gpt-4'

Fitted predictors save as JSON-able parameters plus arrays (``get_state``), restored by
:func:`predictor_from_state`, without pickle.
"""

from __future__ import annotations

from mixllm.policy.bandits import EpsilonGreedyPredictor, LinUCBPredictor, ThompsonPredictor
from mixllm.policy.base import (
    OnlinePredictor,
    Predictor,
    choose,
    choose_from_scores,
    lambda_grid,
    scores,
)
from mixllm.policy.knn import KNNPredictor
from mixllm.policy.linear import LogisticPredictor
from mixllm.policy.llm_bandit import LLMBanditPredictor
from mixllm.policy.load import LoadTracker
from mixllm.policy.metallm import MetaLLMPredictor
from mixllm.policy.mf import MatrixFactorizationPredictor
from mixllm.policy.mixllm import MixLLMPredictor
from mixllm.policy.mlp import MLPPredictor
from mixllm.policy.registry import (
    PREDICTORS,
    check_predictor_name,
    make_predictor,
    predictor_from_state,
)
from mixllm.policy.simple import (
    CheapestPredictor,
    OraclePredictor,
    RandomPredictor,
    SinglePredictor,
)
from mixllm.policy.state import BasePredictor, SavablePredictor

__all__ = [
    "PREDICTORS",
    "BasePredictor",
    "CheapestPredictor",
    "EpsilonGreedyPredictor",
    "KNNPredictor",
    "LLMBanditPredictor",
    "LinUCBPredictor",
    "LoadTracker",
    "LogisticPredictor",
    "MLPPredictor",
    "MatrixFactorizationPredictor",
    "MetaLLMPredictor",
    "MixLLMPredictor",
    "OnlinePredictor",
    "OraclePredictor",
    "Predictor",
    "RandomPredictor",
    "SavablePredictor",
    "SinglePredictor",
    "ThompsonPredictor",
    "check_predictor_name",
    "choose",
    "choose_from_scores",
    "lambda_grid",
    "make_predictor",
    "predictor_from_state",
    "scores",
]
