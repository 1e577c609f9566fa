"""Schemathesis against the live OpenAPI schema, authenticated as each role: no input gives a server error, an
HTML page or a response outside the schema. The suite runs a few examples per operation; ``make fuzz`` runs
the same with many (``ROLLGATE_FUZZ_EXAMPLES``)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from core.auth import issue_api_token
from core.roles import AUDITORS, AUTHORS, ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from tests.factories import SolutionFactory, UserFactory, make_release

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("ROLLGATE_FUZZ_EXAMPLES", "3"))
ROLES = {"author": AUTHORS, "pm": PROGRAM_MANAGERS, "reviewer": REVIEWERS, "oncall": ON_CALL, "auditor": AUDITORS}
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


def token_for(user: Any) -> str:
    return issue_api_token(user=user, reason="fuzz").key


@pytest.fixture
def in_process_wsgi() -> Any:
    # Like Django's test client: the WSGI handler must not close the test's connection between requests.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(db: Any) -> dict[str, str]:
    """Something for every path to find: users of each role (and a superuser), a solution and releases."""
    users = {name: UserFactory(username=f"fuzz.{name}", groups=[group]) for name, group in ROLES.items()}
    users["admin"] = UserFactory(username="fuzz.admin", is_superuser=True)
    solution = SolutionFactory(key="fuzz-solution")
    make_release(author=users["author"], solution=solution)
    return {name: token_for(user) for name, user in users.items()}


# Generated inputs depend only on the schema (derandomized), not on who sends them: draw each operation's cases
# once per process and replay them as every role, instead of paying Hypothesis's generation once per role.
_CASES: dict[str, list[Any]] = {}


def _cases(operation: Any) -> list[Any]:
    if operation.label not in _CASES:
        drawn: list[Any] = []

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def collect(case: Any) -> None:
            drawn.append(case)

        collect()
        _CASES[operation.label] = drawn
    return _CASES[operation.label]


def _fuzz_operation(operation: Any, headers: dict[str, str]) -> None:
    cases = _cases(operation)
    assert cases, f"{operation.label}: no input generated"
    for case in cases:
        # Each request in its own savepoint, rolled back: in production every request has its own transaction,
        # so one request's database error never poisons the next, and the world stays as the fixture made it.
        with transaction.atomic():
            response = case.call(headers=headers)
            transaction.set_rollback(True)
        case.validate_response(response, checks=CHECKS)


def _summary(exc: BaseException) -> str:
    """The failure's kind, message and the curl that reproduces it, without the schemas it printed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    wanted = [line for line in lines if line.startswith(("- ", "curl ")) or "is not" in line or "Server error" in line]
    return " | ".join(wanted[:6]) or lines[0]


@pytest.mark.parametrize("role", [*ROLES, "admin"])
def test_no_input_breaks_the_api(fuzz_world: dict[str, str], in_process_wsgi: Any, role: str) -> None:
    headers = {"Authorization": f"Token {fuzz_world[role]}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", in_process_wsgi, headers=headers)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz_operation(operation, headers)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {_summary(exc)}")
    assert operations > 40
    assert not failures, "\n\n".join(failures)
