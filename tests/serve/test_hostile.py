"""Hostile input against a real gateway: thousands of generated malformed or hostile requests
(their generators and the check of each answer: :mod:`tests.serve.hostile_requests` and the
``tests/serve/hostile_*.py`` modules it imports).

Each answer must be a proper 2xx or a 4xx with a JSON error, never a 5xx (the hostile-usage
family also accepts a 503 JSON), and the gateway must answer ``/healthz`` afterwards. The
default run sends a quarter of each generated campaign; the full budgets run in the tests
marked slow (they still run in CI): ``test_full_budget_of_2000_requests_or_more`` for the
original campaigns, and one full run per family of OpenAI's chat schema and of hostile usage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve import hostile_openai, hostile_usage
from tests.serve import hostile_requests as hr
from tests.serve import hostile_target as servers
from tests.serve.hostile_base import FULL_BUDGET, default_budget
from tests.serve.hostile_target import HostileUsage, Target

SCHEMA_FAMILIES = {
    "tools": hostile_openai.tools_campaign,
    "parts": hostile_openai.parts_campaign,
    "roles": hostile_openai.roles_campaign,
}
#: New families that fail today (the gateway is being fixed): remove an entry once it passes.
FAILING: dict[str, str] = {}  # family -> what fails today (marked xfail, strict)


def _marks(family: str) -> Any:
    reason = FAILING.get(family)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


# -- the servers -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with servers.strict_upstream() as base:
        yield base


@pytest.fixture(scope="module")
def target(
    fitted_dir: Path, tmp_path_factory: pytest.TempPathFactory, upstream: str
) -> Iterator[Target]:
    """One gateway for the chat, feedback, read-only, routing and chat-schema campaigns."""
    yield from servers.serve(fitted_dir, tmp_path_factory.mktemp("hostile"), upstream)


@pytest.fixture(scope="module")
def admin_target(
    fitted_dir: Path, tmp_path_factory: pytest.TempPathFactory, upstream: str
) -> Iterator[Target]:
    """A second gateway for the admin API (which adds and removes LLMs, changes defaults)."""
    yield from servers.serve(fitted_dir, tmp_path_factory.mktemp("hostile-admin"), upstream)


@pytest.fixture(scope="module")
def usage() -> HostileUsage:
    """What the hostile-usage upstream reports next."""
    return HostileUsage()


@pytest.fixture(scope="module")
def usage_target(
    fitted_dir: Path, tmp_path_factory: pytest.TempPathFactory, usage: HostileUsage
) -> Iterator[Target]:
    """A gateway whose every LLM is served by an upstream that reports hostile usage; a 503
    JSON (no upstream left healthy) is an acceptable answer there."""
    with servers.hostile_usage_upstream(usage) as base:
        folder = tmp_path_factory.mktemp("hostile-usage")
        yield from servers.serve(
            fitted_dir, folder, base, over_http=None, allowed_5xx=frozenset({503})
        )


# -- the default run: a quarter of each campaign ----------------------------------------------
def test_chat_completions_hostile(target: Target) -> None:
    hr.chat_campaign(target, default_budget("chat"))


def test_feedback_hostile(target: Target) -> None:
    hr.feedback_campaign(target, default_budget("feedback"))


def test_every_operation_of_the_openapi_schema_is_attacked(target: Target) -> None:
    schema = target.http.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert operations == hr.attacked_operations()


def test_models_healthz_metrics_hostile(target: Target) -> None:
    hr.read_campaign(target, default_budget("read"))


def test_wrong_methods_and_unknown_paths(target: Target) -> None:
    hr.routes_campaign(target, default_budget("routes"))


def test_admin_api_hostile(admin_target: Target) -> None:
    hr.admin_campaign(admin_target, default_budget("admin"))


def test_huge_and_deep_bodies(target: Target) -> None:
    hr.huge_and_deep_bodies(target)


def test_what_broke_before_is_a_400(target: Target) -> None:
    hr.past_regressions(target)


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=_marks(f), id=f) for f in SCHEMA_FAMILIES]
)
def test_chat_schema_family_hostile(target: Target, family: str) -> None:
    """Tools, content parts and roles of OpenAI's chat schema, valid-looking and malformed."""
    SCHEMA_FAMILIES[family](target, default_budget(family))


@pytest.mark.parametrize("family", [pytest.param("usage", marks=_marks("usage"), id="usage")])
def test_hostile_upstream_usage(usage_target: Target, usage: HostileUsage, family: str) -> None:
    hostile_usage.usage_campaign(usage_target, usage, default_budget(family))


# -- the full budgets (slow; still run in CI) --------------------------------------------------
@pytest.mark.slow
def test_full_budget_of_2000_requests_or_more(target: Target, admin_target: Target) -> None:
    """Every original campaign at its full budget: 2,000 requests or more in all."""
    sent = {
        "chat": hr.chat_campaign(target, FULL_BUDGET["chat"]),
        "feedback": hr.feedback_campaign(target, FULL_BUDGET["feedback"]),
        "read": hr.read_campaign(target, FULL_BUDGET["read"]),
        "routes": hr.routes_campaign(target, FULL_BUDGET["routes"]),
        "admin": hr.admin_campaign(admin_target, FULL_BUDGET["admin"]),
        "special": hr.huge_and_deep_bodies(target),
        "regressions": hr.past_regressions(target),
    }
    assert all(sent[f] >= FULL_BUDGET[f] for f in sent), sent
    assert sum(sent.values()) >= 2_000, sent


@pytest.mark.slow
@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=_marks(f), id=f) for f in SCHEMA_FAMILIES]
)
def test_chat_schema_family_full_budget(target: Target, family: str) -> None:
    assert SCHEMA_FAMILIES[family](target, FULL_BUDGET[family]) >= FULL_BUDGET[family]


@pytest.mark.slow
@pytest.mark.parametrize("family", [pytest.param("usage", marks=_marks("usage"), id="usage")])
def test_hostile_upstream_usage_full_budget(
    usage_target: Target, usage: HostileUsage, family: str
) -> None:
    assert (
        hostile_usage.usage_campaign(usage_target, usage, FULL_BUDGET[family])
        >= FULL_BUDGET[family]
    )
