"""The orjson renderer writes what DRF's JSONRenderer writes (core.api.renderers)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from core.api.renderers import OrjsonRenderer
from releases.choices import ReleaseStatus

PAYLOAD = ReturnDict(
    {
        "count": 2,
        "results": ReturnList(
            [
                {
                    "when": datetime(2026, 11, 27, 3, 4, 5, 123456, tzinfo=UTC),
                    "naive": datetime(2026, 11, 27, 3, 4, 5),
                    "day": date(2026, 11, 27),
                    "at": time(3, 4, 5, 6789),
                    "hold": timedelta(hours=1, seconds=30),
                    "amount": Decimal("1.50"),
                    "id": uuid.UUID(int=7),
                    "status": ReleaseStatus.ROLLING_OUT,
                    "detail": gettext_lazy("This field is required."),
                    "text": "Grüße, 東京 and a line separator \u2028 and a paragraph separator \u2029",
                    "nested": {"list": [1, 2.5, None, True], "tuple": (1, 2), 3: "int key"},
                },
            ],
            serializer=None,
        ),
    },
    serializer=None,
)


def test_same_bytes_as_json_renderer():
    assert OrjsonRenderer().render(PAYLOAD) == JSONRenderer().render(PAYLOAD)


@pytest.mark.parametrize(
    ("data", "media_type", "context"),
    [
        (PAYLOAD, "application/json; indent=4", {}),  # an indented answer asked for in Accept
        (PAYLOAD, "application/json", {"indent": 4}),  # the browsable API's
        ({"big": 2**70}, "application/json", {}),  # beyond orjson's 64-bit integers
    ],
)
def test_falls_back_to_json_renderer(data, media_type, context):
    rendered = OrjsonRenderer().render(data, media_type, context)
    assert rendered == JSONRenderer().render(data, media_type, context)
    if "indent" in media_type or context:
        assert b"\n    " in rendered


def test_nothing_is_empty():
    assert OrjsonRenderer().render(None) == b""


@pytest.mark.django_db
def test_the_api_answers_through_it(author, solution):
    from tests.conftest import api_as
    from tests.factories import make_release

    make_release(author=author, solution=solution, title="Grüße \u2028")
    response = api_as(author).get("/api/v1/releases/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert isinstance(response.accepted_renderer, OrjsonRenderer)
    assert response.content == JSONRenderer().render(response.data)
