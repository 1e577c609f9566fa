"""Freeze windows: dates within a few years of now, end after start, market codes validated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from governance.models import FreezeWindow
from tests.conftest import api_as

pytestmark = pytest.mark.django_db

URL = "/api/v1/freeze-windows/"


def _body(**overrides: Any) -> dict[str, Any]:
    now = timezone.now()
    return {
        "name": "Peak",
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
        "markets": ["US"],
        "reason": "Campaign",
        **overrides,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("starts_at", "1900-01-01T00:00:00Z"), ("ends_at", "9999-12-31T23:59:59Z"), ("starts_at", "0001-01-01T00:00:00Z")],
)
def test_a_freeze_window_in_year_9999_or_1900_is_a_400_naming_the_field(
    program_manager: Any, field: str, value: str
) -> None:
    response = api_as(program_manager).post(URL, _body(**{field: value}), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not FreezeWindow.objects.exists()


def test_an_svg_onload_freeze_market_is_a_400_naming_the_field(program_manager: Any) -> None:
    response = api_as(program_manager).post(URL, _body(markets=["<svg/onload=1>"]), format="json")
    assert response.status_code == 400 and "markets" in response.json()


def test_a_read_only_created_by_in_a_freeze_window_write_is_a_400(program_manager: Any) -> None:
    response = api_as(program_manager).post(URL, _body(created_by="someone-else"), format="json")
    assert response.status_code == 400 and "created_by" in response.json()
