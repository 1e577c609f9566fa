"""Every role × every governance action, through the API and through the admin, allowed or refused exactly as
DESIGN.md says: program managers own policies, templates and freeze windows; reviewers, on-call and program
managers sign the items of their group and approve for their group; authors never approve or sign their own
release; auditors and every role read; someone with no role sees nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.roles import PROGRAM_MANAGERS, REVIEWERS
from governance.models import ApprovalPolicy, ChecklistItem, ChecklistTemplate, FreezeWindow
from tests.conftest import api_as

pytestmark = pytest.mark.django_db

ROLES = ["author", "program_manager", "reviewer", "oncall", "auditor", "outsider"]
EVERY_ROLE = {"author", "program_manager", "reviewer", "oncall", "auditor"}
PM = {"program_manager"}


def _item(release: Any, group: str, *, required: bool = True) -> ChecklistItem:
    return ChecklistItem.objects.filter(
        checklist__release=release, signer_group__name=group, required=required
    ).order_by("position")[0]


def _window(pm: Any) -> FreezeWindow:
    from governance.services import freeze_window_create

    now = timezone.now()
    return freeze_window_create(
        actor=pm, name="Year-end", starts_at=now + timedelta(days=30), ends_at=now + timedelta(days=31), reason="Peak"
    )


# --- API actions: (method, url builder, body builder) → allowed roles --------------------------------------------

API_ACTIONS: dict[str, tuple[str, Any, Any, set[str]]] = {
    "list approval policies": ("get", lambda c: "/api/v1/approval-policies/", None, EVERY_ROLE),
    "create approval policy": (
        "post",
        lambda c: "/api/v1/approval-policies/",
        lambda c: {
            "name": "Solution-specific high",
            "risk_level": "high",
            "solution": c["release"].solution_id,
            "requirements": [{"group": REVIEWERS, "minimum_count": 3}],
        },
        PM,
    ),
    "edit approval policy": (
        "patch",
        lambda c: f"/api/v1/approval-policies/{ApprovalPolicy.objects.get(risk_level='low').pk}/",
        lambda c: {"validity_days": 10},
        PM,
    ),
    "list checklist templates": ("get", lambda c: "/api/v1/checklist-templates/", None, EVERY_ROLE),
    "create checklist template": (
        "post",
        lambda c: "/api/v1/checklist-templates/",
        lambda c: {
            "gate": "launch",
            "risk_level": "low",
            "name": "Launch (low) v2",
            "items": [{"question": "Is the support lead told?", "signer_group": PROGRAM_MANAGERS}],
        },
        PM,
    ),
    "new template version": (
        "post",
        lambda c: f"/api/v1/checklist-templates/{ChecklistTemplate.objects.active().first().pk}/new-version/",
        None,
        PM,
    ),
    "list checklists": ("get", lambda c: "/api/v1/checklists/", None, EVERY_ROLE),
    "list approvals": ("get", lambda c: "/api/v1/approvals/", None, EVERY_ROLE),
    "policy status": ("get", lambda c: f"/api/v1/policy-status/{c['release'].pk}/", None, EVERY_ROLE),
    "sign a reviewers item": (
        "post",
        lambda c: f"/api/v1/checklist-items/{_item(c['release'], REVIEWERS).pk}/sign-off/",
        lambda c: {"evidence_url": "https://wiki.example.com/evidence/1", "note": "ok"},
        {"reviewer"},
    ),
    "sign a program managers item": (
        "post",
        lambda c: f"/api/v1/checklist-items/{_item(c['release'], PROGRAM_MANAGERS).pk}/sign-off/",
        lambda c: {"evidence_url": "https://wiki.example.com/evidence/2"},
        PM,
    ),
    "mark an optional reviewers item N/A": (
        "post",
        lambda c: f"/api/v1/checklist-items/{_item(c['release'], REVIEWERS, required=False).pk}/mark-na/",
        lambda c: {"justification": "No new data category or vendor."},
        {"reviewer"},
    ),
    "approve as program manager": (
        "post",
        lambda c: f"/api/v1/releases/{c['release'].pk}/approve/",
        lambda c: {"group": PROGRAM_MANAGERS, "content_hash": c["release"].content_hash},
        PM,
    ),
    "approve as reviewer": (
        "post",
        lambda c: f"/api/v1/releases/{c['release'].pk}/approve/",
        lambda c: {"group": REVIEWERS, "content_hash": c["release"].content_hash},
        {"reviewer"},
    ),
    "create freeze window": (
        "post",
        lambda c: "/api/v1/freeze-windows/",
        lambda c: {
            "name": "Singles day",
            "starts_at": (timezone.now() + timedelta(days=1)).isoformat(),
            "ends_at": (timezone.now() + timedelta(days=2)).isoformat(),
            "markets": ["CN"],
            "reason": "Peak traffic",
        },
        PM,
    ),
    "cancel freeze window": (
        "post",
        lambda c: f"/api/v1/freeze-windows/{_window(c['pm']).pk}/cancel/",
        lambda c: {"reason": "Sale cancelled"},
        PM,
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(API_ACTIONS))
def test_api_matrix(request, role, action, high_release, program_manager):
    method, url, body, allowed = API_ACTIONS[action]
    user = request.getfixturevalue(role)
    context = {"release": high_release, "pm": program_manager}
    target = url(context)
    payload = body(context) if body else None
    response = getattr(api_as(user), method)(target, payload, format="json")
    if role in allowed:
        assert response.status_code in (200, 201), (role, action, response.status_code, response.content[:300])
    else:
        assert response.status_code == 403, (role, action, response.status_code, response.content[:300])


# --- Admin actions ---------------------------------------------------------------------------------------------


def _admin_get(url_builder: Any) -> Any:
    def run(client: Client, context: dict[str, Any]) -> bool:
        status = client.get(url_builder(context)).status_code
        assert status in (200, 403), status
        return status == 200

    return run


def _admin_sign(group: str) -> Any:
    def run(client: Client, context: dict[str, Any]) -> bool:
        item = _item(context["release"], group)
        client.post(
            reverse("admin:governance_sign_off", args=[item.pk]),
            {"evidence_url": "https://wiki.example.com/e", "note": "ok", "action": "sign", "next": "/admin/"},
        )
        item.refresh_from_db()
        return item.state == "signed"

    return run


def _admin_approve(group: str) -> Any:
    def run(client: Client, context: dict[str, Any]) -> bool:
        release = context["release"]
        client.post(
            reverse("admin:governance_approve", args=[release.pk]),
            {"group": group, "content_hash": release.content_hash, "decision": "approve"},
        )
        return release.approvals.filter(group__name=group).exists()

    return run


def _admin_create_window(client: Client, context: dict[str, Any]) -> bool:
    now = timezone.now()
    client.post(
        reverse("admin:governance_freezewindow_add"),
        {
            "name": "Admin freeze",
            "starts_at_0": (now + timedelta(days=3)).strftime("%Y-%m-%d"),
            "starts_at_1": "00:00:00",
            "ends_at_0": (now + timedelta(days=4)).strftime("%Y-%m-%d"),
            "ends_at_1": "00:00:00",
            "markets": '["US"]',
            "reason": "Launch of the new returns flow",
        },
    )
    return FreezeWindow.objects.filter(name="Admin freeze").exists()


ADMIN_ACTIONS: dict[str, tuple[Any, set[str]]] = {
    "view policies": (_admin_get(lambda c: reverse("admin:governance_approvalpolicy_changelist")), EVERY_ROLE),
    "open add policy": (_admin_get(lambda c: reverse("admin:governance_approvalpolicy_add")), PM),
    "view templates": (_admin_get(lambda c: reverse("admin:governance_checklisttemplate_changelist")), EVERY_ROLE),
    "open add template": (_admin_get(lambda c: reverse("admin:governance_checklisttemplate_add")), PM),
    "view freeze windows": (_admin_get(lambda c: reverse("admin:governance_freezewindow_changelist")), EVERY_ROLE),
    "create freeze window": (_admin_create_window, PM),
    "view approvals": (_admin_get(lambda c: reverse("admin:governance_approval_changelist")), EVERY_ROLE),
    "view checklists": (_admin_get(lambda c: reverse("admin:governance_checklist_changelist")), EVERY_ROLE),
    "awaiting my approval": (
        _admin_get(lambda c: reverse("admin:governance_awaitingmyapproval_changelist")),
        EVERY_ROLE,
    ),
    "awaiting my sign-off": (
        _admin_get(lambda c: reverse("admin:governance_awaitingmysignoff_changelist")),
        EVERY_ROLE,
    ),
    "release page with governance panel": (
        _admin_get(lambda c: reverse("admin:releases_release_change", args=[c["release"].pk])),
        EVERY_ROLE,
    ),
    "sign a reviewers item inline": (_admin_sign(REVIEWERS), {"reviewer"}),
    "sign a program managers item inline": (_admin_sign(PROGRAM_MANAGERS), PM),
    "approve as program manager": (_admin_approve(PROGRAM_MANAGERS), PM),
    "approve as reviewer": (_admin_approve(REVIEWERS), {"reviewer"}),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ADMIN_ACTIONS))
def test_admin_matrix(request, role, action, high_release, program_manager):
    run, allowed = ADMIN_ACTIONS[action]
    user = request.getfixturevalue(role)
    client = Client()
    client.force_login(user)
    assert run(client, {"release": high_release, "pm": program_manager}) == (role in allowed), (role, action)
