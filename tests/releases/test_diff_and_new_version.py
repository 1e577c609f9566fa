"""What changed between releases (the diff: service-free read, admin page, API) and a new draft from a release
(service, admin button, API action)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.models import AuditEvent
from releases import services
from releases.choices import ReleaseStatus as S
from releases.diff import release_diff
from releases.models import Release
from tests.conftest import admin_as, api_as
from tests.factories import advance_release, make_release

pytestmark = pytest.mark.django_db


@pytest.fixture
def launched(author, solution, program_manager):
    release = make_release(author=author, solution=solution)
    return advance_release(release, S.LAUNCHED, program_manager=program_manager)


def test_a_new_version_copies_content_and_stages_and_its_diff_is_empty_until_edited(launched, second_author):
    draft = services.release_new_version(release=launched, actor=second_author)
    assert (draft.version, draft.status, draft.author_id) == (launched.version + 1, S.DRAFT, second_author.pk)
    assert draft.content_snapshot() == launched.content_snapshot()
    assert draft.content_hash == launched.content_hash
    assert release_diff(release=draft).is_empty
    assert release_diff(release=draft).against == launched
    event = AuditEvent.objects.filter(action="release.created", release_id=draft.pk).get()
    assert event.data["based_on"] == {"release": launched.pk, "version": launched.version}

    draft = services.release_update(
        release=draft,
        actor=second_author,
        system_prompt=launched.system_prompt + "\nNever promise a refund before checking eligibility.",
        tools=["order_lookup", "carrier_status"],
        model_parameters={"temperature": 0.1, "max_tokens": 400},
        markets=["US", "DE", "FR"],
    )
    diff = release_diff(release=draft)
    prompt = next(t for t in diff.texts if t.name == "Prompt")
    assert (prompt.added, prompt.removed) == (1, 0)
    assert prompt.rows[-1].kind == "insert" and prompt.rows[-1].right.startswith("Never promise")
    assert "+Never promise a refund" in prompt.unified
    fields = {change.name: change for change in diff.fields}
    assert (fields["Tools"].added, fields["Tools"].removed) == (["carrier_status"], ["refund_policy"])
    assert fields["Markets"].added == ["FR"]
    assert (fields["Parameters"].added, fields["Parameters"].changed) == (["max_tokens"], ["temperature"])
    assert "Stages" not in fields and "Model" not in fields


def test_the_diff_against_a_chosen_version_and_the_first_release(launched, author):
    first = launched
    assert release_diff(release=first).against is None
    assert "first release" in release_diff(release=first).summary()
    second = services.release_new_version(release=first, actor=author)
    second = services.release_update(release=second, actor=author, model_name="gpt-4.1")
    third = services.release_new_version(release=second, actor=author)
    assert release_diff(release=third).is_empty
    against_first = release_diff(release=third, against=first)
    assert [c.name for c in against_first.fields] == ["Model"]


def test_a_new_version_needs_the_right_to_create_releases(launched, reviewer):
    before = Release.objects.count()
    response = api_as(reviewer).post(f"/api/v1/releases/{launched.pk}/new-version/")
    assert response.status_code == 403
    assert Release.objects.count() == before


def test_api_diff_and_new_version(launched, author, second_author):
    created = api_as(second_author).post(f"/api/v1/releases/{launched.pk}/new-version/")
    assert created.status_code == 201, created.content
    draft_id = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["author"] == str(second_author)
    api_as(second_author).patch(
        f"/api/v1/releases/{draft_id}/", {"system_prompt": "Short <b>prompt</b>."}, format="json"
    )
    response = api_as(author).get(f"/api/v1/releases/{draft_id}/diff/")
    assert response.status_code == 200
    body = response.json()
    assert body["against"] == launched.pk and body["empty"] is False
    prompt = next(t for t in body["texts"] if t["name"] == "Prompt")
    assert "+Short <b>prompt</b>." in prompt["unified"]
    same = api_as(author).get(f"/api/v1/releases/{draft_id}/diff/?against={draft_id}")
    assert same.json()["empty"] is True
    other = make_release(author=author)  # another solution
    assert api_as(author).get(f"/api/v1/releases/{draft_id}/diff/?against={other.pk}").status_code == 400
    assert api_as(author).get(f"/api/v1/releases/{draft_id}/diff/?against=abc").status_code == 400


def test_admin_diff_is_on_the_release_page_escaped_and_on_its_own_page(launched, second_author, reviewer):
    draft = services.release_new_version(release=launched, actor=second_author)
    services.release_update(release=draft, actor=second_author, system_prompt="<script>alert(1)</script>")
    client = admin_as(reviewer)
    page = client.get(reverse("admin:releases_release_change", args=[draft.pk])).content.decode()
    assert 'id="diff"' in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    diff_page = client.get(reverse("admin:releases_release_diff", args=[draft.pk]) + f"?against={launched.pk}")
    assert diff_page.status_code == 200
    assert f"against v{launched.version}" in diff_page.content.decode()


def test_admin_new_version_button(launched, second_author, reviewer):
    client = admin_as(second_author)
    page = client.get(reverse("admin:releases_release_change", args=[launched.pk])).content.decode()
    assert 'id="new-version-button"' in page
    response = client.post(reverse("admin:releases_release_new_version", args=[launched.pk]))
    draft = Release.objects.get(solution=launched.solution, version=launched.version + 1)
    assert response.url == reverse("admin:releases_release_change", args=[draft.pk])
    assert draft.author_id == second_author.pk
    # A reviewer creates no releases: no button, and a forged POST writes nothing.
    reviewer_client = admin_as(reviewer)
    page = reviewer_client.get(reverse("admin:releases_release_change", args=[launched.pk])).content.decode()
    assert 'id="new-version-button"' not in page
    reviewer_client.post(reverse("admin:releases_release_new_version", args=[launched.pk]))
    assert Release.objects.filter(solution=launched.solution).count() == 2
