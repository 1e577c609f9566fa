"""Input the API and services must refuse with a 400 naming the field: absurd durations, unknown market codes,
read-only or unknown fields. Never a 500, never a silent 200."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.errors import DomainValidationError
from releases import services
from releases.models import AutomationSolution, Release
from tests.conftest import api_as
from tests.factories import make_release

pytestmark = pytest.mark.django_db

RELEASES = "/api/v1/releases/"
ABSURD_DURATIONS = ["999999999 00:00:00", "-1 00:00:00", "9999999999 00:00:00", "0:00:01"]


def _payload(solution_id: int, **overrides: Any) -> dict[str, Any]:
    return {
        "solution": solution_id,
        "title": "Ask for the order number first",
        "system_prompt": "You are the order-status assistant.",
        "model_name": "gpt-4o-2024-08-06",
        "markets": ["US", "DE"],
        "stages": [{"name": "Full", "traffic_percent": 100}],
        **overrides,
    }


@pytest.mark.parametrize("value", ABSURD_DURATIONS)
def test_a_999999999_day_or_negative_verification_window_is_a_400_naming_the_field(
    value: str, author: Any, solution: Any
) -> None:
    response = api_as(author).post(RELEASES, _payload(solution.pk, verification_window=value), format="json")
    assert response.status_code == 400, response.content
    assert "verification_window" in response.json()
    release = make_release(author=author, solution=solution)
    patched = api_as(author).patch(f"{RELEASES}{release.pk}/", {"verification_window": value}, format="json")
    assert patched.status_code == 400 and "verification_window" in patched.json()


@pytest.mark.parametrize("value", ABSURD_DURATIONS[:3])
def test_a_999999999_day_or_negative_stage_hold_is_a_400_naming_the_field(
    value: str, author: Any, solution: Any
) -> None:
    stages = [{"name": "Canary", "traffic_percent": 5, "min_hold": value}, {"name": "Full", "traffic_percent": 100}]
    response = api_as(author).post(RELEASES, _payload(solution.pk, stages=stages), format="json")
    assert response.status_code == 400, response.content
    assert "stages" in response.json()


def test_the_services_refuse_absurd_durations_whatever_the_caller(author: Any) -> None:
    release = make_release(author=author)
    with pytest.raises(DomainValidationError) as window:
        services.release_update(release=release, actor=author, verification_window=timedelta(days=999_999_999))
    assert "verification_window" in window.value.errors
    long_hold = (services.StageSpec("Canary", 5, min_hold=timedelta(days=999_999_999)), services.StageSpec("Full", 100))
    with pytest.raises(DomainValidationError) as hold:
        services.release_update(release=release, actor=author, stages=long_hold)
    assert "minimum hold" in " ".join(hold.value.errors["stages"])


def test_an_svg_onload_market_is_a_400_naming_the_field(author: Any, solution: Any, program_manager: Any) -> None:
    client = api_as(author)
    attack = "<svg/onload=1>"
    response = client.post(RELEASES, _payload(solution.pk, markets=["US", attack]), format="json")
    assert response.status_code == 400 and "markets" in response.json()
    stages = [{"name": "Full", "traffic_percent": 100, "markets": [attack]}]
    response = client.post(RELEASES, _payload(solution.pk, stages=stages), format="json")
    assert response.status_code == 400 and "stages" in response.json()
    assert not Release.objects.exists()


def test_a_patch_of_a_solutions_key_is_a_400_not_a_silent_200(program_manager: Any, solution: Any) -> None:
    url = f"/api/v1/solutions/{solution.pk}/"
    client = api_as(program_manager)
    response = client.patch(url, {"key": "hijacked-key"}, format="json")
    assert response.status_code == 400 and "key" in response.json()
    assert AutomationSolution.objects.get(pk=solution.pk).key == solution.key
    unknown = client.patch(url, {"nmae": "typo"}, format="json")
    assert unknown.status_code == 400 and "nmae" in unknown.json()
    # Sending back what was read is not a change: a PUT round-trip keeps working.
    current = client.get(url).json()
    assert client.put(url, {**current, "name": "Renamed"}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "approved"), ("content_hash", "0" * 64), ("version", 99), ("author", "someone"), ("id", 4242)],
)
def test_a_release_patch_of_a_read_only_field_is_a_400_naming_it(author: Any, field: str, value: Any) -> None:
    release = make_release(author=author)
    response = api_as(author).patch(f"{RELEASES}{release.pk}/", {field: value}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    fresh = Release.objects.get(pk=release.pk)
    assert (fresh.status, fresh.content_hash, fresh.version) == (release.status, release.content_hash, release.version)


def test_a_put_of_what_was_read_is_accepted(author: Any) -> None:
    release = make_release(author=author)
    client = api_as(author)
    body = client.get(f"{RELEASES}{release.pk}/").json()
    response = client.put(f"{RELEASES}{release.pk}/", {**body, "title": "Round trip"}, format="json")
    assert response.status_code == 200, response.content
    assert Release.objects.get(pk=release.pk).title == "Round trip"
    body = client.get(f"{RELEASES}{release.pk}/").json()
    unknown_in_stage = {**body, "stages": [{**body["stages"][0], "trafic_percent": 5}, *body["stages"][1:]]}
    refused = client.put(f"{RELEASES}{release.pk}/", unknown_in_stage, format="json")
    assert refused.status_code == 400 and "trafic_percent" in str(refused.json())
