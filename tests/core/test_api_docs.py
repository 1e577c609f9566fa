"""The API docs work offline: Swagger UI is served from our static files, never from a CDN."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders

from tests.conftest import api_as

pytestmark = pytest.mark.django_db


def test_swagger_ui_loads_no_code_from_a_cdn(auditor):
    response = api_as(auditor).get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    external = re.findall(r"""(?:src|href)=["']?(?:https?:)?//[^"'\s>]+""", html)
    assert external == []
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
    assets = re.findall(r"/static/(drf_spectacular_sidecar/swagger-ui-dist/[^\"'\s]+\.js)", html)
    assert assets, html[:2000]
    for asset in assets:
        assert finders.find(asset), asset
