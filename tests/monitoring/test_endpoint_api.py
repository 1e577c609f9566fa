"""Notification endpoints through the API: the roles of core/roles.py, the services' audit events, target checks."""

from __future__ import annotations

import pytest

from core.errors import DomainPermissionDenied, DomainValidationError
from core.models import AuditEvent
from monitoring.models import NotificationEndpoint
from monitoring.services.endpoints import notification_endpoint_create, notification_endpoint_update
from tests.conftest import api_as
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/notification-endpoints/"
HOOK = {
    "name": "ops hook",
    "channel": "webhook",
    "target": "https://hooks.example.com/rollgate",
    "min_severity": "sev2",
}


def user_in(role: str | None):
    return UserFactory(username=f"u-{role or 'none'}".replace(" ", "-").lower(), groups=[role] if role else [])


@pytest.mark.parametrize(
    ("role", "can_view", "can_write"),
    [
        ("Program managers", True, True),
        ("Auditors", True, False),
        ("On-call", False, False),
        ("Authors", False, False),
        ("Reviewers", False, False),
        (None, False, False),
    ],
)
def test_each_role_may_do_what_core_roles_grant(role, can_view, can_write):
    endpoint = NotificationEndpoint.objects.create(name="mail", channel="email", target="oncall@example.com")
    client = api_as(user_in(role))
    assert client.get(URL).status_code == (200 if can_view else 403)
    assert client.get(f"{URL}{endpoint.pk}/").status_code == (200 if can_view else 403)
    created = client.post(URL, HOOK, format="json")
    assert created.status_code == (201 if can_write else 403), created.content
    changed = client.patch(f"{URL}{endpoint.pk}/", {"is_active": False}, format="json")
    assert changed.status_code == (200 if can_write else 403), changed.content
    endpoint.refresh_from_db()
    assert endpoint.is_active is (not can_write)
    assert NotificationEndpoint.objects.count() == (2 if can_write else 1)


def test_create_and_update_write_history_and_audit_events(program_manager):
    client = api_as(program_manager)
    response = client.post(URL, HOOK, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in HOOK} == HOOK and body["is_active"] is True
    endpoint = NotificationEndpoint.objects.get(pk=body["id"])
    created = AuditEvent.objects.get(action="notification_endpoint.created")
    assert (created.actor, created.object_type, created.object_id) == (
        program_manager,
        "monitoring.notificationendpoint",
        str(endpoint.pk),
    )
    assert created.data["target"] == HOOK["target"]

    response = client.patch(f"{URL}{endpoint.pk}/", {"min_severity": "sev1", "is_active": False}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["min_severity"], response.json()["is_active"]) == ("sev1", False)
    updated = AuditEvent.objects.get(action="notification_endpoint.updated")
    assert updated.data == {
        "before": {"is_active": True, "min_severity": "sev2"},
        "after": {"is_active": False, "min_severity": "sev1"},
    }
    assert [h.history_user for h in endpoint.history.order_by("history_id")] == [program_manager, program_manager]

    # Saving the same values again changes nothing and writes nothing.
    assert client.patch(f"{URL}{endpoint.pk}/", {"is_active": False}, format="json").status_code == 200
    assert AuditEvent.objects.filter(action__startswith="notification_endpoint.").count() == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"channel": "webhook", "target": "ftp://files.example.com/x"},
        {"channel": "webhook", "target": "javascript:alert(1)"},
        {"channel": "webhook", "target": "not a url"},
        {"channel": "email", "target": "not-an-address"},
        {"channel": "email", "target": "https://hooks.example.com/x"},
    ],
)
def test_a_bad_target_is_400_on_target_and_nothing_is_written(program_manager, fields):
    response = api_as(program_manager).post(URL, {**HOOK, **fields}, format="json")
    assert response.status_code == 400, response.content
    assert "target" in response.json()
    assert not NotificationEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="notification_endpoint.").exists()


def test_changing_the_channel_rechecks_the_target(program_manager):
    endpoint = notification_endpoint_create(actor=program_manager, **HOOK)
    response = api_as(program_manager).patch(f"{URL}{endpoint.pk}/", {"channel": "email"}, format="json")
    assert response.status_code == 400 and "target" in response.json()
    endpoint.refresh_from_db()
    assert endpoint.channel == "webhook"


def test_no_delete_through_the_api(program_manager):
    endpoint = notification_endpoint_create(actor=program_manager, **HOOK)
    # Refused by the role (nobody holds delete) before the method is even looked at.
    assert api_as(program_manager).delete(f"{URL}{endpoint.pk}/").status_code in (403, 405)
    assert NotificationEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_services_check_the_role_and_refuse_unknown_fields(program_manager, auditor):
    with pytest.raises(DomainPermissionDenied):
        notification_endpoint_create(actor=auditor, **HOOK)
    endpoint = notification_endpoint_create(actor=program_manager, **HOOK)
    with pytest.raises(DomainPermissionDenied):
        notification_endpoint_update(endpoint=endpoint, actor=auditor, is_active=False)
    with pytest.raises(DomainValidationError):
        notification_endpoint_update(endpoint=endpoint, actor=program_manager, id=99)
