"""``field__any=[…]`` (core.lookups): the rows ``field__in`` finds, with the list sent as one array parameter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def users() -> list[User]:
    now = timezone.now()
    made = [UserFactory(username=f"any.{index}") for index in range(5)]
    for index, user in enumerate(made):
        User.objects.filter(pk=user.pk).update(date_joined=now - timedelta(days=index))
    return list(User.objects.filter(pk__in=[u.pk for u in made]).order_by("pk"))


@pytest.mark.parametrize(
    ("field", "pick"),
    [
        ("pk", lambda u: u.pk),  # the primary key (bigint)
        ("id", lambda u: u.pk),
        ("username", lambda u: u.username),  # varchar
        ("date_joined", lambda u: u.date_joined),  # timestamptz
    ],
)
def test_any_finds_what_in_finds(users, field, pick):
    wanted = [pick(u) for u in users[1:4]]
    found = User.objects.filter(**{f"{field}__any": wanted}).order_by("pk")
    assert list(found) == list(User.objects.filter(**{f"{field}__in": wanted}).order_by("pk")) == users[1:4]


def test_an_empty_list_matches_nothing(users):
    assert not User.objects.filter(pk__any=[]).exists()


def test_a_relation_takes_it_too(users):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="any-lookup")
    users[0].groups.add(group)
    assert list(User.groups.through.objects.filter(user_id__any=[users[0].pk]).values_list("group_id", flat=True)) == [
        group.pk
    ]


def test_the_statement_does_not_grow_with_the_list(users):
    if connection.vendor != "postgresql":
        pytest.skip("one array parameter on PostgreSQL; IN elsewhere")
    ids = [users[0].pk, *range(10**9, 10**9 + 4_999)]
    sql, params = User.objects.filter(pk__any=ids).query.sql_with_params()
    assert len(params) == 1 and sql.count("%s") == 1 and " = ANY(%s::integer[])" in sql  # auth_user.id is an AutoField
    assert len(User.objects.filter(pk__in=ids).query.sql_with_params()[1]) == 5_000  # what it replaces
    assert list(User.objects.filter(pk__any=ids)) == [users[0]]
