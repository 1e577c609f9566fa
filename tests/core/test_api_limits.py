"""API input limits: nesting depth, body size, an unreachable database and page size all answer JSON."""

from __future__ import annotations

import io
import json
import sys
from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from config.error_views import bad_request, server_error
from core.api.audit_views import AuditEventViewSet
from core.api.parsers import BoundedJSONParser, json_nesting_depth
from core.audit import audit_record
from tests.conftest import api_as

pytestmark = pytest.mark.django_db

SOLUTIONS = "/api/v1/solutions/"
AUDIT = "/api/v1/audit-events/"


def _assert_json(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert body["code"] == code, body
    return body


def test_hundred_thousand_deep_json_is_a_400_not_a_recursion_error(author):
    depth = 100_000
    body = "[" * depth + "]" * depth
    response = api_as(author).post(SOLUTIONS, data=body, content_type="application/json")
    detail = _assert_json(response, 400, "json_too_deep")["detail"]
    assert "100000 levels" in detail


def test_just_over_the_depth_limit_is_refused_and_at_it_accepted(author, settings):
    settings.API_JSON_MAX_DEPTH = 4
    client = api_as(author)
    too_deep = {"key": "k", "name": "n", "x": [[[[1]]]]}  # the object plus four arrays: five levels
    _assert_json(
        client.post(SOLUTIONS, data=json.dumps(too_deep), content_type="application/json"), 400, "json_too_deep"
    )
    at_limit = {"key": "deep-ok", "name": "Deep OK", "audience": "buyers", "x": [[[1]]]}
    response = client.post(SOLUTIONS, data=json.dumps(at_limit), content_type="application/json")
    assert response.status_code != 400 or "json_too_deep" not in response.content.decode()


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert json_nesting_depth(b'{"title": "[[[[{{{{ \\" ]]]] [[", "n": [1]}') == 2
    assert json_nesting_depth(b"42") == 0


def test_documented_batch_of_10000_rows_fits_under_the_body_limit(settings):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    row = {
        "release": 123456,
        "metric": "containment_rate",
        "market": "US",
        "arm": "treatment",
        "source": "contact-center-warehouse.hourly-rollup",
        "window_start": now.isoformat(),
        "window_end": (now + timedelta(hours=1)).isoformat(),
        "numerator": 123456,
        "denominator": 234567,
    }
    batch = json.dumps([row] * 10_000).encode()
    # Django's default (2.5 MB) refused this documented batch with an HTML 400.
    assert len(batch) > 2_621_440
    assert len(batch) <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    parsed = BoundedJSONParser().parse(io.BytesIO(batch), "application/json", {})
    assert len(parsed) == 10_000


def test_oversized_body_is_a_json_413_not_an_html_400(oncall, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps([{"metric": "error_rate", "pad": "x" * 200}] * 100)
    response = api_as(oncall).post("/api/v1/metric-samples/", data=body, content_type="application/json")
    _assert_json(response, 413, "payload_too_large")


def test_oversized_form_body_is_a_json_413(author, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = api_as(author).post(
        SOLUTIONS, data="name=" + "x" * 20_000, content_type="application/x-www-form-urlencoded"
    )
    _assert_json(response, 413, "payload_too_large")


def test_body_refused_while_read_outside_a_view_is_a_json_413():
    request = RequestFactory().post(SOLUTIONS)
    _assert_json(bad_request(request, RequestDataTooBig("too big")), 413, "payload_too_large")
    html = bad_request(RequestFactory().post("/admin/"), RequestDataTooBig("too big"))
    assert html.status_code == 400 and not html["Content-Type"].startswith("application/json")


def test_dropped_database_connection_is_a_json_503(auditor):
    with mock.patch.object(
        AuditEventViewSet, "get_queryset", side_effect=OperationalError("server closed the connection unexpectedly")
    ):
        response = api_as(auditor).get(AUDIT)
    _assert_json(response, 503, "database_unavailable")
    assert response["Retry-After"]


def test_database_failure_outside_a_view_is_a_json_503():
    request = RequestFactory().get(AUDIT)
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        assert sys.exc_info()[0] is OperationalError
        response = server_error(request)
    _assert_json(response, 503, "database_unavailable")


def test_unexpected_error_under_api_is_json_and_still_raised_for_tests(auditor):
    client = api_as(auditor)
    with mock.patch.object(AuditEventViewSet, "get_queryset", side_effect=RuntimeError("bug")):
        with pytest.raises(RuntimeError):
            client.get(AUDIT)
        quiet = APIClient(raise_request_exception=False)
        quiet.force_authenticate(user=auditor)
        _assert_json(quiet.get(AUDIT), 500, "server_error")


def test_huge_limit_returns_at_most_the_page_size_cap(auditor, settings):
    settings.API_MAX_PAGE_SIZE = 5
    for index in range(8):
        audit_record(actor=None, action=f"test.event_{index}", obj=auditor)
    response = api_as(auditor).get(AUDIT, {"limit": 1_000_000})
    assert response.status_code == 200
    assert response.data["count"] >= 8
    assert len(response.data["results"]) == 5


def test_default_page_size_cap_is_500(settings):
    assert settings.API_MAX_PAGE_SIZE == 500


def test_an_unknown_api_path_is_a_json_404_not_an_html_page(auditor):
    response = api_as(auditor).get("/api/v1/releases//promote/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"
