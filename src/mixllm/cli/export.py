"""``mixllm export``: what a gateway learned (its decisions with feedback, and its shadow calls)
as long-layout outcomes, to refit a router offline with ``mixllm fit``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mixllm.data.dataset import Outcome
from mixllm.errors import ConfigError, DataError

__all__ = ["Exported", "export", "export_outcomes", "outcomes_from_rows"]


@dataclass(frozen=True)
class Exported:
    """What :func:`export_outcomes` wrote: outcomes in all, those of shadow calls, the LLMs,
    and the answered decisions left out because the store kept no prompt for them."""

    path: Path
    outcomes: int
    shadow: int
    llms: int
    without_prompt: int


def outcomes_from_rows(
    rows: Iterable[Mapping[str, Any]], *, include_unrated: bool = False
) -> tuple[list[Outcome], int, int]:
    """Outcomes from the store's :meth:`~mixllm.serve.store.Store.outcome_rows`: the rated
    answers (``quality`` from the feedback, a thumbs up or down as 1 or 0), and with
    ``include_unrated`` the others too (``quality`` unknown). ``cost_usd`` is the feedback's
    when it gave one, else what the answer was charged. A (query, LLM) pair answered more than
    once keeps its latest rated answer. Returns the outcomes, how many are shadow calls, and
    how many answers had no prompt stored."""
    kept: dict[tuple[str, str], tuple[Outcome, bool]] = {}
    without_prompt = 0
    for row in rows:
        if row["prompt"] is None:
            without_prompt += 1
            continue
        quality = row["quality"]
        if quality is None and row["reward"] is not None:
            quality = float(row["reward"])
        cost = row["feedback_cost_usd"] if row["feedback_cost_usd"] is not None else row["cost_usd"]
        if cost is None or (quality is None and not include_unrated):
            continue
        pair = (str(row["query_id"]), str(row["llm"]))
        if quality is None and pair in kept and kept[pair][0].quality is not None:
            continue  # an unrated answer never hides a rated one
        outcome = Outcome(
            query_id=pair[0], prompt=str(row["prompt"]), llm=pair[1], quality=quality,
            cost_usd=float(cost), prompt_tokens=row["prompt_tokens"],
            output_tokens=row["output_tokens"], latency_s=row["latency_s"],
        )  # fmt: skip
        kept.pop(pair, None)  # re-inserted: the file keeps the answers' order
        kept[pair] = (outcome, bool(row["shadow"]))
    outcomes = [o for o, _ in kept.values()]
    return outcomes, sum(shadow for _, shadow in kept.values()), without_prompt


def export_outcomes(
    state: str | Path,
    out: str | Path,
    *,
    since: dt.datetime | None = None,
    include_unrated: bool = False,
) -> Exported:
    """Write the outcomes stored by the gateway whose state folder (or router folder, whose
    state is ``ROUTER_DIR.state``) is ``state`` to ``out`` (``.jsonl`` or ``.csv``, the long
    layout of ``docs/data-format.md``); only decisions made from ``since`` on, when given."""
    from mixllm.data.dataset import Dataset
    from mixllm.data.longform import write_longform
    from mixllm.serve.restore import STORE_FILE
    from mixllm.serve.run import default_state_dir
    from mixllm.serve.store import Store

    folder = Path(state)
    if (folder / "manifest.json").is_file():  # a router folder: its state is beside it
        folder = default_state_dir(folder)
    db = folder / STORE_FILE
    if not db.is_file():
        raise ConfigError(
            f"no gateway store {str(db)!r}; expected the state folder of 'mixllm serve' "
            "(ROUTER_DIR.state, or its --state) or a router folder"
        )
    start = None if since is None else since.timestamp()
    with Store(db) as store:
        rows = store.outcome_rows(since=start)
    outcomes, shadow, without_prompt = outcomes_from_rows(rows, include_unrated=include_unrated)
    if not outcomes:
        if without_prompt:
            raise ConfigError(
                f"store {str(db)!r} kept no prompt text for its {without_prompt} answers "
                "(the gateway ran with [server] store_prompts = false, or before prompts were "
                "stored): there is nothing to export"
            )
        what = "answers" if include_unrated else "answers with feedback or a shadow grade"
        when = "" if since is None else f" since {since.isoformat()}"
        hint = "" if include_unrated else " (--include-unrated adds the unrated ones)"
        raise DataError(f"store {str(db)!r} holds no {what}{when}{hint}")
    data = Dataset.from_outcomes(outcomes, name="gateway")
    path = write_longform(data, out)
    return Exported(path, len(outcomes), shadow, data.n_llms, without_prompt)


def _since(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r}; expected an ISO date or time (2025-01-31, 2025-01-31T12:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


@click.command()
@click.argument("state_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="OUTCOMES.jsonl or .csv (the long layout).")  # fmt: skip
@click.option("--since", default=None, help="Only decisions from this ISO date or time (UTC).")
@click.option("--include-unrated", is_flag=True, help="Also answers without feedback.")
def export(state_dir: Path, out: Path, since: str | None, include_unrated: bool) -> None:
    """Write what the gateway in STATE_DIR learned (its answers with feedback and its graded
    shadow calls) as long-layout outcomes, for 'mixllm fit'. STATE_DIR may be the router folder
    (its state is ROUTER_DIR.state)."""
    done = export_outcomes(state_dir, out, since=_since(since), include_unrated=include_unrated)
    skipped = f"; {done.without_prompt} answers without a stored prompt left out"
    click.echo(
        f"wrote {done.outcomes} outcomes ({done.shadow} from shadow calls) of {done.llms} "
        f"LLMs to {done.path}{skipped if done.without_prompt else ''}"
    )
