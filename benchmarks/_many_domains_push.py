"""Prototypes for ``benchmarks/many_domains.py --push``: routers that must beat the task prior.

Each entry makes a router (fit on the training split, predict quality for the test split). The
task prior blend lives in :mod:`mixllm.policy.task_prior`; the others are sketched here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _many_domains_core import F32, F64, Data, Router, batch
from mixllm.data import Dataset


def _prior(**kwargs: object) -> Callable[[Data, np.ndarray, int], Router]:
    told = bool(kwargs.pop("told", False))

    def make(data: Data, tr: np.ndarray, seed: int) -> Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            from mixllm.policy.task_prior import TaskPriorPredictor

            p = TaskPriorPredictor(seed=seed, **kwargs).fit(train, batch(train, xtr))  # type: ignore[arg-type]
            tasks = [str(t) for t in test.tasks] if told else [None] * len(test)
            return p.predict_tasks(batch(test, xte), tasks).quality

        return run

    return make


def _onehot(scale: float) -> Callable[[Data, np.ndarray, int], Router]:
    """Quality model on [embedding, scale × P(task | embedding)] (per-task intercepts)."""

    def make(data: Data, tr: np.ndarray, seed: int) -> Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            from sklearn.linear_model import LogisticRegression

            from mixllm.predict.quality import QualityModel

            tasks = np.array([str(t) for t in train.tasks])
            clf = LogisticRegression(C=10.0, max_iter=500).fit(xtr, tasks)
            names = list(clf.classes_)
            hot = np.eye(len(names))[[names.index(t) for t in tasks]]
            ftr = np.hstack([xtr, scale * hot])
            fte = np.hstack([xte, scale * clf.predict_proba(xte)])
            model = QualityModel("logistic", seed=seed).fit(ftr, train.quality)
            return model.predict(fte)

        return run

    return make


def _contrastive(tau: float = 0.2, k_pos: int = 2, cluster_weight: float = 1.0, epochs: int = 30):  # type: ignore[no-untyped-def]
    """RouterDC-style dual contrastive learning on the frozen embeddings: a learned projection
    of the query and one vector per LLM; the sample-LLM loss pulls a query toward the ``k_pos``
    LLMs that scored best on it (and away from the others), the sample-sample loss pulls
    queries of the same task together (``cluster_weight``; RouterDC uses k-means clusters). The
    router picks the LLM of highest similarity (returned as its "quality")."""

    def make(data: Data, tr: np.ndarray, seed: int) -> Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            import torch

            torch.manual_seed(seed)
            q = np.nan_to_num(np.asarray(train.quality, dtype=np.float64), nan=0.0)
            order = np.argsort(-q + 1e-6 * np.random.default_rng(seed).random(q.shape), axis=1)
            pos = np.zeros_like(q, dtype=bool)
            np.put_along_axis(pos, order[:, :k_pos], True, axis=1)
            keep = q.max(axis=1) > q.min(axis=1)  # rows where some LLM is better than another
            tasks = np.unique([str(t) for t in train.tasks], return_inverse=True)[1]
            x = torch.tensor(xtr, dtype=torch.float32)
            d, n_llm = x.shape[1], q.shape[1]
            proj = torch.nn.Linear(d, d)
            with torch.no_grad():
                proj.weight.copy_(torch.eye(d))
                proj.bias.zero_()
            llm = torch.nn.Parameter(0.01 * torch.randn(n_llm, d))
            opt = torch.optim.Adam([*proj.parameters(), llm], lr=1e-3)
            pos_t, keep_t = torch.tensor(pos), torch.tensor(keep)
            task_t = torch.tensor(tasks)
            rng = np.random.default_rng(seed)
            for _ in range(epochs):
                for rows in np.array_split(rng.permutation(len(x)), max(1, len(x) // 256)):
                    r = torch.tensor(rows)
                    z = torch.nn.functional.normalize(proj(x[r]), dim=1)
                    e = torch.nn.functional.normalize(llm, dim=1)
                    logits = z @ e.T / tau
                    # sample-LLM: each positive against all negatives (RouterDC's form)
                    neg = torch.where(pos_t[r], -torch.inf, logits).logsumexp(dim=1, keepdim=True)
                    per = -(logits - torch.logaddexp(logits, neg))
                    sl = (per * pos_t[r]).sum(1) / pos_t[r].sum(1)
                    loss = sl[keep_t[r]].mean() if keep_t[r].any() else sl.sum() * 0
                    if cluster_weight > 0:  # sample-sample: same task together
                        sim = z @ z.T / tau
                        same = task_t[r][:, None] == task_t[r][None, :]
                        eye = torch.eye(len(r), dtype=torch.bool)
                        sim = sim.masked_fill(eye, -torch.inf)
                        logp = sim - sim.logsumexp(dim=1, keepdim=True)
                        has = (same & ~eye).any(1)
                        ss = -(
                            logp.masked_fill(~(same & ~eye), 0).sum(1)
                            / (same & ~eye).sum(1).clamp(min=1)
                        )
                        loss = loss + cluster_weight * ss[has].mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                z = torch.nn.functional.normalize(
                    proj(torch.tensor(xte, dtype=torch.float32)), dim=1
                )
                sim = z @ torch.nn.functional.normalize(llm, dim=1).T
            return sim.numpy().astype(np.float64)

        return run

    return make


ROUTERS: dict[str, Callable[[Data, np.ndarray, int], Router]] = {
    "task prior blend": _prior(),
    "task prior blend, hard task": _prior(soft=False),
    "task prior blend, shrink 100": _prior(shrink=100.0),
    "contrastive sample-LLM + sample-sample (RouterDC-style)": _contrastive(),
    "contrastive sample-LLM only": _contrastive(cluster_weight=0.0),
    "per-task calibration (w = 1)": _prior(weights=(1.0,)),
    "quality on [x, task one-hot]": _onehot(1.0),
}


def _by_predicted_task(shrink: float) -> Callable[[Data, np.ndarray, int], Router]:
    """Priors of the *predicted* task: each task's prior is the mean quality of the training
    queries that the classifier (out of fold) puts in it, so tasks it confuses share a prior."""

    def make(data: Data, tr: np.ndarray, seed: int) -> Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            from sklearn.linear_model import LogisticRegression
            from sklearn.model_selection import cross_val_predict

            tasks = np.array([str(t) for t in train.tasks])
            clf = LogisticRegression(C=10.0, max_iter=500)
            oof = cross_val_predict(clf, xtr, tasks, cv=5)
            pred = clf.fit(xtr, tasks).predict(xte)
            q = np.asarray(train.quality, dtype=np.float64)
            overall = q.mean(axis=0)
            prior = {t: (q[oof == t].sum(0) + shrink * overall) / ((oof == t).sum() + shrink)
                     for t in set(tasks)}  # fmt: skip
            return np.array([prior[t] for t in pred])

        return run

    return make


ROUTERS["prior by predicted task"] = _by_predicted_task(0.0)
ROUTERS["prior by predicted task, shrink 200"] = _by_predicted_task(200.0)
for _k in (0, 50, 100, 200):
    ROUTERS[f"task prior only, shrink {_k}"] = _prior(weights=(0.0,), shrink=float(_k))
    ROUTERS[f"task prior only, shrink {_k}, told the task"] = _prior(
        weights=(0.0,), shrink=float(_k), told=True
    )
#: What ``--push`` runs over all seeds (the others were measured on seed 0 only).
DEFAULT = ("task prior blend", "task prior blend, hard task", "task prior blend, shrink 100")


def signal(ds: Dataset, x: F32, seed: int = 0) -> None:
    """Is there per-query routing signal inside a task? On the training part of the seeded
    split, per task: out-of-fold (5 folds) picks from predicted gains over the task's best
    LLM (ridge at α = 1, 10, 100; kNN mean at k = 10, 30, 100; an LLM other than the task's
    best is picked when its predicted gain passes a margin of 0, 0.02, 0.05 or 0.1) against
    always the task's best. The best configuration is chosen on the same folds (optimistic)."""
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import NearestNeighbors

    from _many_domains_core import SHORT, split

    tr, _ = split(len(ds), seed)
    q, xs, tasks = ds.quality[tr], x[tr].astype(np.float64), ds.tasks[tr].astype(str)
    folds = np.random.default_rng(seed).permutation(len(tr)) % 5
    print("\n| task | n | task's best | ridge α=10, margin 0 | best of 24 (optimistic) |")
    print("|---|---|---|---|---|")
    for task in sorted(set(tasks)):
        rows = np.flatnonzero(tasks == task)
        qt, xt, ft = q[rows], xs[rows], folds[rows]
        b = int(qt.mean(axis=0).argmax())
        gain = qt - qt[:, [b]]
        got: dict[str, float] = {}
        for how in ("ridge:1", "ridge:10", "ridge:100", "knn:10", "knn:30", "knn:100"):
            kind, par = how.split(":")
            oof = np.zeros_like(gain)
            for k in range(5):
                fit, val = np.flatnonzero(ft != k), np.flatnonzero(ft == k)
                if kind == "ridge":
                    oof[val] = Ridge(alpha=float(par)).fit(xt[fit], gain[fit]).predict(xt[val])
                else:
                    nn = NearestNeighbors(n_neighbors=min(int(par), len(fit)), metric="cosine")
                    nb = nn.fit(xt[fit]).kneighbors(xt[val], return_distance=False)
                    oof[val] = gain[fit][nb].mean(axis=1)
            for margin in (0.0, 0.02, 0.05, 0.1):
                s = np.where(oof > margin, oof, -1.0)
                s[:, b] = 0.0
                got[f"{how} margin {margin}"] = float(qt[np.arange(len(qt)), s.argmax(1)].mean())
        best = max(got, key=got.__getitem__)
        ridge = got["ridge:10 margin 0.0"]
        print(f"| {SHORT[task]} | {len(rows)} | {100 * qt[:, b].mean():.1f} | {100 * ridge:.1f} "
              f"| {100 * got[best]:.1f} ({best}) |")  # fmt: skip
