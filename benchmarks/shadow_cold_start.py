"""How fast does shadow traffic teach the gateway a newcomer? (cold start through the gateway)

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/shadow_cold_start.py [--seeds 0,1,2]
[--newcomer zero-one-ai/Yi-34B-Chat] [--share 0.2] [--n 1000] [--window 100] [--lam 100]``.

The RouterBench subset (``mixllm.data.load_dataset("routerbench")``, from ``$MIXLLM_DATA_DIR``,
default ../shared/data), split by query (seeded, 60/40: ~1,016 test queries). Three MixLLM
routers (default embedder), each served by the in-process gateway (``create_app``, httpx's
ASGI transport) with a :class:`~mixllm.serve.ReplayBackend` per LLM (the recorded answers) and
the :class:`~mixllm.serve.replay.RecordedJudge` (it rates an answer by the quality recorded for
it), stream the same ``--n`` test queries (seeded order), one at a time:

- **known**: fitted on the training split with the newcomer's data (the reference);
- **cold + shadow**: fitted without the newcomer, which is then added with no data
  (``Router.add_llm``), the newcomer bonus off (``explore_new = 0``), with ``[shadow] share =
  --share`` and the recorded judge;
- **cold + shadow (defaults)**: the same with the router's defaults (the newcomer bonus on,
  which the gateway scales by ``share`` on client requests: only that share of the answers
  served is graded);
- **cold, no shadow**: the cold router without the bonus, shadow off.

With a judge, a shadow call goes to the most uncertain LLM for the query; when that is the LLM
that answered, the judge grades the served answer itself (no other call) and that is learned.

Clients send no feedback: only the shadow calls teach the routers. Each shadow call is waited
for before the next query (so runs repeat exactly). Per window of ``--window`` queries: the
newcomer's share of the client calls, the mean absolute error of the router's predicted quality
for the newcomer (at decision time, read from the gateway's store) against its recorded
quality on those queries (and the mean error, predicted - recorded), the recorded quality of
the answers the clients got, and the shadow calls that went to the newcomer (and the served
answers of the newcomer the judge graded). Means over the seeds.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data"
os.environ.setdefault("MIXLLM_DATA_DIR", str(DATA))

from mixllm import Router  # noqa: E402
from mixllm.data import Dataset, load_dataset, split_random  # noqa: E402
from mixllm.policy import MixLLMPredictor  # noqa: E402
from mixllm.serve import ReplayBackend, Settings, Store, create_app  # noqa: E402
from mixllm.serve.metrics import metric_total as _metric  # noqa: E402
from mixllm.serve.replay import RecordedJudge  # noqa: E402
from mixllm.serve.settings import ShadowSettings  # noqa: E402

ARMS = ("known", "cold + shadow", "cold + shadow (defaults)", "cold, no shadow")
SHADOWED = ("cold + shadow", "cold + shadow (defaults)")


async def _stream(
    router: Router, data: Dataset, prompts: list[str], folder: Path, settings: Settings
) -> tuple[list[str], dict[str, Any]]:
    """Send ``prompts`` one at a time; the LLM that answered each, and the gateway's metrics."""
    backends: dict[str, Any] = {m: ReplayBackend(m, data) for m in router.llms}
    backends["recorded-judge"] = RecordedJudge(data)
    store = Store(folder / "gateway.db")
    app = create_app(router, backends, store, settings, state_dir=folder / "state")
    answered = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway.test", timeout=60.0
            ) as client:
                gw = app.state.gateway
                for prompt in prompts:
                    body = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
                    reply = await client.post("/v1/chat/completions", json=body)
                    if reply.status_code != 200:
                        raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")
                    answered.append(reply.headers["x-mixllm-llm"])
                    await gw.shadow.drain()
                metrics = (await client.get("/metrics")).text
    finally:
        store.close()
    return answered, {"metrics": metrics}


def _predicted(db: Path, llm: str) -> list[float]:
    """The predicted quality of ``llm`` in each client decision, in order."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT predicted_quality FROM decisions WHERE shadow_of IS NULL ORDER BY rowid"
        ).fetchall()
        return [float(json.loads(r[0]).get(llm, np.nan)) for r in rows]
    finally:
        conn.close()


def _shadowed(db: Path) -> list[tuple[str, str] | None]:
    """Per client decision, the LLM its shadow call went to and its stored outcome (``served``:
    the served answer graded; ``None``: not shadowed, or not stored)."""
    conn = sqlite3.connect(db)
    try:
        client = "SELECT decision_id FROM decisions WHERE shadow_of IS NULL ORDER BY rowid"
        ids = [r[0] for r in conn.execute(client)]
        shadow = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT shadow_of, llm, shadow_outcome FROM decisions WHERE shadow_of IS NOT NULL"
            )
        }
        return [shadow.get(i) for i in ids]
    finally:
        conn.close()


def run_seed(ds: Dataset, seed: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    train, test = split_random(ds, test_size=0.4, seed=seed)
    order = np.random.default_rng(seed).permutation(len(test))[: args.n]
    rows = [int(i) for i in order]
    prompts = [str(test.prompts[i]) for i in rows]
    col = test.llm_index(args.newcomer)
    recorded = test.quality[rows, col]
    others = [m for m in train.llms if m != args.newcomer]
    started = time.perf_counter()
    known = Router("mixllm", lam=args.lam, seed=seed).fit(train)
    # the newcomer bonus off: clients do not explore it, so only shadow calls can teach it
    no_bonus = MixLLMPredictor(explore_new=0.0, seed=seed)
    cold_fitted = Router(no_bonus, lam=args.lam, seed=seed).fit(train.select_llms(others))
    cold_fitted.save(root / f"cold-{seed}")
    defaults = Router("mixllm", lam=args.lam, seed=seed).fit(train.select_llms(others))
    defaults.save(root / f"defaults-{seed}")
    fit_s = time.perf_counter() - started
    budget = ShadowSettings(share=args.share, budget_usd_per_day=100.0, judge="recorded-judge",
                            seed=seed)  # fmt: skip
    out: dict[str, Any] = {"fit_s": fit_s}
    for arm in ARMS:
        if arm == "known":
            router = known
        else:
            which = "defaults" if arm.endswith("(defaults)") else "cold"
            router = Router.load(root / f"{which}-{seed}", embedding_cache=False)
            router.add_llm(train.llm(args.newcomer))  # no data: its price tier's prior
        shadow = budget if arm in SHADOWED else ShadowSettings()
        settings = Settings(deadline_s=60.0, checkpoint_every=10**6, shadow=shadow)
        folder = root / f"{''.join(c for c in arm if c.isalnum())}-{seed}"
        folder.mkdir()
        started = time.perf_counter()
        answered, info = asyncio.run(_stream(router, test, prompts, folder, settings))
        seconds = time.perf_counter() - started
        served = np.array([test.quality[r, test.llm_index(m)] for r, m in zip(rows, answered)])
        cost = np.array([test.cost_usd[r, test.llm_index(m)] for r, m in zip(rows, answered)])
        predicted = np.array(_predicted(folder / "gateway.db", args.newcomer))
        shadowed = _shadowed(folder / "gateway.db")
        windows = []
        for w in range(0, len(prompts), args.window):
            part = slice(w, w + args.window)
            ok = np.isfinite(recorded[part])
            windows.append({
                "share": float(np.mean([m == args.newcomer for m in answered[part]])),
                "mae": float(np.mean(np.abs(predicted[part][ok] - recorded[part][ok]))),
                "bias": float(np.mean(predicted[part][ok] - recorded[part][ok])),
                "quality": float(np.nanmean(served[part])),
                "cost_usd": float(np.nanmean(cost[part])),
                "shadow_to_newcomer": sum(
                    s is not None and s[0] == args.newcomer and s[1] != "served"
                    for s in shadowed[part]
                ),
                "served_graded": sum(
                    s is not None and s[0] == args.newcomer and s[1] == "served"
                    for s in shadowed[part]
                ),
                "shadowed": sum(s is not None for s in shadowed[part]),
            })  # fmt: skip
        metrics = info["metrics"]
        out[arm] = {
            "windows": windows,
            "seconds": seconds,
            "shadow_learned": _metric(metrics, "mixllm_shadow_requests_total", outcome="learned"),
            "served_learned": _metric(
                metrics, "mixllm_shadow_requests_total", outcome="learned", answer="served"
            ),
            "shadow_unknown": _metric(
                metrics, "mixllm_shadow_requests_total", outcome="unknown_quality"
            ),
            "shadow_usd": _metric(metrics, "mixllm_shadow_spend_usd_total"),
            "client_usd": float(np.nansum(cost)),
        }
    return out


def _table(results: list[dict[str, Any]], key: str, fmt: str) -> list[str]:
    n = len(results[0][ARMS[0]]["windows"])
    lines = ["| queries | " + " | ".join(ARMS) + " |", "|---" * (len(ARMS) + 1) + "|"]
    for w in range(n):
        cells = []
        for arm in ARMS:
            values = [r[arm]["windows"][w][key] for r in results]
            cells.append(format(float(np.mean(values)), fmt))
        lines.append(f"| {w * 100 + 1}-{(w + 1) * 100} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--newcomer", default="zero-one-ai/Yi-34B-Chat")
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--lam", type=float, default=100.0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON results here")
    args = ap.parse_args()
    ds = load_dataset("routerbench")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as t:
        for seed in seeds:
            results.append(run_seed(ds, seed, args, Path(t)))
            print(f"seed {seed} done", flush=True)
    print(f"\nnewcomer {args.newcomer}, share {args.share}, λ = {args.lam}, "
          f"{args.n} queries, seeds {seeds}\n")  # fmt: skip
    print("Share of client calls to the newcomer, per window (mean over seeds):\n")
    print("\n".join(_table(results, "share", ".2f")))
    print("\nMean absolute error of its predicted quality (decision time):\n")
    print("\n".join(_table(results, "mae", ".3f")))
    print("\nMean error of its predicted quality (predicted - recorded, decision time):\n")
    print("\n".join(_table(results, "bias", "+.3f")))
    print("\nRecorded quality of the answers the clients got:\n")
    print("\n".join(_table(results, "quality", ".3f")))
    print("\nCost per query of those answers (USD):\n")
    print("\n".join(_table(results, "cost_usd", ".6f")))
    n_windows = len(results[0][ARMS[0]]["windows"])
    for arm in SHADOWED:
        for key, what in (("shadow_to_newcomer", "Shadow calls to the newcomer"),
                          ("served_graded", "Its served answers graded")):  # fmt: skip
            means = [float(np.mean([r[arm]["windows"][w][key] for r in results]))
                     for w in range(n_windows)]  # fmt: skip
            print(f"\n{what} per window ({arm}):", [round(m, 1) for m in means])
    print()
    for arm in ARMS:
        r = [x[arm] for x in results]
        windows = [w for x in r for w in x["windows"]]
        print(f"{arm}: quality {np.mean([w['quality'] for w in windows]):.3f}, "
              f"{1e3 * np.mean([w['cost_usd'] for w in windows]):.3f} mUSD/query, "
              f"share {np.mean([w['share'] for w in windows]):.3f}, "
              f"MAE {np.mean([w['mae'] for w in windows]):.3f}; shadow learned "
              f"{np.mean([x['shadow_learned'] for x in r]):.0f} (served "
              f"answers {np.mean([x['served_learned'] for x in r]):.0f}), unknown "
              f"{np.mean([x['shadow_unknown'] for x in r]):.0f}, shadow spend "
              f"${np.mean([x['shadow_usd'] for x in r]):.4f} vs clients' "
              f"${np.mean([x['client_usd'] for x in r]):.4f}; "
              f"{np.mean([x['seconds'] for x in r]):.1f} s a run")  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "results": results}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
