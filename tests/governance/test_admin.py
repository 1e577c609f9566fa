from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from core.roles import PROGRAM_MANAGERS, REVIEWERS
from governance import services
from governance.models import (
    Approval,
    ApprovalPolicy,
    Checklist,
    ChecklistItem,
    ChecklistTemplate,
    FreezeWindow,
)
from releases.choices import RiskLevel
from tests.conftest import admin_as
from tests.governance.helpers import approved, submitted

pytestmark = pytest.mark.django_db


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("persona", ["superuser", "program_manager", "reviewer", "auditor"])
def test_every_governance_admin_page_loads(request, persona, author, crew, program_manager):
    release = approved(submitted(author=author, risk_level=RiskLevel.HIGH), crew)
    window = services.freeze_window_create(
        actor=program_manager,
        name="Peak",
        starts_at=timezone.now(),
        ends_at=timezone.now() + timedelta(days=1),
        reason="Sale",
    )
    objects = {
        "approvalpolicy": ApprovalPolicy.objects.first(),
        "checklisttemplate": ChecklistTemplate.objects.first(),
        "freezewindow": window,
        "approval": Approval.objects.first(),
        "checklist": Checklist.objects.first(),
    }
    user = request.getfixturevalue(persona)
    client = admin_as(user)
    urls = [reverse("admin:index")]
    for name, obj in objects.items():
        urls += [
            reverse(f"admin:governance_{name}_changelist"),
            reverse(f"admin:governance_{name}_change", args=[obj.pk]),
            reverse(f"admin:governance_{name}_history", args=[obj.pk]),
        ]
    urls += [
        reverse("admin:governance_approvalpolicy_add"),
        reverse("admin:governance_checklisttemplate_add"),
        reverse("admin:governance_freezewindow_add"),
        reverse("admin:governance_awaitingmyapproval_changelist"),
        reverse("admin:governance_awaitingmysignoff_changelist"),
        reverse("admin:governance_sign_off", args=[ChecklistItem.objects.filter(state="pending").first().pk]),
        reverse("admin:releases_release_change", args=[release.pk]),
    ]
    for url in urls:
        response = client.get(url)
        # Each role sees the pages its view permissions open (the queues: its own work) and is refused the rest;
        # no page errors for anyone.
        assert response.status_code in (200, 302, 403), url
        if persona == "superuser":
            assert response.status_code == 200, url
    for name in objects:
        allowed = user.has_perm(f"governance.view_{name}")
        status = client.get(reverse(f"admin:governance_{name}_changelist")).status_code
        assert status == (200 if allowed else 403), (name, status)
    page = client.get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    assert 'id="governance-panel"' in page and "policy-status" in page and "Rollout readiness" in page
    # History is shown, never editable: a POST to a history page is refused whoever sends it.
    history = reverse("admin:governance_freezewindow_history", args=[window.pk])
    version = window.history.first().history_id
    assert client.post(f"{history}{version}/", {"name": "Rewritten"}).status_code == 403
    window.refresh_from_db()
    assert window.name == "Peak"


def test_work_queues_list_what_waits_for_me(high_release, reviewer, author):
    page = admin_as(reviewer).get(reverse("admin:governance_awaitingmyapproval_changelist")).content.decode()
    assert high_release.title in page
    page = admin_as(author).get(reverse("admin:governance_awaitingmyapproval_changelist")).content.decode()
    assert high_release.title not in page
    queue = admin_as(reviewer).get(reverse("admin:governance_awaitingmysignoff_changelist")).content.decode()
    assert "Has the system prompt passed policy and compliance review?" in queue


def test_release_panel_signs_inline_and_records_decisions(author, crew, program_manager, reviewer, second_reviewer):
    release = submitted(author=author, risk_level=RiskLevel.MEDIUM)
    change_url = reverse("admin:releases_release_change", args=[release.pk])
    page = admin_as(reviewer).get(change_url).content.decode()
    assert 'id="approval-form"' in page and "Sign off" in page
    # The form offers the groups the policy asks for that this user belongs to, by name.
    assert f'<option value="{REVIEWERS}">{REVIEWERS}</option>' in page
    assert f'<option value="{PROGRAM_MANAGERS}">' not in page
    author_page = admin_as(author).get(change_url).content.decode()
    assert 'id="approval-form"' not in author_page and "neither approve it nor sign" in author_page

    # Every pending item, signed from the release page's forms by someone of its group.
    for item in ChecklistItem.objects.filter(checklist__release=release).select_related("signer_group"):
        signer = next(p for p in crew if p.groups.filter(pk=item.signer_group_id).exists())
        response = admin_as(signer).post(
            reverse("admin:governance_sign_off", args=[item.pk]),
            {"evidence_url": "https://wiki.example.com/e", "note": "ok", "action": "sign", "next": change_url},
        )
        assert response.status_code == 302 and response.url == change_url
    assert not ChecklistItem.objects.filter(checklist__release=release, state="pending").exists()

    stale = admin_as(reviewer).post(
        reverse("admin:governance_approve", args=[release.pk]),
        {"group": REVIEWERS, "content_hash": "0" * 64, "decision": "approve"},
    )
    assert any("changed since you looked" in m for m in _messages(stale))
    for user, group in ((reviewer, REVIEWERS), (program_manager, PROGRAM_MANAGERS)):
        admin_as(user).post(
            reverse("admin:governance_approve", args=[release.pk]),
            {"group": group, "content_hash": release.content_hash, "decision": "approve"},
        )
    release.refresh_from_db()
    assert release.status == "approved"
    # Having decided, the reviewer is shown the decision instead of a form the service would refuse.
    decided = admin_as(reviewer).get(change_url).content.decode()
    assert 'id="approval-form"' not in decided and "Your decision: <strong>Approve</strong>" in decided


def test_admin_refusals_come_back_as_messages(high_release, author):
    item = ChecklistItem.objects.filter(checklist__release=high_release).first()
    response = admin_as(author).post(
        reverse("admin:governance_sign_off", args=[item.pk]),
        {"evidence_url": "https://x.example", "action": "sign", "next": "/admin/"},
    )
    assert any("never signs" in m for m in _messages(response))
    item.refresh_from_db()
    assert item.state == "pending"


def test_mark_na_from_the_sign_off_page(high_release, reviewer):
    item = ChecklistItem.objects.filter(checklist__release=high_release, required=False).first()
    admin_as(reviewer).post(
        reverse("admin:governance_sign_off", args=[item.pk]),
        {"na_justification": "No new vendor or data category.", "action": "mark_na", "next": "/admin/"},
    )
    item.refresh_from_db()
    assert item.state == "not_applicable" and item.signed_by == reviewer


def test_policy_admin_saves_with_requirements(program_manager):
    client = admin_as(program_manager)
    response = client.post(
        reverse("admin:governance_approvalpolicy_add"),
        {
            "name": "Emergency (critical)",
            "description": "",
            "risk_level": "critical",
            "is_emergency": "on",
            "validity_days": "2",
            "is_active": "on",
            "requirements-TOTAL_FORMS": "2",
            "requirements-INITIAL_FORMS": "0",
            "requirements-MIN_NUM_FORMS": "0",
            "requirements-MAX_NUM_FORMS": "1000",
            "requirements-0-group": str(program_manager.groups.get().pk),
            "requirements-0-minimum_count": "2",
            "requirements-1-group": "",
            "requirements-1-minimum_count": "1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = ApprovalPolicy.objects.get(name="Emergency (critical)")
    assert [(r.group.name, r.minimum_count) for r in policy.requirements.all()] == [(PROGRAM_MANAGERS, 2)]
    assert policy.history.first().history_user == program_manager


def test_template_admin_actions_version_and_activate(program_manager):
    client = admin_as(program_manager)
    active = ChecklistTemplate.objects.active().get(gate="verification", risk_level="low")
    changelist = reverse("admin:governance_checklisttemplate_changelist")
    client.post(changelist, {"action": "make_new_version", "_selected_action": [active.pk]})
    draft = ChecklistTemplate.objects.get(gate="verification", risk_level="low", status="draft")
    # An active version's change page is read-only; the draft's items are editable.
    assert (
        'name="items-0-question"'
        not in client.get(reverse("admin:governance_checklisttemplate_change", args=[active.pk])).content.decode()
    )
    assert (
        'name="items-0-question"'
        in client.get(reverse("admin:governance_checklisttemplate_change", args=[draft.pk])).content.decode()
    )
    client.post(changelist, {"action": "activate", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    active.refresh_from_db()
    assert (draft.status, active.status) == ("active", "retired")


def test_freeze_window_admin_cancel(program_manager):
    window = services.freeze_window_create(
        actor=program_manager,
        name="Peak",
        starts_at=timezone.now(),
        ends_at=timezone.now() + timedelta(days=1),
        reason="Sale",
        markets=["US"],
    )
    now = window.starts_at
    response = admin_as(program_manager).post(
        reverse("admin:governance_freezewindow_change", args=[window.pk]),
        {
            "name": "Peak",
            "starts_at_0": now.strftime("%Y-%m-%d"),
            "starts_at_1": now.strftime("%H:%M:%S"),
            "ends_at_0": window.ends_at.strftime("%Y-%m-%d"),
            "ends_at_1": window.ends_at.strftime("%H:%M:%S"),
            "markets": '["US"]',
            "reason": "Sale",
            "cancel_reason": "The sale was called off",
        },
    )
    assert response.status_code == 302
    window.refresh_from_db()
    assert window.cancelled_at is not None
    assert FreezeWindow.objects.count() == 1
