"""What every hostile-request module shares: the keys and the texts sent, the campaigns' budgets
(:data:`FULL_BUDGET`), strict JSON reading and raw JSON writing (:class:`Raw`, :func:`dumps`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, settings

from mixllm.serve import ApiKey

TEXT = "Routers route. Each answer comes from the LLM with the best quality for the money."


CLIENT = ApiKey("app", "sk-client-123")


ADMIN = ApiKey("ops", "sk-admin-456", admin=True)


#: A client key with a spending limit (the usage campaign): reservations and charges run.
BUDGETED = ApiKey("metered", "sk-metered-789", spend_limit_usd=1e6)


LIMIT = 1_000_000  # Settings.max_body_bytes


HYPOTHESIS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


#: Requests per campaign in the full run (each campaign asserts it sent at least this many).
#: The first seven are the 2,000 or more of the full run's total; the last four are the
#: families of OpenAI's chat schema and of hostile upstream usage, 100 or more each.
FULL_BUDGET = {
    "chat": 650,
    "feedback": 350,
    "read": 250,
    "routes": 300,
    "admin": 450,
    "special": 17,  # fixed requests: the same in the default run
    "regressions": 19,  # fixed requests: the same in the default run
    "tools": 200,
    "parts": 200,
    "roles": 200,
    "usage": 200,
}


DEFAULT_SHARE = 4  # the default run sends a quarter of each generated campaign


def default_budget(family: str) -> int:
    """The default run's ``n`` for ``family``: a quarter of the full one."""
    return max(FULL_BUDGET[family] // DEFAULT_SHARE, 1)


def more_than(n: int, full_count: int, family: str) -> float:
    """A coverage minimum measured at the full budget (``full_count`` of the family's full
    ``n``), scaled to a campaign of ``n`` requests."""
    return full_count * n / FULL_BUDGET[family]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN and Infinity (not JSON: clients fail on them); nesting
    too deep for it to parse is an assertion error too."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise AssertionError(f"JSON nested too deeply to parse: {text[:200]!r}...") from None


@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as it is (deep nesting, NaN, huge numbers, bad escapes)."""

    text: str


MISSING = Raw("@@missing@@")  # a field left out (HostileUsage)


_RAW = re.compile(r'"@@raw(\d+)@@"')


def dumps(value: Any) -> bytes:
    """JSON with NaN/Infinity literals, lone surrogates escaped, and :class:`Raw` inserted."""
    raws: list[str] = []

    def marker(obj: Any) -> str:
        assert isinstance(obj, Raw), obj
        raws.append(obj.text)
        return f"@@raw{len(raws) - 1}@@"

    text = json.dumps(value, default=marker)
    return _RAW.sub(lambda m: raws[int(m.group(1))], text).encode()
