"""The filter backend builds a filter set only when the request names a filter (core.api.filters)."""

from __future__ import annotations

from unittest import mock

import pytest
from django_filters.rest_framework import DjangoFilterBackend

from tests.conftest import api_as
from tests.factories import advance_release, make_release

pytestmark = pytest.mark.django_db
RELEASES = "/api/v1/releases/"


def test_no_filter_named_builds_no_filter_set(author, solution):
    make_release(author=author, solution=solution)
    with mock.patch.object(DjangoFilterBackend, "get_filterset", autospec=True) as get_filterset:
        response = api_as(author).get(RELEASES, {"limit": 10, "ordering": "version"})
    assert response.status_code == 200 and response.data["count"] == 1
    get_filterset.assert_not_called()


def test_named_filters_still_filter_and_refuse(author, program_manager, solution):
    advance_release(make_release(author=author, solution=solution), "in_review", program_manager=program_manager)
    make_release(author=author, solution=solution)
    client = api_as(program_manager)
    assert client.get(RELEASES, {"status": "draft"}).data["count"] == 1
    assert client.get(RELEASES).data["count"] == 2
    assert client.get(RELEASES, {"status": "nonsense"}).status_code == 400
    assert client.get(RELEASES, {"solution": "not-a-number"}).status_code == 400
