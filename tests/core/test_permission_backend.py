"""RolePermissionBackend answers what Django's ModelBackend answers, in one query (core.auth)."""

from __future__ import annotations

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.auth import RolePermissionBackend
from core.roles import AUTHORS, REVIEWERS
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # no permission cache


@pytest.mark.parametrize(
    "make_user",
    [
        lambda: UserFactory(username="both.roles", groups=[AUTHORS, REVIEWERS]),
        lambda: UserFactory(username="no.role", groups=[]),
        lambda: UserFactory(username="root", is_superuser=True),
        lambda: UserFactory(username="gone", groups=[AUTHORS], is_active=False),
    ],
)
def test_same_permissions_as_model_backend(make_user):
    user = make_user()
    user.user_permissions.add(Permission.objects.get(codename="emergency_stop"))
    expected = ModelBackend().get_all_permissions(_fresh(user))
    assert RolePermissionBackend().get_all_permissions(_fresh(user)) == expected
    if user.is_active and not user.is_superuser:
        assert "releases.emergency_stop" in expected


def test_one_query_per_user_object():
    user = _fresh(UserFactory(username="two.groups", groups=[AUTHORS, REVIEWERS]))
    with CaptureQueriesContext(connection) as queries:
        assert user.has_perm("releases.approve_release") and user.has_perm("releases.submit_release")
        assert not user.has_perm("releases.emergency_stop")
    assert len(queries.captured_queries) == 1


def test_a_removed_role_counts_from_the_next_request():
    user = UserFactory(username="leaving", groups=[REVIEWERS])
    assert _fresh(user).has_perm("releases.approve_release")
    user.groups.clear()
    assert not _fresh(user).has_perm("releases.approve_release")
