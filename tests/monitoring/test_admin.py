"""Every monitoring admin page and action, loaded as the people who use them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.models import AuditEvent
from monitoring.choices import IncidentStatus, Resolution
from monitoring.models import (
    Guardrail,
    Incident,
    MetricDefinition,
    NotificationEndpoint,
)
from monitoring.services import guardrails_evaluate
from tests.conftest import admin_as

from .conftest import ingest, make_guardrail, sample_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(rolling_release, error_rate, webhook_endpoint):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    return Incident.objects.get()


def test_oncall_sees_the_triage_list_and_the_incident_page(oncall, incident):
    client = admin_as(oncall)
    response = client.get(reverse("admin:monitoring_incident_changelist") + "?unacknowledged=yes")
    assert response.status_code == 200
    from django.utils.html import escape

    assert escape(incident.title) in response.content.decode()
    page = client.get(reverse("admin:monitoring_incident_change", args=[incident.pk])).content.decode()
    assert "Opened" in page  # the timeline inline
    assert "Evaluations that fired it" in page and "fail" in page


def test_admin_actions_call_the_services(oncall, incident):
    client = admin_as(oncall)
    url = reverse("admin:monitoring_incident_changelist")
    response = client.post(url, {"action": "acknowledge_selected", "_selected_action": [incident.pk]}, follow=True)
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED
    assert incident.history.first().history_user == oncall
    # Acknowledging again is refused and shown as a message, not an error page.
    response = client.post(url, {"action": "acknowledge_selected", "_selected_action": [incident.pk]}, follow=True)
    assert "refused" in response.content.decode()
    client.post(url, {"action": "assign_to_me", "_selected_action": [incident.pk]})
    client.post(url, {"action": "resolve_false_positive", "_selected_action": [incident.pk]})
    incident.refresh_from_db()
    assert (incident.status, incident.resolution, incident.assignee) == (
        IncidentStatus.RESOLVED,
        Resolution.FALSE_POSITIVE,
        oncall,
    )


def test_auditor_actions_are_refused(auditor, incident):
    client = admin_as(auditor)
    url = reverse("admin:monitoring_incident_changelist")
    client.post(url, {"action": "acknowledge_selected", "_selected_action": [incident.pk]}, follow=True)
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.TRIGGERED


def test_comment_from_the_incident_page(oncall, incident):
    client = admin_as(oncall)
    url = reverse("admin:monitoring_incident_change", args=[incident.pk])
    response = client.post(
        url,
        {
            "assignee": oncall.pk,
            "comment": "Provider incident, watching.",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
            "events-MIN_NUM_FORMS": "0",
            "events-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert incident.events.filter(kind="comment", actor=oncall).exists()
    incident.refresh_from_db()
    assert incident.assignee == oncall


def test_guardrail_admin_create_goes_through_the_service(superuser, rolling_release):
    client = admin_as(superuser)
    response = client.post(
        reverse("admin:monitoring_guardrail_add"),
        {
            "name": "fallback cap",
            "metric": MetricDefinition.objects.get(key="fallback_rate").pk,
            "scope": "release",
            "release": rolling_release.pk,
            "risk_level": "",
            "absolute_threshold": "0.08",
            "min_sample_size": "500",
            "evaluation_window": "1 00:00:00",
            "evaluation_interval": "00:05:00",
            "confidence": "0.95",
            "failure_limit": "0",
            "consecutive_success_limit": "3",
            "severity": "sev3",
            "action": "incident",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    guardrail = Guardrail.objects.get(name="fallback cap")
    assert guardrail.history.first().history_user == superuser


def _history_post_changes_nothing(client, model, obj, data):
    """POST a forged history form: it must be refused and leave the row and its history as they were."""
    historical = obj.history.order_by("history_id").first()
    before = (model.objects.filter(pk=obj.pk).values().get(), obj.history.count(), AuditEvent.objects.count())
    url = reverse(f"admin:monitoring_{model._meta.model_name}_simple_history", args=[obj.pk, historical.history_id])
    response = client.post(url, data)
    assert response.status_code == 403
    assert (model.objects.filter(pk=obj.pk).values().get(), obj.history.count(), AuditEvent.objects.count()) == before


def test_auditor_cannot_rewrite_a_notification_endpoint_through_a_history_form_post(auditor, webhook_endpoint):
    client = admin_as(auditor)
    page = client.get(
        reverse(
            "admin:monitoring_notificationendpoint_simple_history",
            args=[webhook_endpoint.pk, webhook_endpoint.history.first().history_id],
        )
    )
    assert page.status_code == 200  # the auditor reads history...
    _history_post_changes_nothing(  # ...and cannot point the pages at an attacker's URL
        client,
        NotificationEndpoint,
        webhook_endpoint,
        {"name": "ops hook", "channel": "webhook", "target": "https://attacker.example/hook", "is_active": ""},
    )


def test_auditor_cannot_rewrite_an_incident_through_a_history_form_post(auditor, oncall, incident):
    _history_post_changes_nothing(admin_as(auditor), Incident, incident, {"assignee": auditor.pk, "comment": "mine"})


def test_notification_endpoint_admin_writes_through_the_audited_services(program_manager, oncall):
    client = admin_as(program_manager)
    data = {"name": "sev1 pager", "channel": "webhook", "target": "https://pager.example/hook", "min_severity": "sev1"}
    response = client.post(reverse("admin:monitoring_notificationendpoint_add"), {**data, "is_active": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint = NotificationEndpoint.objects.get(name="sev1 pager")
    response = client.post(
        reverse("admin:monitoring_notificationendpoint_change", args=[endpoint.pk]), {**data, "is_active": ""}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint.refresh_from_db()
    assert endpoint.is_active is False
    events = list(AuditEvent.objects.filter(object_type="monitoring.notificationendpoint").order_by("id"))
    assert [(e.action, e.actor) for e in events] == [
        ("notification_endpoint.created", program_manager),
        ("notification_endpoint.updated", program_manager),
    ]
    assert events[1].data == {"before": {"is_active": True}, "after": {"is_active": False}}
    assert [h.history_user for h in endpoint.history.order_by("history_id")] == [program_manager, program_manager]
    # On-call may not configure where pages go: the admin refuses before any service runs.
    assert admin_as(oncall).post(reverse("admin:monitoring_notificationendpoint_add"), data).status_code == 403
    assert NotificationEndpoint.objects.count() == 1
