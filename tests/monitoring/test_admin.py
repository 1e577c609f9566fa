"""Every monitoring admin page and action, loaded as the people who use them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from monitoring.choices import IncidentStatus, Resolution
from monitoring.models import (
    Evaluation,
    Guardrail,
    Incident,
    MetricDefinition,
    MetricSample,
    NotificationEndpoint,
    NotificationOutbox,
)
from monitoring.services import guardrails_evaluate

from .conftest import ingest, make_guardrail, sample_row

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def incident(rolling_release, error_rate, webhook_endpoint):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    return Incident.objects.get()


def _pages(incident):
    guardrail = incident.guardrail
    pages = [reverse("admin:app_list", args=["monitoring"])]
    for model, obj in [
        (MetricDefinition, MetricDefinition.objects.first()),
        (MetricSample, MetricSample.objects.first()),
        (Guardrail, guardrail),
        (Evaluation, Evaluation.objects.first()),
        (Incident, incident),
        (NotificationEndpoint, NotificationEndpoint.objects.first()),
        (NotificationOutbox, NotificationOutbox.objects.first()),
    ]:
        name = model._meta.model_name
        pages.append(reverse(f"admin:monitoring_{name}_changelist"))
        pages.append(reverse(f"admin:monitoring_{name}_change", args=[obj.pk]))
    for name in ("metricdefinition", "guardrail", "incident", "notificationendpoint"):
        obj = {"metricdefinition": MetricDefinition.objects.first(), "guardrail": guardrail, "incident": incident}.get(
            name, NotificationEndpoint.objects.first()
        )
        pages.append(reverse(f"admin:monitoring_{name}_history", args=[obj.pk]))
    pages.append(reverse("admin:monitoring_guardrail_add"))
    pages.append(reverse("admin:monitoring_notificationendpoint_add"))
    changelist = reverse("admin:monitoring_incident_changelist")
    pages += [
        changelist + "?status__exact=triggered",
        changelist + "?unacknowledged=yes",
        changelist + "?unacknowledged=no",
        changelist + "?severity__exact=sev3",
        changelist + f"?assignee__id__exact={incident.assignee_id or 0}",
        changelist + "?q=error",
    ]
    return pages


@pytest.mark.parametrize("persona", ["superuser", "program_manager", "oncall", "auditor"])
def test_every_monitoring_admin_page_loads(request, persona, incident):
    user = request.getfixturevalue(persona)
    client = _client(user)
    for url in _pages(incident):
        response = client.get(url)
        expected = {200} if persona in ("superuser",) else {200, 403}
        assert response.status_code in expected, (persona, url, response.status_code)


def test_oncall_sees_the_triage_list_and_the_incident_page(oncall, incident):
    client = _client(oncall)
    response = client.get(reverse("admin:monitoring_incident_changelist") + "?unacknowledged=yes")
    assert response.status_code == 200
    from django.utils.html import escape

    assert escape(incident.title) in response.content.decode()
    page = client.get(reverse("admin:monitoring_incident_change", args=[incident.pk])).content.decode()
    assert "Opened" in page  # the timeline inline
    assert "Evaluations that fired it" in page and "fail" in page


def test_admin_actions_call_the_services(oncall, incident):
    client = _client(oncall)
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
    client = _client(auditor)
    url = reverse("admin:monitoring_incident_changelist")
    client.post(url, {"action": "acknowledge_selected", "_selected_action": [incident.pk]}, follow=True)
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.TRIGGERED


def test_comment_from_the_incident_page(oncall, incident):
    client = _client(oncall)
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
    client = _client(superuser)
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


def test_changelists_do_not_grow_queries_with_rows(superuser, incident, django_assert_max_num_queries):
    client = _client(superuser)
    for name in ("incident", "evaluation", "metricsample", "guardrail", "notificationoutbox"):
        with django_assert_max_num_queries(15):
            assert client.get(reverse(f"admin:monitoring_{name}_changelist")).status_code == 200
