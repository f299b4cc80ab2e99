"""The decisions a router accepts feedback for, and whether each one's feedback was applied."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

__all__ = ["DecisionLedger"]


class DecisionLedger:
    """Decision ids, oldest first, each with whether its feedback was applied; at most
    ``limit`` of them (the oldest are forgotten first). Not thread-safe: the router's lock
    guards it.

    >>> ledger = DecisionLedger()
    >>> ledger.add(["a", "b", "c"], limit=2)
    >>> ledger.applied("a"), ledger.applied("c")
    (None, False)
    >>> ledger.mark_applied("c"); ledger.applied("c")
    True
    """

    def __init__(self, entries: OrderedDict[str, bool] | None = None) -> None:
        self._applied: OrderedDict[str, bool] = OrderedDict() if entries is None else entries

    def __contains__(self, decision_id: object) -> bool:
        return decision_id in self._applied

    def add(self, decision_ids: Sequence[str], *, limit: int) -> None:
        """Accept feedback for these decisions; forget the oldest past ``limit``."""
        for did in decision_ids:
            self._applied[did] = False
        while len(self._applied) > limit:
            self._applied.popitem(last=False)

    def applied(self, decision_id: str) -> bool | None:
        """Whether the decision's feedback was applied; ``None`` for an unknown decision."""
        return self._applied.get(decision_id)

    def mark_applied(self, decision_id: str) -> None:
        self._applied[decision_id] = True

    def copy(self) -> DecisionLedger:
        return DecisionLedger(OrderedDict(self._applied))

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
        """Decision ids (oldest first) and whether their feedback was applied, for saving."""
        ids = np.array(list(self._applied), dtype="<U32").reshape(-1)
        applied = np.fromiter(self._applied.values(), dtype=bool, count=len(self._applied))
        return ids, applied

    @classmethod
    def from_arrays(cls, ids: np.ndarray | None, applied: np.ndarray | None) -> DecisionLedger:  # type: ignore[type-arg]
        """The ledger :meth:`to_arrays` saved; ``ValueError`` if the arrays are missing or
        disagree."""
        if ids is None or applied is None or ids.shape != applied.shape or ids.ndim != 1:
            raise ValueError("the decision ledger is missing or its arrays disagree")
        return cls(OrderedDict(zip(ids.tolist(), applied.astype(bool).tolist())))
