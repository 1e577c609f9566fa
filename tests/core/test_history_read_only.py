"""History pages show what a row was and never write it, for every role, superusers included (DESIGN: no revert).

django-simple-history's history form view saves a POSTed form for anyone with view permission; these are the
attacks that worked before: an auditor re-pointing a notification endpoint, un-dismissing an approval and
re-opening a passed checklist by posting a history form back."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.urls import reverse

from core.admin_support import ReadOnlyHistoryMixin
from core.models import AuditEvent
from governance.models import Approval, Checklist, ChecklistGate, ChecklistStatus
from governance.services import approval_record
from releases import services as release_services
from releases.choices import ReleaseStatus
from tests.conftest import admin_as
from tests.factories import advance_release, make_release

pytestmark = pytest.mark.django_db


def test_every_history_tracked_admin_is_read_only() -> None:
    tracked = [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if hasattr(model, "history") and hasattr(model_admin, "history_form_view")
    ]
    assert len(tracked) >= 10
    writable = [
        model._meta.label for model, model_admin in tracked if not isinstance(model_admin, ReadOnlyHistoryMixin)
    ]
    assert writable == []


def _history_post(user: Any, obj: Any, changes: dict[str, Any]) -> Any:
    record = obj.history.earliest()
    url = reverse(
        f"admin:{obj._meta.app_label}_{obj._meta.model_name}_simple_history", args=[obj.pk, record.history_id]
    )
    client = admin_as(user)
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {key: value for key, value in form.initial.items() if value is not None}
    data.update(changes)
    return client.post(url, data)


def test_auditor_cannot_undismiss_an_approval_through_the_history_form(
    auditor: Any, superuser: Any, author: Any, reviewer: Any, program_manager: Any
) -> None:
    release = release_services.release_submit(release=make_release(author=author), actor=author)
    approval = approval_record(
        release=release, approver=program_manager, group="Program managers", content_hash=release.content_hash
    )
    if release.status == ReleaseStatus.IN_REVIEW:
        release_services.release_request_changes(release=release, actor=reviewer, reason="Tighten the prompt")
    approval.refresh_from_db()
    assert approval.dismissed_at is not None
    events_before = AuditEvent.objects.count()
    for user in (auditor, reviewer, superuser):
        response = _history_post(user, approval, {"dismissed_at": "", "dismissed_reason": ""})
        assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.dismissed_at is not None
    assert AuditEvent.objects.count() == events_before


def test_reviewer_cannot_reopen_a_passed_checklist_through_the_history_form(
    reviewer: Any, superuser: Any, author: Any, program_manager: Any
) -> None:
    release = advance_release(make_release(author=author), ReleaseStatus.APPROVED, program_manager=program_manager)
    checklist = Checklist.objects.get(release=release, gate=ChecklistGate.REVIEW)
    assert checklist.status != ChecklistStatus.OPEN
    for user in (reviewer, superuser):
        assert _history_post(user, checklist, {"status": ChecklistStatus.OPEN}).status_code == 403
    checklist.refresh_from_db()
    assert checklist.status != ChecklistStatus.OPEN


def test_history_pages_still_show_what_a_row_was(auditor: Any, author: Any) -> None:
    release = make_release(author=author)
    record = release.history.earliest()
    url = reverse("admin:releases_release_simple_history", args=[release.pk, record.history_id])
    page = admin_as(auditor).get(url)
    assert page.status_code == 200
    assert b"Revert" not in page.content
    assert Approval.objects.count() == 0
