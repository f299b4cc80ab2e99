"""Numbers and plots of stream runs: per-window quality, cost, timeouts and LLM shares, regret.

Everything here is a pure function of the steps, rounded before it is written, so the same
steps give the same files byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixllm.simulate.stream import Step

__all__ = ["plot_stream", "run_summary", "window_stats", "write_json"]

JSON = dict[str, Any]


def _r(x: float | np.floating[Any], digits: int = 6) -> float:
    return float(round(float(x), digits))


def run_summary(steps: Sequence[Step]) -> JSON:
    """Means over the whole run: quality, cost (USD per query), timeout and thumbs-up shares,
    regret per query against the oracle's quality − λ·cost, and calls per LLM."""
    if not steps:
        return {"n": 0}
    q = np.array([s.quality for s in steps])
    c = np.array([s.cost_usd for s in steps])
    llms = sorted({s.llm for s in steps})
    return {
        "n": len(steps),
        "quality": _r(q.mean()),
        "cost_usd": _r(c.mean(), 9),
        "timeout_share": _r(np.mean([s.timed_out for s in steps])),
        "reward_share": _r(np.mean([s.reward for s in steps])),
        "regret_per_query": _r(np.mean([s.regret for s in steps])),
        "mean_wait_s": _r(np.mean([s.wait_s for s in steps]), 4),
        "calls": {m: sum(s.llm == m for s in steps) for m in llms},
    }


def window_stats(steps: Sequence[Step], size: int) -> list[JSON]:
    """:func:`run_summary` of each run of ``size`` consecutive queries, with its position and
    the cumulative regret at its end."""
    if size < 1:
        raise ValueError(f"window size {size!r}; expected at least 1")
    out, total = [], 0.0
    for start in range(0, len(steps), size):
        chunk = steps[start : start + size]
        total += sum(s.regret for s in chunk)
        out.append(
            {"start": start, "end": start + len(chunk), **run_summary(chunk), "regret": _r(total)}
        )
    return out


def write_json(data: Mapping[str, Any], path: str | Path) -> Path:
    """``data`` as indented JSON with sorted keys (stable bytes)."""
    out = Path(path)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    out.write_text(text + "\n", encoding="utf-8")
    return out


def plot_stream(
    windows: Mapping[str, Sequence[JSON]],
    path: str | Path,
    *,
    title: str,
    share_of: str | None = None,
) -> Path:
    """Quality, cost, timeouts and cumulative regret per window for each named run (PNG).

    ``share_of`` adds a panel with the share of calls sent to that LLM (the cold-start curve).
    """
    from matplotlib.figure import Figure

    panels = [
        ("quality", "mean quality"),
        ("cost_usd", "mean cost per query (USD)"),
        ("timeout_share", "share past τ"),
        ("regret", "cumulative regret"),
    ]
    if share_of is not None:
        panels.append(("share", f"share of calls to {share_of}"))
    fig = Figure(figsize=(11, 2.4 * len(panels)), dpi=100, layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True)
    for name, rows in windows.items():
        x = [w["end"] for w in rows]
        for ax, (key, label) in zip(axes, panels):
            if key == "share":
                y = [w.get("calls", {}).get(share_of, 0) / max(w["n"], 1) for w in rows]
            else:
                y = [w.get(key, 0.0) for w in rows]
            ax.plot(x, y, label=name, lw=1.2)
            ax.set_ylabel(label, fontsize=8)
            ax.grid(True, color="0.88", lw=0.6)
    axes[0].set_title(title)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes[-1].set_xlabel("queries streamed")
    out = Path(path)
    fig.savefig(out, format="png", metadata={"Software": None})
    return out
