"""Incidents: dedup, triage through the API and its permissions, escalation, notifications and their delivery."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from core.models import AuditEvent
from monitoring.choices import DeliveryStatus, IncidentEventKind, IncidentStatus, Severity
from monitoring.models import Incident, NotificationEndpoint, NotificationOutbox
from monitoring.services import (
    guardrails_evaluate,
    incident_trigger,
    incidents_escalate_overdue,
    notification_deliver,
    notifications_due,
)
from monitoring.tasks import sweep_notifications
from tests.conftest import api_as
from tests.factories import UserFactory

from .conftest import ingest, make_guardrail, sample_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(rolling_release, error_rate):
    guardrail = make_guardrail(rolling_release, error_rate, severity=Severity.SEV2)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    return Incident.objects.get(guardrail=guardrail)


def test_retrigger_increments_the_count_and_the_timeline(incident):
    again, opened = incident_trigger(
        guardrail=incident.guardrail, release_id=incident.release_id, market="US", evaluation=None, now=timezone.now()
    )
    assert (again.pk, opened, again.trigger_count) == (incident.pk, False, 2)
    assert incident.events.filter(kind=IncidentEventKind.RETRIGGERED).count() == 1


def test_the_database_refuses_a_second_open_incident_for_a_key(incident):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.create(
            title="dup",
            dedup_key=incident.dedup_key,
            release=incident.release,
            guardrail=incident.guardrail,
            market="US",
            severity=Severity.SEV3,
            opened_at=timezone.now(),
            last_triggered_at=timezone.now(),
        )


def test_triage_through_the_api(incident, oncall):
    client = api_as(oncall)
    base = f"/api/v1/incidents/{incident.pk}"
    response = client.post(f"{base}/acknowledge/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == IncidentStatus.ACKNOWLEDGED
    assert response.json()["assignee"] == oncall.username
    assert client.post(f"{base}/acknowledge/").status_code == 409
    other = UserFactory(username="olly.oncall", groups=["On-call"])
    assert client.post(f"{base}/assign/", {"assignee": other.pk}).json()["assignee"] == other.username
    response = client.post(f"{base}/comment/", {"message": "Looking at the LLM provider status page."})
    assert response.status_code == 201
    assert client.post(f"{base}/comment/", {"message": ""}).status_code == 400
    assert client.post(f"{base}/mitigate/", {"note": "Switched to the fallback model."}).status_code == 200
    assert client.post(f"{base}/resolve/", {"resolution": "auto_recovered", "note": "x"}).status_code == 400
    response = client.post(f"{base}/resolve/", {"resolution": "fixed", "note": "Provider recovered."})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["resolution"]) == (IncidentStatus.RESOLVED, "fixed")
    kinds = [event["kind"] for event in body["timeline"]]
    assert kinds[:1] == ["opened"]
    assert {"acknowledged", "assigned", "comment", "mitigated", "resolved"} <= set(kinds)
    assert client.post(f"{base}/mitigate/", {"note": "again"}).status_code == 409
    incident.refresh_from_db()
    assert incident.history.first().history_user == oncall
    assert AuditEvent.objects.filter(action="incident.resolve", actor=oncall).exists()


def test_only_triage_roles_act(incident, auditor, author, outsider):
    url = f"/api/v1/incidents/{incident.pk}/acknowledge/"
    assert api_as(auditor).post(url).status_code == 403
    assert api_as(author).post(url).status_code == 403
    assert api_as(outsider).post(url).status_code == 403
    assert api_as(outsider).get("/api/v1/incidents/").status_code == 403
    assert api_as(auditor).get(f"/api/v1/incidents/{incident.pk}/").status_code == 200
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.TRIGGERED


def test_assignee_must_be_able_to_triage(incident, oncall, author):
    response = api_as(oncall).post(f"/api/v1/incidents/{incident.pk}/assign/", {"assignee": author.pk})
    assert response.status_code == 400


def test_incident_filters_and_query_count(rolling_release, error_rate, csat, oncall, django_assert_max_num_queries):
    for market in ("US", "DE"):
        ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, market=market))
    g1 = make_guardrail(rolling_release, error_rate, severity=Severity.SEV1, name="errors")
    g2 = make_guardrail(
        rolling_release, error_rate, severity=Severity.SEV3, name="errors strict", absolute_threshold=0.01
    )
    guardrails_evaluate()
    assert Incident.objects.count() == 4
    client = api_as(oncall)
    first = Incident.objects.filter(guardrail=g1).first()
    client.post(f"/api/v1/incidents/{first.pk}/acknowledge/")
    with django_assert_max_num_queries(8):
        response = client.get("/api/v1/incidents/")
    assert response.json()["count"] == 4
    assert client.get("/api/v1/incidents/", {"severity": "sev1"}).json()["count"] == 2
    assert client.get("/api/v1/incidents/", {"unacknowledged": "true"}).json()["count"] == 3
    assert client.get("/api/v1/incidents/", {"status": "acknowledged"}).json()["count"] == 1
    assert client.get("/api/v1/incidents/", {"assignee": oncall.pk}).json()["count"] == 1
    assert client.get("/api/v1/incidents/", {"release": rolling_release.pk}).json()["count"] == 4
    assert client.get("/api/v1/incidents/", {"guardrail": g2.pk}).json()["count"] == 2
    evaluations = client.get(f"/api/v1/incidents/{first.pk}/evaluations/").json()
    assert len(evaluations) == 1 and evaluations[0]["outcome"] == "fail"
    with django_assert_max_num_queries(8):
        response = client.get("/api/v1/evaluations/", {"release": rolling_release.pk, "outcome": "fail"})
    assert response.json()["count"] == 4


def test_guardrail_api_for_program_managers(rolling_release, program_manager, oncall, auditor):
    payload = {
        "name": "CSAT holds",
        "metric": "csat",
        "scope": "release",
        "release": rolling_release.pk,
        "relative_margin": 0.03,
        "min_sample_size": 800,
        "action": "pause",
    }
    response = api_as(program_manager).post("/api/v1/guardrails/", payload, format="json")
    assert response.status_code == 201, response.content
    guardrail_id = response.json()["id"]
    bad = {**payload, "scope": "solution"}
    response = api_as(program_manager).post("/api/v1/guardrails/", bad, format="json")
    assert response.status_code == 400 and "solution" in response.json()
    assert api_as(oncall).post("/api/v1/guardrails/", payload, format="json").status_code == 403
    response = api_as(program_manager).patch(f"/api/v1/guardrails/{guardrail_id}/", {"dry_run": True}, format="json")
    assert response.status_code == 200 and response.json()["dry_run"] is True
    assert api_as(auditor).get("/api/v1/guardrails/").status_code == 200


def test_guardrail_list_query_count(rolling_release, error_rate, auditor, django_assert_max_num_queries):
    for threshold in (0.01, 0.02, 0.03, 0.04, 0.05):
        make_guardrail(rolling_release, error_rate, absolute_threshold=threshold)
    with django_assert_max_num_queries(6):
        response = api_as(auditor).get("/api/v1/guardrails/")
    assert response.json()["count"] >= 5
    assert api_as(auditor).get("/api/v1/metric-definitions/").json()["count"] == 8  # with slow_turn_rate


def test_escalation_after_the_severity_deadline(incident, webhook_endpoint):
    assert incidents_escalate_overdue(now=timezone.now() + timedelta(minutes=10)) == 0
    later = timezone.now() + timedelta(minutes=31)  # SEV2: 30 minutes to acknowledge
    assert incidents_escalate_overdue(now=later) == 1
    assert incidents_escalate_overdue(now=later) == 0  # once
    incident.refresh_from_db()
    assert incident.escalated_at == later
    assert webhook_endpoint.deliveries.filter(payload__event="escalated").count() == 1


# --- notifications ---------------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        _Receiver.received.append(
            {"body": json.loads(self.rfile.read(length)), "delivery": self.headers["X-Rollgate-Delivery"]}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_outbox_row_is_written_with_the_event(rolling_release, error_rate, webhook_endpoint):
    NotificationEndpoint.objects.create(name="mail", channel="email", target="oncall@example.com")
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    crash = mock.patch("monitoring.services.incidents.outbox_write_for_event", side_effect=RuntimeError("crash"))
    with crash, pytest.raises(RuntimeError):
        guardrails_evaluate()
    assert not Incident.objects.exists() and not NotificationOutbox.objects.exists()
    guardrails_evaluate()
    incident = Incident.objects.get()
    rows = NotificationOutbox.objects.filter(incident=incident)
    assert sorted(rows.values_list("channel", flat=True)) == ["email", "webhook"]
    assert all(row.event.kind == IncidentEventKind.OPENED for row in rows)


def test_webhook_receiver_down_then_up(rolling_release, error_rate, django_capture_on_commit_callbacks):
    port = _free_port()
    endpoint = NotificationEndpoint.objects.create(
        name="ops", channel="webhook", target=f"http://127.0.0.1:{port}/rollgate"
    )
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        guardrails_evaluate()
    row = endpoint.deliveries.get()

    # Nobody listens: the attempt fails, is recorded on the timeline and rescheduled with backoff.
    now = timezone.now()
    result = notification_deliver(outbox_id=row.pk, now=now)
    assert result.claimed and not result.sent and result.retry_in == timedelta(seconds=30)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
    assert "Connection refused" in row.last_error or "Errno" in row.last_error
    failed = row.incident.events.get(kind=IncidentEventKind.NOTIFICATION_FAILED)
    assert "attempt 1/14" in failed.message
    assert notifications_due(now=now) == []  # not before its backoff

    # The receiver comes up; the sweep resends it once its time has come.
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        later = now + timedelta(seconds=31)
        assert notifications_due(now=later) == [row.pk]
        assert notification_deliver(outbox_id=row.pk, now=later).sent
        assert notification_deliver(outbox_id=row.pk, now=later).claimed is False  # never twice
    finally:
        server.shutdown()
        server.server_close()
    row.refresh_from_db()
    assert (row.status, row.attempts) == (DeliveryStatus.SENT, 2)
    assert len(_Receiver.received) == 1
    assert _Receiver.received[0]["delivery"] == str(row.pk)
    assert _Receiver.received[0]["body"]["incident"]["dedup_key"] == row.incident.dedup_key
    assert row.incident.events.filter(kind=IncidentEventKind.NOTIFICATION_SENT).count() == 1


def test_worker_killed_after_commit_before_enqueue_the_sweep_sends_exactly_once(
    rolling_release, error_rate, django_capture_on_commit_callbacks
):
    NotificationEndpoint.objects.create(name="mail", channel="email", target="oncall@example.com")
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    # The on-commit enqueue never happens (the process died right after COMMIT).
    lost = mock.patch("monitoring.services.notifications.enqueue_deliveries")
    with lost, django_capture_on_commit_callbacks(execute=True):
        guardrails_evaluate()
    assert NotificationOutbox.objects.get().status == DeliveryStatus.PENDING
    assert len(mail.outbox) == 0
    with mock.patch("monitoring.tasks.deliver_notification.delay") as delay:
        assert sweep_notifications() == 1
    for call in delay.call_args_list:
        notification_deliver(outbox_id=call.args[0])
    # Two overlapping sweeps: the second finds nothing due.
    assert notifications_due() == []
    assert len(mail.outbox) == 1
    assert "opened" in mail.outbox[0].subject
    assert NotificationOutbox.objects.get().status == DeliveryStatus.SENT


def test_a_stuck_lease_is_resent(rolling_release, error_rate):
    NotificationEndpoint.objects.create(name="mail", channel="email", target="oncall@example.com")
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        guardrails_evaluate()
    row = NotificationOutbox.objects.get()
    # A worker claimed it and died mid-send.
    NotificationOutbox.objects.filter(pk=row.pk).update(
        status=DeliveryStatus.SENDING, claimed_until=timezone.now() + timedelta(minutes=2)
    )
    assert notifications_due() == []
    assert notifications_due(now=timezone.now() + timedelta(minutes=3)) == [row.pk]
    assert notification_deliver(outbox_id=row.pk, now=timezone.now() + timedelta(minutes=3)).sent


def test_delivery_gives_up_after_max_attempts(rolling_release, error_rate):
    port = _free_port()
    NotificationEndpoint.objects.create(name="ops", channel="webhook", target=f"http://127.0.0.1:{port}/x")
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        guardrails_evaluate()
    row = NotificationOutbox.objects.get()
    at = timezone.now()
    for _ in range(row.max_attempts):
        notification_deliver(outbox_id=row.pk, now=at)
        at += timedelta(hours=6)  # the longest backoff
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DEAD
    assert row.incident.events.filter(kind=IncidentEventKind.NOTIFICATION_FAILED).count() == row.max_attempts
    assert "dead-lettered" in row.incident.events.filter(kind=IncidentEventKind.NOTIFICATION_FAILED).last().message
