"""The :class:`~mixllm.types.Decision` objects a router returns for a batch of queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.types import Decision, Prediction, QueryBatch

__all__ = ["decisions"]


def decisions(
    queries: QueryBatch,
    decision_ids: Sequence[str],
    pred: Prediction,
    chosen: NDArray[np.int64],
    total: NDArray[np.float64],
    *,
    lam: float,
    wait: NDArray[np.float64] | None,
) -> list[Decision]:
    """One decision per query: the chosen column of ``pred``, its scores ``total`` and the
    predictions, with each query's embedding and prompt tokens (for learning online)."""
    llms, lam_value = pred.llms, float(lam)
    waits = {} if wait is None else dict(zip(llms, wait.tolist()))
    # Whole-matrix tolist(): one call per batch instead of one per query and dict.
    rows = zip(
        queries.ids, decision_ids, chosen.tolist(), total.tolist(), pred.quality.tolist(),
        pred.cost_usd.tolist(), queries.embeddings, queries.prompt_tokens.tolist(),
    )  # fmt: skip
    return [
        Decision(
            query_id=qid,
            llm=llms[j],
            lam=lam_value,
            scores=dict(zip(llms, s)),
            predicted_quality=dict(zip(llms, q)),
            predicted_cost_usd=dict(zip(llms, c)),
            embedding=e,
            decision_id=did,
            predicted_wait_s=waits,
            prompt_tokens=t,
        )
        for qid, did, j, s, q, c, e, t in rows
    ]
