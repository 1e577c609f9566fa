"""Ownership: the author and named co-authors edit and submit a draft; program managers reassign, never edit."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import AuditEvent
from releases.models import Release
from tests.conftest import api_as
from tests.factories import make_release

pytestmark = pytest.mark.django_db

RELEASES = "/api/v1/releases/"


def test_another_author_patches_puts_and_submits_someone_elses_draft(author: Any, second_author: Any) -> None:
    """The attack: author2 PATCHes, PUTs and submits author's draft (was 200 each)."""
    release = make_release(author=author)
    client = api_as(second_author)
    url = f"{RELEASES}{release.pk}/"
    before = client.get(url).json()
    patched = client.patch(url, {"system_prompt": "Hijacked."}, format="json")
    assert patched.status_code == 403 and patched.json()["code"] == "not_release_owner"
    body = {key: before[key] for key in ("solution", "title", "system_prompt", "model_name", "markets")}
    put = client.put(url, {**body, "title": "Mine now"}, format="json")
    assert put.status_code == 403 and put.json()["code"] == "not_release_owner"
    submitted = client.post(f"{url}submit/")
    assert submitted.status_code == 403 and submitted.json()["code"] == "not_release_owner"
    release.refresh_from_db()
    assert release.status == "draft" and release.system_prompt != "Hijacked." and release.title != "Mine now"


def test_program_manager_reassigns_but_does_not_edit(author: Any, second_author: Any, program_manager: Any) -> None:
    release = make_release(author=author)
    url = f"{RELEASES}{release.pk}/"
    pm = api_as(program_manager)
    assert pm.patch(url, {"title": "PM edit"}, format="json").status_code == 403
    program_manager.groups.add(*author.groups.all())  # even a PM who is also an author edits only their own drafts
    refused = api_as(type(program_manager).objects.get(pk=program_manager.pk)).patch(
        url, {"title": "PM edit"}, format="json"
    )
    assert refused.status_code == 403 and refused.json()["code"] == "not_release_owner"
    assert Release.objects.get(pk=release.pk).title != "PM edit"

    reassigned = pm.post(f"{url}reassign/", {"co_authors": [second_author.pk]}, format="json")
    assert reassigned.status_code == 200, reassigned.content
    assert reassigned.json()["co_authors"] == [second_author.pk]
    event = AuditEvent.objects.filter(action="release.reassigned", object_id=str(release.pk)).get()
    assert event.actor == program_manager and event.data["after"]["co_authors"] == [second_author.pk]
    # The co-author now edits and submits; the history of the co-author set is kept.
    assert api_as(second_author).patch(url, {"title": "Co-authored"}, format="json").status_code == 200
    assert api_as(second_author).post(f"{url}submit/").status_code == 200
    assert Release.history.filter(id=release.pk, history_change_reason="Ownership changed").exists()


def test_a_co_author_cannot_reassign_and_the_author_only_names_co_authors(author: Any, second_author: Any) -> None:
    release = make_release(author=author)
    url = f"{RELEASES}{release.pk}/"
    assert api_as(author).patch(url, {"co_authors": [second_author.pk]}, format="json").status_code == 200
    refused = api_as(second_author).patch(url, {"co_authors": []}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "not_release_owner"
    assert list(Release.objects.get(pk=release.pk).co_authors.all()) == [second_author]
