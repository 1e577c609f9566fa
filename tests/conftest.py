from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.roles import AUDITORS, AUTHORS, ON_CALL, PROGRAM_MANAGERS, REVIEWERS

from .browser import browser  # noqa: F401 - the one headless Chromium fixture, for every app's browser tests
from .factories import SolutionFactory, UserFactory, make_release


@pytest.fixture
def author(db: Any) -> Any:
    return UserFactory(username="ana.author", groups=[AUTHORS])


@pytest.fixture
def second_author(db: Any) -> Any:
    return UserFactory(username="ben.author", groups=[AUTHORS])


@pytest.fixture
def program_manager(db: Any) -> Any:
    return UserFactory(username="pia.pm", groups=[PROGRAM_MANAGERS])


@pytest.fixture
def second_program_manager(db: Any) -> Any:
    return UserFactory(username="paul.pm", groups=[PROGRAM_MANAGERS])


@pytest.fixture
def reviewer(db: Any) -> Any:
    return UserFactory(username="rita.reviewer", groups=[REVIEWERS])


@pytest.fixture
def second_reviewer(db: Any) -> Any:
    return UserFactory(username="rob.reviewer", groups=[REVIEWERS])


@pytest.fixture
def oncall(db: Any) -> Any:
    return UserFactory(username="otto.oncall", groups=[ON_CALL])


@pytest.fixture
def auditor(db: Any) -> Any:
    return UserFactory(username="aud.auditor", groups=[AUDITORS])


@pytest.fixture
def outsider(db: Any) -> Any:
    return UserFactory(username="olga.outsider", groups=[])


@pytest.fixture
def superuser(db: Any) -> Any:
    return UserFactory(username="root.admin", is_superuser=True)


@pytest.fixture
def solution(db: Any) -> Any:
    return SolutionFactory(key="buyer-refunds", name="Buyer refunds")


@pytest.fixture
def draft_release(author: Any, solution: Any) -> Any:
    return make_release(author=author, solution=solution)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def api_as(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def admin_as(user: Any) -> Client:
    """A browser session logged in as ``user``, for admin pages."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client_for() -> Any:
    """``admin_client_for(user)`` → a logged-in browser client (the one admin-client helper of the suite)."""
    return admin_as


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test restores the migrated data (roles, seeded policies, templates, metrics).

    Threads and worker processes need committed rows, so those tests commit and the database is flushed after
    them. Mixing serialized and plain flushes corrupts content types, so all of them use serialized rollback.
    """
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and marker.kwargs.get("transaction") and not marker.kwargs.get("serialized_rollback"):
            item.add_marker(
                pytest.mark.django_db(*marker.args, **{**marker.kwargs, "serialized_rollback": True}), append=False
            )
