"""Private helpers of :mod:`mixllm.policy.mixllm`: which domain labels the tag head (MixLLM §3.1,
:class:`~mixllm.embed.DomainProjection`) learns from, chosen by the predictor's ``tags``.

- ``"task"``: the training split's task labels when every query has one and there are at least
  two tasks, else KMeans clusters (cluster count by silhouette);
- ``"domain"``: the training split's :attr:`~mixllm.data.Dataset.domains` (e.g. RouterDC's
  ``cluster_id``), a query without one taking its task label;
- ``"kmeans"`` or ``"kmeans:K"``: KMeans clusters of the embeddings (K of them, or the count with
  the best silhouette);
- ``None``: no tag head (the raw embedding).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.embed.tagged import DomainProjection
from mixllm.errors import ConfigError, DataError

__all__ = ["TAGS", "check_tags", "fit_projection"]

#: The accepted values of ``tags`` (``K`` is a whole number >= 2).
TAGS = ("task", "domain", "kmeans", "kmeans:K", None)


def check_tags(tags: object, tagged: object = True) -> str | None:
    """The tag source in effect: ``tags``, or ``None`` when ``tagged`` is ``False`` (the older
    switch, kept so that saved routers and callers of ``tagged=False`` still work).

    >>> check_tags("kmeans:8"), check_tags("task", tagged=False)
    ('kmeans:8', None)
    >>> check_tags("clusters")
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: tags='clusters'; expected 'task', 'domain', 'kmeans', \
'kmeans:K' (K clusters, a whole number >= 2) or None
    """
    if not isinstance(tagged, bool):
        raise ConfigError(f"tagged={tagged!r}; expected True or False")
    if tags is None:
        return None
    if isinstance(tags, str) and (tags in ("task", "domain", "kmeans") or _count(tags)):
        return tags if tagged else None
    raise ConfigError(
        f"tags={tags!r}; expected 'task', 'domain', 'kmeans', 'kmeans:K' (K clusters, a whole "
        "number >= 2) or None"
    )


def _count(tags: str) -> int | None:
    """K of ``"kmeans:K"`` (``None`` for anything else or a K below 2)."""
    count = tags.removeprefix("kmeans:") if tags.startswith("kmeans:") else ""
    return int(count) if count.isdigit() and int(count) >= 2 else None


def _labels(tags: str, train: Dataset) -> tuple[list[str] | None, int | None]:
    """The domain label of each training query (``None``: KMeans) and the cluster count."""
    if tags == "task":
        labelled = train.has_tasks and len(train.task_names) >= 2
        return ([str(t) for t in train.tasks] if labelled else None), None
    if tags.startswith("kmeans"):
        return None, _count(tags)
    if train.domains is None or not train.domain_names:
        raise DataError(
            f"{train.name}: tags='domain' but no query has a domain label (Dataset.domains); "
            "use tags='task' or 'kmeans:K', or data with domains (a 'domain' column, "
            "RouterDC's cluster_id)"
        )
    labels = [d if d not in (None, "") else t for d, t in zip(train.domains, train.tasks)]
    unlabelled = sum(label in (None, "") for label in labels)
    if unlabelled:
        raise DataError(
            f"{train.name}: tags='domain' but {unlabelled} of {len(labels)} queries have "
            "neither a domain nor a task label; expected one of them on every query"
        )
    return [str(label) for label in labels], None


def fit_projection(
    tags: str | None, train: Dataset, x: NDArray[np.float64], seed: int
) -> DomainProjection | None:
    """The tag head fitted on the training embeddings ``x`` with the domains ``tags`` names, or
    ``None`` when ``tags`` is ``None``."""
    if tags is None:
        return None
    labels, n_clusters = _labels(tags, train)
    projection = DomainProjection(n_clusters=n_clusters, seed=seed)
    return projection.fit(x.astype(np.float32), labels)
