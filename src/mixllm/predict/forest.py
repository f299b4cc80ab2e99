"""Tree ensembles as plain arrays: scikit-learn random forests and gradient boosting, exported
once after fitting, evaluated with numpy and saved without pickle.

A fitted ensemble becomes five flat node arrays (split feature, threshold, children, leaf value)
plus, per tree, its root and the output column it adds to. Prediction walks every (row, tree)
pair one level per step, all at once, so several LLMs' forests merged with :meth:`concat` are
evaluated in one pass. Leaves point to themselves, so extra steps are harmless.

Loading checks the arrays (indices in range, children after their parent) and refuses anything
else with :class:`~mixllm.errors.PersistError`: a saved file can describe trees, never code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import DataError, PersistError

__all__ = ["TreeEnsemble"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]
_CHUNK = 128  # rows walked together
_FIELDS = ("feature", "threshold", "children", "value", "roots", "tree_output", "bias")


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Trees in flat arrays: output ``o`` = ``bias[o]`` + the leaf values of its trees, summed.

    A row goes left at node ``i`` when ``x[feature[i]] <= threshold[i]``, to ``children[i, 0]``,
    else to ``children[i, 1]``. Leaves have threshold +inf and both children equal to
    themselves. ``float32_inputs`` compares ``x`` rounded to float32, as scikit-learn's forests do.
    """

    feature: IntArray  # (n_nodes,)
    threshold: FloatArray  # (n_nodes,)
    children: IntArray  # (n_nodes, 2), absolute node indices
    value: FloatArray  # (n_nodes,) contribution of a leaf (0 at inner nodes)
    roots: IntArray  # (n_trees,)
    tree_output: IntArray  # (n_trees,) output column of each tree, non-decreasing
    bias: FloatArray  # (n_outputs,)
    float32_inputs: bool = False
    depth: int = field(init=False)  # longest root-to-leaf path, the number of walking steps
    _walk: tuple[NDArray[np.intp], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check(self)
        object.__setattr__(self, "depth", _depth(self))
        # intp copies for np.take: feature, flat children, roots (made once, not per call)
        walk = (self.feature, self.children.ravel(), self.roots)
        object.__setattr__(self, "_walk", tuple(a.astype(np.intp) for a in walk))

    @property
    def n_outputs(self) -> int:
        return len(self.bias)

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_random_forest(cls, model: Any) -> TreeEnsemble:
        """A fitted ``RandomForestRegressor`` (one output): the mean of its trees."""
        trees = [est.tree_ for est in model.estimators_]
        parts = [
            _tree(t.feature, t.threshold, t.children_left, t.children_right, t.value[:, 0, 0])
            for t in trees
        ]
        return _join(parts, bias=0.0, scale=1.0 / len(parts), float32_inputs=True)

    @classmethod
    def from_hist_gradient_boosting(cls, model: Any, n_iter: int | None = None) -> TreeEnsemble:
        """A fitted binary ``HistGradientBoostingClassifier`` (the log-odds of the second class)
        or ``HistGradientBoostingRegressor``, keeping its first ``n_iter`` trees."""
        parts = []
        for (pred,) in model._predictors[:n_iter]:
            nodes = pred.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            left = np.where(leaf, -1, nodes["left"].astype(np.int64))
            right = np.where(leaf, -1, nodes["right"].astype(np.int64))
            value = np.where(leaf, nodes["value"], 0.0)
            parts.append(_tree(nodes["feature_idx"], nodes["num_threshold"], left, right, value))
        bias = float(np.asarray(model._baseline_prediction).reshape(-1)[0])
        return _join(parts, bias=bias, scale=1.0, float32_inputs=False)

    @classmethod
    def concat(cls, parts: Sequence[TreeEnsemble]) -> TreeEnsemble:
        """One ensemble whose outputs are those of ``parts``, in order (for batched prediction)."""
        if not parts or len({p.float32_inputs for p in parts}) != 1:
            raise ValueError("concat needs one or more ensembles with the same float32_inputs")
        node_off = np.cumsum([0] + [len(p.feature) for p in parts[:-1]])
        out_off = np.cumsum([0] + [p.n_outputs for p in parts[:-1]])
        return cls(
            feature=np.concatenate([p.feature for p in parts]),
            threshold=np.concatenate([p.threshold for p in parts]),
            children=np.concatenate([p.children + o for p, o in zip(parts, node_off)]),
            value=np.concatenate([p.value for p in parts]),
            roots=np.concatenate([p.roots + o for p, o in zip(parts, node_off)]).astype(np.int32),
            tree_output=np.concatenate([p.tree_output + o for p, o in zip(parts, out_off)]).astype(
                np.int32
            ),
            bias=np.concatenate([p.bias for p in parts]),
            float32_inputs=parts[0].float32_inputs,
        )

    # -- predicting ----------------------------------------------------------------------------
    def predict(self, x: NDArray[np.floating]) -> FloatArray:
        """Outputs for the rows of ``x``: shape (n, n_outputs)."""
        rounded = np.asarray(x, dtype=np.float32 if self.float32_inputs else np.float64)
        if len(self.feature) and int(self.feature.max()) >= rounded.shape[1]:
            raise DataError(
                f"inputs have {rounded.shape[1]} features; the trees split on feature "
                f"{int(self.feature.max())}"
            )
        x64 = rounded.astype(np.float64)
        leaves = np.concatenate(
            [self._leaf_values(x64[s : s + _CHUNK]) for s in range(0, len(x64), _CHUNK)]
            or [np.zeros((0, self.n_trees))]
        )
        starts = np.searchsorted(self.tree_output, np.arange(self.n_outputs))
        has_tree = np.isin(np.arange(self.n_outputs), self.tree_output)
        sums = np.add.reduceat(leaves, np.minimum(starts, max(self.n_trees - 1, 0)), axis=1)
        out: FloatArray = self.bias + (np.where(has_tree, sums, 0.0) if self.n_trees else 0.0)
        return out

    def _leaf_values(self, x: FloatArray) -> FloatArray:
        """Walk a block of rows down every tree (``take`` on flat arrays: the fastest numpy
        gather for one row; blocks of rows keep the (rows, trees) arrays in cache)."""
        n, d = x.shape
        flat = x.ravel()
        offset = (np.arange(n, dtype=np.intp) * d)[:, None]
        feature, children, roots = self._walk
        node = np.broadcast_to(roots, (n, self.n_trees))
        for _ in range(self.depth):
            go_right = flat.take(offset + feature.take(node)) > self.threshold.take(node)
            node = children.take(2 * node + go_right)
        out: FloatArray = self.value.take(node)
        return out

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, bool], dict[str, NDArray[Any]]]:
        """``({"float32_inputs": ...}, arrays)`` for :meth:`from_state`."""
        arrays = {name: getattr(self, name) for name in _FIELDS}
        return {"float32_inputs": self.float32_inputs}, arrays

    @classmethod
    def from_state(
        cls, params: Mapping[str, object], arrays: Mapping[str, NDArray[Any]]
    ) -> TreeEnsemble:
        """The ensemble saved by :meth:`get_state`; malformed arrays raise ``PersistError``."""
        try:
            parts = {name: np.asarray(arrays[name]) for name in _FIELDS}
            flag = params["float32_inputs"]
        except KeyError as exc:
            raise PersistError(f"tree ensemble state lacks {exc.args[0]!r}") from None
        kinds = {"feature": "iu", "children": "iu", "roots": "iu", "tree_output": "iu"}
        for name, a in parts.items():
            if a.dtype.kind not in kinds.get(name, "f"):
                raise PersistError(f"tree ensemble array {name!r} has dtype {a.dtype}")
        if not isinstance(flag, bool):
            raise PersistError(f"tree ensemble float32_inputs={flag!r}; expected a bool")
        return cls(
            feature=parts["feature"].astype(np.int32),
            threshold=parts["threshold"].astype(np.float64),
            children=parts["children"].astype(np.int32),
            value=parts["value"].astype(np.float64),
            roots=parts["roots"].astype(np.int32),
            tree_output=parts["tree_output"].astype(np.int32),
            bias=parts["bias"].astype(np.float64),
            float32_inputs=flag,
        )


def _tree(
    feature: NDArray[Any],
    threshold: NDArray[Any],
    left: NDArray[Any],
    right: NDArray[Any],
    value: NDArray[Any],
) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
    """One tree's arrays in the flat convention (children relative to the tree, leaves to self)."""
    leaf = np.asarray(left) < 0
    own = np.arange(len(leaf), dtype=np.int64)
    children = np.stack([np.where(leaf, own, left), np.where(leaf, own, right)], axis=1)
    return (
        np.where(leaf, 0, feature).astype(np.int32),
        np.where(leaf, np.inf, threshold).astype(np.float64),
        children.astype(np.int32),
        np.where(leaf, value, 0.0).astype(np.float64),
    )


def _join(
    parts: list[tuple[IntArray, FloatArray, IntArray, FloatArray]],
    *,
    bias: float,
    scale: float,
    float32_inputs: bool,
) -> TreeEnsemble:
    sizes = [len(p[0]) for p in parts]
    offsets = np.cumsum([0, *sizes[:-1]]).astype(np.int32)
    return TreeEnsemble(
        feature=np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int32),
        threshold=np.concatenate([p[1] for p in parts]) if parts else np.zeros(0),
        children=(
            np.concatenate([p[2] + o for p, o in zip(parts, offsets)])
            if parts
            else np.zeros((0, 2), np.int32)
        ),
        value=np.concatenate([p[3] for p in parts]) * scale if parts else np.zeros(0),
        roots=offsets,
        tree_output=np.zeros(len(parts), dtype=np.int32),
        bias=np.array([bias]),
        float32_inputs=float32_inputs,
    )


def _check(t: TreeEnsemble) -> None:
    """Refuse arrays that do not describe finite trees (shapes, ranges, children after parent)."""
    n = len(t.feature)
    shapes_ok = (
        t.feature.ndim == 1
        and t.threshold.shape == (n,)
        and t.value.shape == (n,)
        and t.children.shape == (n, 2)
        and t.roots.ndim == 1
        and t.tree_output.shape == t.roots.shape
        and t.bias.ndim == 1
    )
    if not shapes_ok:
        raise PersistError("tree ensemble arrays have inconsistent shapes")
    own = np.arange(n)[:, None]
    leaf = (t.children == own).all(axis=1)
    inner_ok = (t.children > own) & (t.children < n)
    if not (leaf | inner_ok.all(axis=1)).all() or (t.feature < 0).any():
        raise PersistError("tree ensemble has a child index out of range or before its parent")
    if (t.roots < 0).any() or (t.roots >= max(n, 1)).any() or not np.isfinite(t.value).all():
        raise PersistError("tree ensemble has a root out of range or a non-finite leaf value")
    outs = t.tree_output
    if (outs < 0).any() or (outs >= len(t.bias)).any() or (np.diff(outs) < 0).any():
        raise PersistError("tree ensemble tree_output must be sorted output indices")
    if np.isnan(t.threshold).any() or not (t.threshold[leaf] == np.inf).all():
        raise PersistError("tree ensemble leaves must have threshold +inf, no threshold NaN")


def _depth(t: TreeEnsemble) -> int:
    """Longest root-to-leaf path, walking all trees level by level (children follow parents,
    so the walk ends after at most n_nodes levels)."""
    frontier = np.unique(t.roots)
    depth = 0
    while True:
        kids = t.children[frontier]
        moving = kids != frontier[:, None]
        frontier = np.unique(kids[moving])
        if not len(frontier):
            return depth
        depth += 1
