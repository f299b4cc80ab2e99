"""When AIQ says nothing, and the numbers that still do: quality at λ = 0 and the gain over the
best single LLM.

AIQ averages a router's frontier over the costs from the cheapest LLM's to the reference LLM's.
When the reference (by default the best LLM) is also the cheapest, or every LLM costs the same,
that range is empty: AIQ, APGR over costs, the budgets and the cost to match all read one point
and rank nothing. What still makes sense is how good each router is when cost does not count
(λ = 0) and how much that beats always calling the best single LLM.

>>> aiq_warning(("a", "b"), [0.002, 0.002], cheapest="a", reference="b", best="b")[:40]
'AIQ says nothing on this data: every LLM'
>>> aiq_warning(("a", "b"), [0.001, 0.002], cheapest="a", reference="b", best="b") is None
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixllm.data.dataset import Dataset
from mixllm.evaluate.replay import filled_costs

__all__ = ["aiq_warning", "best_single_llm"]

_REL_TOL = 1e-9


def best_single_llm(test: Dataset) -> str:
    """The LLM with the highest mean quality on ``test`` (missing as 0; ties: cheaper, name)."""
    quality = np.nan_to_num(test.quality, nan=0.0).mean(axis=0)
    cost = filled_costs(test).mean(axis=0)
    order = sorted(range(test.n_llms), key=lambda j: (-quality[j], cost[j], test.llms[j]))
    return test.llms[order[0]]


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _REL_TOL * max(abs(a), abs(b))


def aiq_warning(
    llms: Sequence[str],
    mean_costs: Sequence[float],
    *,
    cheapest: str,
    reference: str,
    best: str,
) -> str | None:
    """The warning for a report whose AIQ range is empty, or ``None`` when it is not.

    ``mean_costs`` are the LLMs' mean costs per query on the test split (in ``llms`` order).
    """
    costs = [float(c) for c in mean_costs]
    lo, hi = costs[list(llms).index(cheapest)], costs[list(llms).index(reference)]
    if all(_same(c, costs[0]) for c in costs):
        why = f"every LLM costs the same (${costs[0]:.6f} per query)"
    elif cheapest == reference or hi <= lo or _same(lo, hi):
        why = (
            f"the reference LLM {reference} is also the cheapest (${hi:.6f} per query; "
            f"cheapest {cheapest} ${lo:.6f})"
        )
    else:
        return None
    return (
        f"AIQ says nothing on this data: {why}, so its cost range is empty and AIQ, APGR, the "
        "budget columns and cost to match only read one point. Compare routers by their "
        f"quality at λ = 0 and its gain over the best single LLM ({best})."
    )
